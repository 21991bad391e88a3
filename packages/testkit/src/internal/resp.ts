import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { RedisReplyError, TestkitError } from '../errors.js';

/** Where and as whom {@link sendCommand} connects. */
export interface RespTarget {
  host: string;
  port: number;
  /** ACL user for AUTH; omitted → the `default` user. */
  username?: string | undefined;
  /** Password for AUTH; omitted → no AUTH is sent. */
  password?: string | undefined;
  /** TLS with this CA (PEM) instead of plain TCP. */
  tlsCa?: string | undefined;
  signal?: AbortSignal | undefined;
}

const encode = (args: ReadonlyArray<string | number>): Buffer => {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = Buffer.from(String(arg), 'utf8');
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
};

/** Thrown inside the parser when the buffer does not hold a complete reply yet. */
const INCOMPLETE = Symbol('incomplete');

/**
 * Parses one RESP2 reply at `offset`. Error replies become {@link RedisReplyError} values (not
 * thrown) so that a nested error inside an array (EXEC) stays in place.
 */
function parse(buf: Buffer, offset: number): { value: unknown; next: number } {
  const lineEnd = buf.indexOf('\r\n', offset);
  if (lineEnd < 0) throw INCOMPLETE;
  const type = String.fromCharCode(buf[offset]!);
  const line = buf.toString('utf8', offset + 1, lineEnd);
  const after = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, next: after };
    case '-':
      return { value: new RedisReplyError(line), next: after };
    case ':':
      return { value: Number(line), next: after };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, next: after };
      if (buf.length < after + len + 2) throw INCOMPLETE;
      return { value: buf.toString('utf8', after, after + len), next: after + len + 2 };
    }
    case '*': {
      const len = Number(line);
      if (len < 0) return { value: null, next: after };
      const items: unknown[] = [];
      let next = after;
      for (let i = 0; i < len; i++) {
        const item = parse(buf, next);
        items.push(item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new TestkitError(
        'TESTKIT_ERR_COMMAND_FAILED',
        `unexpected RESP type byte ${JSON.stringify(type)}`,
      );
  }
}

/**
 * Sends one command on a fresh connection (after `AUTH` when a password is given) and resolves
 * with the reply: strings, numbers, `null`, arrays. An error reply rejects with
 * {@link RedisReplyError} whose message is the server's text (`WRONGPASS ...`, `NOAUTH ...`, `OOM ...`).
 */
export async function sendCommand(
  target: RespTarget,
  args: ReadonlyArray<string | number>,
): Promise<unknown> {
  if (args.length === 0)
    throw new TestkitError('TESTKIT_ERR_INVALID_OPTION', 'command: at least the command name is required');
  const requests: Array<ReadonlyArray<string | number>> = [];
  if (target.password !== undefined) {
    requests.push(
      target.username === undefined ? ['AUTH', target.password] : ['AUTH', target.username, target.password],
    );
  }
  requests.push(args);
  target.signal?.throwIfAborted();
  return await new Promise<unknown>((resolve, reject) => {
    const socket =
      target.tlsCa === undefined
        ? connect({ host: target.host, port: target.port })
        : tlsConnect({ host: target.host, port: target.port, ca: target.tlsCa });
    let buf: Buffer = Buffer.alloc(0);
    const replies: unknown[] = [];
    let settled = false;
    const finish = (error: unknown, value?: unknown) => {
      if (settled) return;
      settled = true;
      target.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (error) reject(error);
      else resolve(value);
    };
    const onAbort = () => finish(target.signal?.reason);
    target.signal?.addEventListener('abort', onAbort, { once: true });
    socket.on(target.tlsCa === undefined ? 'connect' : 'secureConnect', () =>
      socket.write(Buffer.concat(requests.map(encode))),
    );
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      try {
        while (buf.length > 0) {
          const { value, next } = parse(buf, 0);
          buf = buf.subarray(next);
          replies.push(value);
        }
      } catch (error) {
        if (error !== INCOMPLETE) return finish(error);
      }
      if (replies.length >= requests.length) {
        // The AUTH reply comes first; its failure is the interesting one.
        const failed = replies.find((r) => r instanceof RedisReplyError);
        if (failed && failed !== replies[replies.length - 1]) return finish(failed);
        const last = replies[replies.length - 1];
        if (last instanceof RedisReplyError) return finish(last);
        finish(undefined, last);
      }
    });
    socket.on('error', (error) =>
      finish(
        new TestkitError(
          'TESTKIT_ERR_COMMAND_FAILED',
          `redis ${target.host}:${target.port}: ${error.message}`,
          {
            cause: error,
          },
        ),
      ),
    );
    socket.on('close', () =>
      finish(
        new TestkitError(
          'TESTKIT_ERR_COMMAND_FAILED',
          `redis ${target.host}:${target.port} closed the connection before replying`,
        ),
      ),
    );
  });
}
