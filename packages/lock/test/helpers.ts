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

/** What the child's `misconfig` mode reports about the error it caught. */
export interface MisconfigReport {
  ok: boolean;
  ms: number;
  isLockError: boolean;
  name: string;
  code: string;
  reason: string;
  message: string;
  stack: string;
  cause: string;
  inspected: string;
}

/**
 * Runs `connectLock(url)` (+ `acquireOrWait(key)`) in a child process that never closes anything, and
 * returns its report once it exited on its own. Fails the test when something kept the child alive or
 * when any of `secrets` (raw or percent-encoded) appears in the message, stack, cause or inspected error.
 */
export async function misconfigReport(
  url: string,
  secrets: readonly string[],
  options: { connectTimeoutMs?: number; key?: string } = {},
): Promise<MisconfigReport> {
  const connectTimeoutMs = options.connectTimeoutMs ?? 3_000;
  const child = runChild(
    ['misconfig', url, String(connectTimeoutMs), ...(options.key ? [options.key] : [])],
    30_000,
  );
  const { code, signal, lines, stderr } = await child.exited;
  if (signal !== null) throw new Error(`the child had to be killed (${signal}): something kept it alive`);
  if (code !== 0) throw new Error(`the child exited with ${code}: ${stderr}`);
  const report = JSON.parse(lines[0]!) as MisconfigReport;
  for (const secret of secrets) {
    for (const field of ['message', 'stack', 'cause', 'inspected'] as const) {
      for (const form of [secret, encodeURIComponent(secret)]) {
        if (String(report[field]).includes(form)) {
          throw new Error(`the ${field} of the error contains a secret: ${String(report[field])}`);
        }
      }
    }
  }
  if (report.ms > connectTimeoutMs + 1_500) {
    throw new Error(`the error took ${Math.round(report.ms)} ms (connect timeout ${connectTimeoutMs} ms)`);
  }
  return report;
}
