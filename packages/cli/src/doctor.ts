/**
 * `task-cache doctor [--cache URL] [--lock URL]`: checks a registry and a Redis against the operator
 * guide and prints each check as `ok`, `warn` or `fail` with the fix. Exit 0 only when nothing fails.
 * Every location is printed redacted; passwords never reach the output.
 *
 * NOTE (size): ~560 lines, one file on purpose: the registry and the Redis checks are two flat lists
 * of small probes sharing one report format and one redaction; each check is a few lines.
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  CHUNK_MEDIA_TYPE,
  COMPAT_CONFIG_MEDIA_TYPE,
  classifyRedisFailure,
  describeLockUrl,
  ENTRY_ANNOTATION,
  ENTRY_ARTIFACT_TYPE,
  ENTRY_ARTIFACT_TYPE_V2,
  ENTRY_CONFIG_MEDIA_TYPE,
  ENTRY_CONFIG_MEDIA_TYPE_V2,
  ENTRY_FORMAT_VERSION,
  isTlsFailure,
  type LockUrl,
  openStore,
  PACK_MEDIA_TYPE,
  parseLockUrl,
  parseStoreUrl,
  type RedisStandaloneLockUrl,
  redactUrl,
  redisReplyCode,
} from '@task-cache/core';
import { envFormatVersion, formatVersion } from './args.js';
import { CliError, EXIT } from './errors.js';
import type { CliIo } from './run.js';

/** The verdict of one check. */
export type CheckStatus = 'ok' | 'warn' | 'fail';

/** One line of the doctor's report. */
export interface CheckResult {
  /** What was checked (`registry reachable`, `redis maxmemory-policy`, …). */
  name: string;
  status: CheckStatus;
  /** What was seen (no secret). */
  detail: string;
  /** What to do, for `warn` and `fail`. */
  fix?: string;
}

export const DOCTOR_USAGE = `Usage: task-cache doctor [--cache URL] [--lock URL] [--format-version N] [--json]

Checks the store (oci://… registry) and the lock (redis://…, rediss://…) against the operator guide:
each check prints ok, warn or fail, with the fix. The URLs default to TASK_CACHE_URL and
TASK_CACHE_LOCK_URL; registry credentials come from TASK_CACHE_OCI_USER / TASK_CACHE_OCI_PASSWORD
(or the docker/podman config), its CA from ?ca= or TASK_CACHE_OCI_CA. The media-type check pushes a
manifest of the entry format saves write: --format-version or TASK_CACHE_FORMAT_VERSION, default 2.
Exit 0 when nothing fails.
`;

/** The first `code` (string) along `error`'s cause chain that `pick` accepts. */
function findInCauses(error: unknown, pick: (e: unknown) => boolean): unknown {
  for (let e = error, depth = 0; e && depth < 10; e = (e as { cause?: unknown }).cause, depth++) {
    if (pick(e)) return e;
    const errors = (e as { errors?: unknown }).errors;
    if (Array.isArray(errors)) for (const inner of errors) if (pick(inner)) return inner;
  }
  return undefined;
}

