import { createServer, type Socket } from 'node:net';

/** A TCP listener that accepts connections and never answers, started by {@link startBlackHole}. */
export interface BlackHoleFixture {
  /** Always `'127.0.0.1'`. */
  readonly host: string;
  /** Random free port. */
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Bytes received so far (requests that were never answered). */
  readonly received: number;
  /** Closes the listener and destroys every accepted connection; idempotent. */
  close(): Promise<void>;
}

/**
 * Starts a "black hole" on 127.0.0.1: a TCP listener that accepts every connection, reads what it is
 * sent and never answers or closes (a black-holed load balancer, a frozen server behind a proxy). Use it
 * as a Redis or registry address to test that every wait is bounded.
 */
export async function startBlackHole(): Promise<BlackHoleFixture> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  let received = 0;
  const server = createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  let closed = false;
  return {
    host: '127.0.0.1',
    port,
    get accepted() {
      return accepted;
    },
    get received() {
      return received;
    },
    async close() {
      if (closed) return;
      closed = true;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
