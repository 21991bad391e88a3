import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./fixtures/child.ts', import.meta.url));

export interface ChildRun {
  pid: number;
  /** Resolves with exit code / signal and stdout lines once the child exits. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; lines: string[]; stderr: string }>;
  /** Resolves with the next stdout line. */
  nextLine(): Promise<string>;
  write(text: string): void;
  kill(signal: NodeJS.Signals): void;
}

/** Runs test/fixtures/child.ts in a separate Node process (tsx loader); killed after `timeoutMs`. */
export function runChild(args: string[], timeoutMs = 60_000): ChildRun {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: fileURLToPath(new URL('..', import.meta.url)),
  });
  const lines: string[] = [];
  const waiting: Array<(line: string) => void> = [];
  let buffer = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    for (let i = buffer.indexOf('\n'); i !== -1; i = buffer.indexOf('\n')) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      lines.push(line);
      waiting.shift()?.(line);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    lines: string[];
    stderr: string;
  }>((resolve) =>
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      // let the stdout 'data' events drain
      setImmediate(() => resolve({ code, signal, lines, stderr }));
    }),
  );
  let consumed = 0;
  return {
    pid: child.pid!,
    exited,
    nextLine: () =>
      new Promise<string>((resolve, reject) => {
        if (consumed < lines.length) {
          resolve(lines[consumed++]!);
          return;
        }
        waiting.push((line) => {
          consumed++;
          resolve(line);
        });
        exited.then(({ stderr: err }) => reject(new Error(`child exited before printing a line: ${err}`)));
      }),
    write: (text) => child.stdin.write(text),
    kill: (signal) => child.kill(signal),
  };
}

export const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `calls` of one command in `INFO commandstats` (0 if never called). */
export function commandCalls(info: string, command: string): number {
  const m = new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info);
  return m ? Number(m[1]) : 0;
}