const codeOf = (error: unknown): string | undefined => {
  const c = (error as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
};
const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** Registry checks: reachable, TLS, credentials, push, pull, media types, tag listing, delete. */
export async function checkRegistry(
  url: string,
  env: Record<string, string | undefined>,
  signal: AbortSignal,
  version: 1 | 2 = ENTRY_FORMAT_VERSION,
): Promise<CheckResult[]> {
  // The media types of the entry format the saves write (docs/format.md §11.2).
  const media =
    version === 2
      ? { artifact: ENTRY_ARTIFACT_TYPE_V2, config: ENTRY_CONFIG_MEDIA_TYPE_V2, layer: PACK_MEDIA_TYPE }
      : { artifact: ENTRY_ARTIFACT_TYPE, config: ENTRY_CONFIG_MEDIA_TYPE, layer: CHUNK_MEDIA_TYPE };
  const out: CheckResult[] = [];
  const parsed = parseStoreUrl(url);
  if (parsed.kind !== 'oci') {
    out.push({
      name: 'store',
      status: 'ok',
      detail: `${redactUrl(url) || 'the embedded default store'} (${parsed.kind}): no registry to check`,
    });
    return out;
  }
  const where = `${parsed.registry}/${parsed.repository}`;
  const user = env.TASK_CACHE_OCI_USER;
  const tlsFix = `give the registry's CA: TASK_CACHE_OCI_CA=/path/to/ca.pem (a CI file variable) or ?ca=/path/to/ca.pem in the URL`;
  const { store } = await openStore(url, { env, signal });
  try {
    // 1. Reachable, TLS, credentials: one read of a tag that does not exist (a miss is a normal answer).
    try {
      await store.fetchManifest(`task-cache-doctor-${randomBytes(4).toString('hex')}`, { signal });
      out.push({ name: 'registry reachable', status: 'ok', detail: where });
      if (parsed.plainHttp)
        out.push({
          name: 'registry TLS',
          status: 'warn',
          detail: 'plain HTTP (?plain-http=true)',
          fix: 'use HTTPS outside a loopback test registry',
        });
      else
        out.push({
          name: 'registry TLS',
          status: 'ok',
          detail: parsed.ca || env.TASK_CACHE_OCI_CA ? 'verified with the given CA' : 'verified (system CAs)',
        });
      out.push(
        user
          ? { name: 'registry credentials', status: 'ok', detail: `accepted for ${user}` }
          : {
              name: 'registry credentials',
              status: 'warn',
              detail: 'none in TASK_CACHE_OCI_USER (docker/podman config, or anonymous)',
              fix: "export TASK_CACHE_OCI_USER='robot$task-cache+ci' and TASK_CACHE_OCI_PASSWORD as masked CI variables",
            },
      );
    } catch (error) {
      const tls = findInCauses(error, isTlsFailure);
      const code = codeOf(error);
      if (tls) {
        out.push({ name: 'registry reachable', status: 'ok', detail: `${where} (TLS handshake reached)` });
        out.push({
          name: 'registry TLS',
          status: 'fail',
          detail: `certificate not verified (${codeOf(tls)})`,
          fix: tlsFix,
        });
      } else if (code === 'OCI_ERR_UNAUTHORIZED' || code === 'OCI_ERR_DENIED') {
        out.push({ name: 'registry reachable', status: 'ok', detail: where });
        out.push({
          name: 'registry credentials',
          status: 'fail',
          detail: `refused${user ? ` for ${user}` : ' (no credentials given)'}: ${messageOf(error)}`,
          fix: "check TASK_CACHE_OCI_USER / TASK_CACHE_OCI_PASSWORD (the robot account's secret; single-quote a name with $)",
        });
      } else {
        out.push({
          name: 'registry reachable',
          status: 'fail',
          detail: `${where}: ${messageOf(error)}`,
          fix: 'check the host and port of the store URL, and that this machine can reach the registry',
        });
      }
      return out;
    }

    // 2. Push and pull a throw-away blob (random bytes: never one the registry already has).
    const bytes = randomBytes(64);
    const blob = {
      mediaType: media.layer,
      digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
      size: bytes.length,
    };
    try {
      await store.pushBlob(blob, bytes, { signal });
      out.push({
        name: 'registry push',
        status: 'ok',
        detail: `pushed a ${bytes.length}-byte blob to ${where}`,
      });
    } catch (error) {
      const code = codeOf(error);
      out.push({
        name: 'registry push',
        status: 'fail',
        detail: `${where}: ${messageOf(error)}`,
        fix:
          code === 'OCI_ERR_DENIED' || code === 'OCI_ERR_UNAUTHORIZED'
            ? `give ${user ?? 'the account'} push (and pull) permission on the repository ${parsed.repository} (Harbor: the robot account's project permissions)`
            : 'check the registry logs; the account must be allowed to push to this repository',
      });
      return out;
    }
    try {
      const chunks: Uint8Array[] = [];
      for await (const c of await store.fetchBlob(blob, { signal })) chunks.push(c);
      const same = Buffer.concat(chunks).equals(bytes);
      out.push(
        same
          ? { name: 'registry pull', status: 'ok', detail: 'read the blob back, digest verified' }
          : {
              name: 'registry pull',
              status: 'fail',
              detail: 'the blob read back differs',
              fix: 'check proxies between here and the registry',
            },
      );
    } catch (error) {
      out.push({
        name: 'registry pull',
        status: 'fail',
        detail: messageOf(error),
        fix: `give ${user ?? 'the account'} pull permission on ${parsed.repository}`,
      });
    }

    // 3. Media types: a manifest of the entry's standard form, pushed by digest (no tag), then
    // deleted; refused, the compatible form (format.md §5a) the saves then fall back to.
    const pushForm = async (compat: boolean): Promise<string> => {
      const config = Buffer.from(
        JSON.stringify(
          compat
            ? {
                architecture: 'unknown',
                os: 'unknown',
                rootfs: { type: 'layers', diff_ids: [] },
                doctor: true,
              }
            : { doctor: true },
        ),
      );
      const configDesc = {
        mediaType: compat ? COMPAT_CONFIG_MEDIA_TYPE : media.config,
        digest: `sha256:${createHash('sha256').update(config).digest('hex')}`,
        size: config.length,
      };
      await store.pushBlob(configDesc, config, { signal });
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...(compat ? {} : { artifactType: media.artifact }),
          config: configDesc,
          // The compatible form holds format version 1 entries only (docs/format.md §5a, §11.5).
          layers: [compat ? { ...blob, mediaType: CHUNK_MEDIA_TYPE } : blob],
          annotations: {
            'org.opencontainers.image.title': 'task-cache doctor (throw-away)',
            ...(compat ? { [ENTRY_ANNOTATION]: ENTRY_ARTIFACT_TYPE } : {}),
          },
        }),
      );
      return (await store.pushManifest(manifest, 'application/vnd.oci.image.manifest.v1+json', { signal }))
        .digest;
    };
    let manifestDigest: string | undefined;
    try {
      manifestDigest = await pushForm(false);
      out.push({
        name: 'registry media types',
        status: 'ok',
        detail: `accepts ${media.artifact} manifests (the standard entry form)`,
      });
    } catch (error) {
      try {
        manifestDigest = await pushForm(true);
        out.push({
          name: 'registry media types',
          status: 'warn',
          detail: `refused the standard entry form (${(error as { registryCode?: string }).registryCode ?? codeOf(error) ?? messageOf(error)}); accepts the compatible form (image config media type)`,
          fix: 'nothing is required: saves fall back to the compatible form by themselves; add ?format=compat to the store URL to skip the one refused push a week (docs/registries.md)',
        });
      } catch (again) {
        out.push({
          name: 'registry media types',
          status: 'fail',
          detail: `refused the entry's manifest in both forms: ${messageOf(again)}`,
          fix: 'use a registry that accepts OCI image manifests with an image config (distribution ≥ 2.8, Harbor ≥ 2.0, zot, ECR, GHCR, GitLab)',
        });
      }
    }

    // 3b. What the registry supports that task-cache uses (reads only), for the operator.
    if (store.probeCapabilities) {
      try {
        const caps = await store.probeCapabilities({ blob, signal });
        const yes = (v: boolean | undefined) => (v === undefined ? 'unknown' : v ? 'yes' : 'no');
        out.push({
          name: 'registry capabilities',
          status: 'ok',
          detail: [
            `monolithic upload ${yes(caps.monolithicUpload)}`,
            `Range on blobs ${yes(caps.rangeRequests)}`,
            `referrers API ${yes(caps.referrers)}`,
            `HTTP/2 ${yes(caps.http2)}`,
            ...(caps.minPatchBytes ? [`PATCH parts >= ${caps.minPatchBytes} bytes`] : []),
            ...(caps.maxPatchBytes ? [`PATCH parts <= ${caps.maxPatchBytes} bytes`] : []),
          ].join(', '),
        });
      } catch (error) {
        signal?.throwIfAborted();
        out.push({ name: 'registry capabilities', status: 'ok', detail: `not probed: ${messageOf(error)}` });
      }
    }

    // 4. Tag listing.
    if (store.listTags) {
      try {
        let n = 0;
        for await (const _ of store.listTags({ signal })) if (++n >= 1000) break;
        out.push({ name: 'registry tag listing', status: 'ok', detail: `${n}${n >= 1000 ? '+' : ''} tags` });
      } catch (error) {
        out.push({
          name: 'registry tag listing',
          status: 'warn',
          detail: messageOf(error),
          fix: 'allow listing tags for the account (needed to list and prune entries)',
        });
      }
    }

    // 5. Delete the throw-away manifest where deletion is allowed.
    if (manifestDigest && store.deleteManifest) {
      try {
        await store.deleteManifest(manifestDigest, { signal });
        out.push({ name: 'registry delete', status: 'ok', detail: 'the throw-away manifest was deleted' });
      } catch (error) {
        out.push({
          name: 'registry delete',
          status: 'warn',
          detail: `not allowed (${codeOf(error) ?? messageOf(error)}); the untagged throw-away manifest ${manifestDigest} stays`,
          fix: 'optional: allow deletes (REGISTRY_STORAGE_DELETE_ENABLED=true) for pruning; garbage collection removes untagged manifests',
        });
      }
    }
    return out;
  } finally {
    await (store as { close?: () => Promise<void> }).close?.();
  }
}

