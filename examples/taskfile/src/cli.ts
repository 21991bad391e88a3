/**
 * Command line: `task [--dir DIR] [--force] [--verbose] TASK...`. Resolves to the exit code.
 */
import { parseArgs } from 'node:util';
import { runTasks } from './runner.js';

const USAGE = `usage: task [--dir DIR] [--force] [--verbose] TASK...

Runs tasks of DIR/Taskfile.yml (default: the current directory). Tasks with a
cache: block restore their outputs from the cache, or build and save them.

  -d, --dir DIR   directory of the Taskfile
  -f, --force     run even when up to date; cached tasks rebuild and overwrite their entry
  -v, --verbose   print cache keys, lookups and timings
  -h, --help      this text`;

/** Runs the CLI with `argv` (without `node` and the script); resolves to the exit code. */
export async function main(argv: readonly string[], options: { signal?: AbortSignal } = {}): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    process.stderr.write(`task: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (parsed.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  return runTasks({
    dir: parsed.values.dir ?? process.cwd(),
    tasks: parsed.positionals,
    force: parsed.values.force ?? false,
    verbose: parsed.values.verbose ?? false,
    signal: options.signal,
  });
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      dir: { type: 'string', short: 'd' },
      force: { type: 'boolean', short: 'f' },
      verbose: { type: 'boolean', short: 'v' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

/** Runs the CLI for this process: wires Ctrl-C to an abort and sets `process.exitCode`. */
export async function runCli(): Promise<void> {
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    process.exitCode = await main(process.argv.slice(2), { signal: controller.signal });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
