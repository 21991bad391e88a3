/**
 * `task-cache ls [--task NAME]` and `task-cache inspect KEY`: read-only views of a store's entries,
 * through core's `openStore` and `lookupEntry` (no download of the chunks).
 */
import { parseArgs } from 'node:util';
import {
  formatBytes,
  InvalidOptionError,
  loadTrustedKeys,
  lookupEntry,
  openStore,
  type ResolvedEntry,
  redactUrl,
  SIGNATURE_ANNOTATION,
  SIGNER_ANNOTATION,
  urlsafe,
  verifyEntry,
} from '@task-cache/core';
import { CliError, EXIT } from './errors.js';
import type { CliIo } from './run.js';

const OPTIONS = {
  cache: { type: 'string' },
  task: { type: 'string', short: 't' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const LS_USAGE = `Usage: task-cache ls [--cache URL] [--task NAME] [--json]

Lists the entries (tags) of the store (TASK_CACHE_URL, default the embedded cache), of one task with
--task. The pointer tags (<task>.latest) are left out.
`;

export const INSPECT_USAGE = `Usage: task-cache inspect KEY [--cache URL] [--json]

Shows an entry without downloading it: task, creation time, producer, files, sizes, chunks, the
source files of its key (inputs), its signature: checked against TASK_CACHE_TRUSTED_KEYS when set
(the check a restore makes), else only its signer is shown. Exit 1 when there is no entry KEY.
`;

/** The signature status of `entry` looked up as `key`: core's own check when trusted keys are given. */
function signatureStatus(
  entry: ResolvedEntry,
  key: string,
  io: CliIo,
): { signed: boolean; signer?: string; verified?: boolean; text: string } {
  const signer = entry.annotations?.[SIGNER_ANNOTATION];
  const signed = entry.annotations?.[SIGNATURE_ANNOTATION] !== undefined;
  const trusted = io.env.TASK_CACHE_TRUSTED_KEYS;
  const by = signer ? ` by ${signer}` : '';
  if (trusted === undefined || trusted.trim() === '')
    return signed
      ? {
          signed,
          ...(signer ? { signer } : {}),
          text: `signed${by} (not checked: TASK_CACHE_TRUSTED_KEYS is not set)`,
        }
      : { signed, text: 'none (the entry is not signed)' };
  let keys: ReturnType<typeof loadTrustedKeys>;
  try {
    keys = loadTrustedKeys('TASK_CACHE_TRUSTED_KEYS', trusted);
  } catch (error) {
    if (error instanceof InvalidOptionError)
      throw new CliError('CLI_ERR_USAGE', `inspect: ${error.message}`, { cause: error });
    throw error;
  }
  const verdict = verifyEntry(entry, { key, task: entry.config.task }, keys);
  return {
    signed,
    ...(signer ? { signer } : {}),
    verified: verdict.trusted,
    text: verdict.trusted ? `valid${by} (a trusted key)` : `NOT TRUSTED: ${verdict.why}`,
  };
}

function parse(argv: readonly string[], command: string) {
  try {
    return parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new CliError('CLI_ERR_USAGE', `${command}: ${(error as Error).message}`, { cause: error });
  }
}

async function withStore<T>(
  io: CliIo,
  url: string | undefined,
  fn: (store: Awaited<ReturnType<typeof openStore>>['store']) => Promise<T>,
): Promise<T> {
  const { store } = await openStore(url ?? io.env.TASK_CACHE_URL ?? '', { env: io.env });
  try {
    return await fn(store);
  } finally {
    await (store as { close?: () => Promise<void> }).close?.();
  }
}

/** `task-cache ls`. */
export async function lsCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, 'ls');
  if (values.help) {
    io.stdout.write(LS_USAGE);
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new CliError('CLI_ERR_USAGE', `ls: unexpected ${positionals.join(' ')}`);
  const prefix = values.task === undefined ? undefined : `${urlsafe(values.task)}-`;
  return withStore(io, values.cache, async (store) => {
    if (!store.listTags) {
      io.stderr.write(`task-cache: ls: this store cannot list its tags\n`);
      return EXIT.doctorFailed;
    }
    const tags: string[] = [];
    for await (const tag of store.listTags()) {
      if (tag.endsWith('.latest')) continue;
      if (prefix === undefined || tag.startsWith(prefix)) tags.push(tag);
    }
    io.stdout.write(values.json ? `${JSON.stringify(tags)}\n` : tags.map((t) => `${t}\n`).join(''));
    return EXIT.ok;
  });
}

/** `task-cache inspect KEY`. */
export async function inspectCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(argv, 'inspect');
  if (values.help) {
    io.stdout.write(INSPECT_USAGE);
    return EXIT.ok;
  }
  const [key, ...rest] = positionals;
  if (key === undefined || rest.length > 0)
    throw new CliError('CLI_ERR_USAGE', 'inspect: give exactly one KEY (see task-cache ls)');
  return withStore(io, values.cache, async (store) => {
    const entry = await lookupEntry(store, { tag: key });
    if (!entry) {
      io.stderr.write(
        `task-cache: inspect: no entry ${key} in ${redactUrl(values.cache ?? io.env.TASK_CACHE_URL ?? '') || 'the embedded cache'}\n`,
      );
      return EXIT.doctorFailed;
    }
    const c = entry.config;
    // Version 2: the frames the entry uses (its packs may hold frames of older entries too).
    const frames = new Map<string, number>();
    for (const ch of c.chunks)
      if (ch.layer !== undefined && ch.length !== undefined)
        frames.set(`${ch.layer}:${ch.offset}`, ch.length);
    const compressed =
      c.formatVersion === 2
        ? [...frames.values()].reduce((n, l) => n + l, 0)
        : entry.layers.reduce((n, l) => n + l.size, 0);
    const view = {
      key: entry.tag,
      digest: entry.digest,
      task: c.task,
      created: c.created,
      producer: `${c.producer.name} ${c.producer.version}`,
      files: c.files,
      size: c.size,
      compressedSize: compressed,
      formatVersion: c.formatVersion,
      chunks: c.chunks.length,
      blobs: entry.layers.length,
      chunking: c.chunking,
      compression: c.compression,
      inputs: c.sources,
      signature: signatureStatus(entry, key, io),
    };
    if (values.json) io.stdout.write(`${JSON.stringify(view)}\n`);
    else
      io.stdout.write(
        [
          `key:         ${view.key}`,
          `digest:      ${view.digest}`,
          `task:        ${view.task}`,
          `created:     ${view.created}`,
          `producer:    ${view.producer}`,
          `files:       ${view.files}`,
          `size:        ${formatBytes(view.size)} (${formatBytes(compressed)} compressed)`,
          `chunks:      ${view.chunks} (${c.chunking.algorithm}, avg ${formatBytes(c.chunking.avgSize)}; ${c.compression.algorithm} level ${c.compression.level})`,
          `blobs:       ${view.blobs} (format v${view.formatVersion}${view.formatVersion === 2 ? ': packs' : ': one per chunk'})`,
          `signature:   ${view.signature.text}`,
          `inputs:      ${c.sources.length} source files`,
          ...c.sources.map((s) => `  ${s.digest.slice(0, 19)}…  ${s.path}`),
          '',
        ].join('\n'),
      );
    return EXIT.ok;
  });
}