/** `INFO` text as a map of `field:value` lines. */
function infoFields(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

/** Redis checks: reachable, TLS, password required, credentials, version, memory, persistence, SET NX PX. */
export async function checkRedis(url: string, signal: AbortSignal): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  let parsed: LockUrl;
  try {
    parsed = parseLockUrl(url);
  } catch (error) {
    throw new CliError('CLI_ERR_USAGE', `doctor: --lock: ${messageOf(error)}`, { cause: error });
  }
  if (parsed.kind === 'local') {
    out.push({ name: 'lock', status: 'ok', detail: 'local lock (one machine): no Redis to check' });
    return out;
  }
  const shown = describeLockUrl(parsed);
  if (parsed.deployment !== 'standalone') {
    out.push({
      name: 'redis',
      status: 'warn',
      detail: `${shown}: doctor checks one server`,
      fix: 'run doctor with redis://… (or rediss://…) pointing at the master (or one node) to check it',
    });
    return out;
  }
  const u: RedisStandaloneLockUrl = parsed;
  let Redis: typeof import('ioredis')['Redis'];
  try {
    ({ Redis } = await import('ioredis'));
  } catch (error) {
    throw new CliError('CLI_ERR_USAGE', 'doctor: the Redis checks need ioredis (npm i ioredis)', {
      cause: error,
    });
  }
  const ca = u.tls && u.caPath ? await readFile(u.caPath) : undefined;
  const client = new Redis({
    host: u.host,
    port: u.port,
    db: 0,
    lazyConnect: true,
    connectTimeout: 5000,
    commandTimeout: 5000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    ...(u.tls ? { tls: ca ? { ca } : {} } : {}),
  });
  client.on('error', () => {}); // each call's rejection reports it
  const onAbort = () => client.disconnect();
  signal.addEventListener('abort', onAbort, { once: true });
  const call = (...args: string[]) => client.call(args[0]!, ...args.slice(1));
  try {
    // 1. Reachable and TLS.
    try {
      await client.connect();
      out.push({ name: 'redis reachable', status: 'ok', detail: shown });
      if (u.tls)
        out.push({
          name: 'redis TLS',
          status: 'ok',
          detail: ca ? 'verified with the given CA' : 'verified (system CAs)',
        });
    } catch (error) {
      if (classifyRedisFailure(error) === 'tls' || findInCauses(error, isTlsFailure)) {
        out.push({ name: 'redis reachable', status: 'ok', detail: `${shown} (TLS handshake reached)` });
        out.push({
          name: 'redis TLS',
          status: 'fail',
          detail: `not verified (${codeOf(findInCauses(error, isTlsFailure)) ?? messageOf(error)})`,
          fix: "give the server's CA: rediss://…?ca=/path/to/ca.pem (percent-encode the path)",
        });
      } else
        out.push({
          name: 'redis reachable',
          status: 'fail',
          detail: `${shown}: ${messageOf(error)}`,
          fix: 'check the host and port of the lock URL, and that this machine can reach Redis',
        });
      return out;
    }

    // 2. A password is required: without AUTH, a command is refused with NOAUTH.
    try {
      await call('PING');
      out.push({
        name: 'redis password required',
        status: 'fail',
        detail: 'the server answers without a password',
        fix: 'set requirepass (or turn the default user off: ACL SETUSER default off) and put the password in the lock URL',
      });
    } catch (error) {
      if (redisReplyCode(error) === 'NOAUTH')
        out.push({ name: 'redis password required', status: 'ok', detail: 'NOAUTH without a password' });
      else throw error;
    }

    // 3. The URL's credentials.
    if (u.password !== undefined) {
      try {
        await (u.username === undefined ? call('AUTH', u.password) : call('AUTH', u.username, u.password));
        out.push({
          name: 'redis credentials',
          status: 'ok',
          detail: `accepted${u.username ? ` for user ${u.username}` : ''}`,
        });
      } catch (error) {
        out.push({
          name: 'redis credentials',
          status: 'fail',
          detail: `refused (${redisReplyCode(error) ?? classifyRedisFailure(error)})`,
          fix: 'check the password (and user) in the lock URL: TASK_CACHE_LOCK_URL as a masked CI variable',
        });
        return out;
      }
    } else {
      out.push({
        name: 'redis credentials',
        status: 'warn',
        detail: 'the lock URL has no password',
        fix: 'redis://:PASSWORD@HOST:6379 (or an ACL user: redis://USER:PASSWORD@HOST:6379)',
      });
    }

    // 4. Server facts: INFO (an ACL lock user may not run it: then say where to check).
    const noPerm = (what: string): CheckResult => ({
      name: `redis ${what}`,
      status: 'warn',
      detail: 'not checked: this user may not run INFO/CONFIG (NOPERM)',
      fix: `check ${what} on the server with an admin user (see docs/server-setup.md)`,
    });
    let info: Map<string, string> | undefined;
    try {
      info = infoFields(String(await call('INFO', 'everything')));
    } catch (error) {
      if (redisReplyCode(error) !== 'NOPERM') throw error;
    }
    if (info) {
      const version = info.get('redis_version') ?? info.get('valkey_version') ?? '?';
      const major = Number.parseInt(version, 10);
      out.push(
        major >= 6
          ? { name: 'redis version', status: 'ok', detail: version }
          : {
              name: 'redis version',
              status: 'warn',
              detail: version,
              fix: 'Redis ≥ 6 (TLS, ACL users) is recommended',
            },
      );
      const policy = info.get('maxmemory_policy');
      out.push(
        policy === 'noeviction'
          ? { name: 'redis maxmemory-policy', status: 'ok', detail: 'noeviction' }
          : {
              name: 'redis maxmemory-policy',
              status: 'fail',
              detail: `${policy}: Redis may evict a held lock`,
              fix: 'CONFIG SET maxmemory-policy noeviction (and in redis.conf; on a managed service, its parameter group)',
            },
      );
      const maxmemory = Number(info.get('maxmemory') ?? '0');
      out.push(
        maxmemory > 0
          ? { name: 'redis maxmemory', status: 'ok', detail: `${maxmemory} bytes` }
          : {
              name: 'redis maxmemory',
              status: 'warn',
              detail: 'not set (0: all of the machine)',
              fix: 'set maxmemory (e.g. CONFIG SET maxmemory 256mb): with noeviction, a full Redis refuses writes instead of being killed',
            },
      );
      const aof = info.get('aof_enabled') === '1';
      let save: string | undefined;
      try {
        const reply = (await call('CONFIG', 'GET', 'save')) as string[];
        save = reply[1] ?? '';
      } catch (error) {
        if (redisReplyCode(error) !== 'NOPERM') throw error;
      }
      if (aof || (save !== undefined && save.trim() !== ''))
        out.push({
          name: 'redis persistence',
          status: 'fail',
          detail: [aof ? 'appendonly yes' : '', save?.trim() ? `save "${save}"` : '']
            .filter(Boolean)
            .join(', '),
          fix: 'turn persistence off: CONFIG SET save "" and CONFIG SET appendonly no (and in redis.conf): a restored lease after a restart would block builds',
        });
      else if (save === undefined) out.push(noPerm('persistence (save)'));
      else out.push({ name: 'redis persistence', status: 'ok', detail: 'off (save "", appendonly no)' });
    } else {
      out.push(noPerm('version'), noPerm('maxmemory-policy'), noPerm('persistence'));
    }

    // 5. SET NX PX on a key of the lock's pattern ({lock:…}: what an ACL lock user is allowed).
    const key = `{lock:task-cache-doctor-${randomBytes(6).toString('hex')}}`;
    try {
      const first = await call('SET', key, 'doctor', 'NX', 'PX', '10000');
      const second = await call('SET', key, 'doctor', 'NX', 'PX', '10000');
      await call('DEL', key);
      out.push(
        first === 'OK' && second === null
          ? {
              name: 'redis SET NX PX',
              status: 'ok',
              detail: `on ${key.replace(/-[0-9a-f]+}$/, '-…}')} (the lock key pattern)`,
            }
          : {
              name: 'redis SET NX PX',
              status: 'fail',
              detail: `unexpected replies ${JSON.stringify(first)}, ${JSON.stringify(second)}`,
              fix: 'the server does not behave as Redis: use Redis ≥ 6 or Valkey',
            },
      );
    } catch (error) {
      const code = redisReplyCode(error);
      out.push({
        name: 'redis SET NX PX',
        status: 'fail',
        detail: `refused (${code ?? messageOf(error)})`,
        fix:
          code === 'NOPERM'
            ? 'allow the lock key pattern for the ACL user: the rule in docs/server-setup.md ("An ACL user for the lock")'
            : code === 'OOM'
              ? 'Redis is full (maxmemory reached): raise maxmemory'
              : 'check the server',
      });
    }
    return out;
  } catch (error) {
    out.push({ name: 'redis', status: 'fail', detail: messageOf(error), fix: 'check the server' });
    return out;
  } finally {
    signal.removeEventListener('abort', onAbort);
    client.disconnect();
  }
}

