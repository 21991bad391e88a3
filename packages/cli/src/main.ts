/**
 * The `task-cache` command: dispatches to the subcommands and turns their errors into exit codes.
 */
import { createRequire } from 'node:module';
import { CliError, EXIT } from './errors.js';
import type { CliIo } from './run.js';

const USAGE = `Usage: task-cache <command> [options]

Commands:
  run [options] [TASK] [-- COMMAND [ARGS...]]   run a command under the cache (task-cache run --help)
  doctor [--cache URL] [--lock URL]             check a registry + Redis set-up against the guide
  ls [--cache URL] [--task NAME]                list the entries of the store
  inspect KEY [--cache URL]                     show an entry: files, sizes, chunks, inputs, signature
  explain [options] TASK                        why TASK's key misses: the inputs that changed
  stats [--json]                                hits, misses, time saved, bytes, per task and store
  prune [--cache URL] [--dry-run] [--json]      bound the local store now

Options: -h, --help; -v, --version. Docs: docs/cli.md of task-cache.
`;

/** Runs `task-cache` with `argv` (without `node` and the script); resolves to the exit code. */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run': {
        // NOTE: loaded on demand: `--help` and usage errors need not load core.
        const { runCommand } = await import('./run.js');
        return await runCommand(rest, io);
      }
      case 'doctor': {
        const { doctorCommand } = await import('./doctor.js');
        return await doctorCommand(rest, io);
      }
      case 'ls': {
        const { lsCommand } = await import('./entries.js');
        return await lsCommand(rest, io);
      }
      case 'inspect': {
        const { inspectCommand } = await import('./entries.js');
        return await inspectCommand(rest, io);
      }
      case 'explain': {
        const { explainCommand } = await import('./maintenance.js');
        return await explainCommand(rest, io);
      }
      case 'stats': {
        const { statsCommand } = await import('./maintenance.js');
        return await statsCommand(rest, io);
      }
      case 'prune': {
        const { pruneCommand } = await import('./maintenance.js');
        return await pruneCommand(rest, io);
      }
      case '-v':
      case '--version': {
        const pkg = createRequire(import.meta.url)('../package.json') as { version: string };
        io.stdout.write(`${pkg.version}\n`);
        return EXIT.ok;
      }
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        (command === undefined ? io.stderr : io.stdout).write(USAGE);
        return command === undefined ? EXIT.usage : EXIT.ok;
      default:
        throw new CliError(
          'CLI_ERR_USAGE',
          `unknown command ${JSON.stringify(command)} (commands: run, explain, stats, prune, doctor, ls, inspect)`,
        );
    }
  } catch (error) {
    if (error instanceof CliError) {
      io.stderr.write(`task-cache: ${error.message}\n`);
      return EXIT.usage;
    }
    io.stderr.write(`task-cache: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
    return EXIT.internal;
  }
}