/** `task-cache doctor`: returns the exit code. */
export async function doctorCommand(argv: readonly string[], io: CliIo): Promise<number> {
  let values: { cache?: string; lock?: string; 'format-version'?: string; json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        cache: { type: 'string' },
        lock: { type: 'string' },
        'format-version': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (error) {
    throw new CliError('CLI_ERR_USAGE', `doctor: ${messageOf(error)}`, { cause: error });
  }
  if (values.help) {
    io.stdout.write(DOCTOR_USAGE);
    return EXIT.ok;
  }
  const cacheUrl = values.cache ?? io.env.TASK_CACHE_URL ?? '';
  const lockUrl = values.lock ?? io.env.TASK_CACHE_LOCK_URL ?? '';
  const version =
    values['format-version'] !== undefined
      ? formatVersion('doctor: --format-version', values['format-version'])
      : (envFormatVersion(io.env) ?? ENTRY_FORMAT_VERSION);
  const controller = new AbortController();
  const stop = () => controller.abort(new Error('interrupted'));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const results: CheckResult[] = [];
  try {
    try {
      results.push(...(await checkRegistry(cacheUrl, io.env, controller.signal, version)));
    } catch (error) {
      results.push({
        name: 'store',
        status: 'fail',
        detail: messageOf(error),
        fix: 'fix the store URL (--cache / TASK_CACHE_URL): oci://HOST/REPOSITORY[?ca=PATH]',
      });
    }
    results.push(...(await checkRedis(lockUrl, controller.signal)));
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  const failed = results.some((r) => r.status === 'fail');
  if (values.json) io.stdout.write(`${JSON.stringify({ ok: !failed, checks: results })}\n`);
  else
    for (const r of results) {
      io.stdout.write(`${r.status.padEnd(5)} ${r.name}: ${r.detail}\n`);
      if (r.fix && r.status !== 'ok') io.stdout.write(`      fix: ${r.fix}\n`);
    }
  return failed ? EXIT.doctorFailed : EXIT.ok;
}
