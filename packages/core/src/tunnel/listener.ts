// The client's end of the tunnel: one loopback listener for the whole session. Every accepted
// connection goes, unread, to its own gate process (gate.ts) that checks the receiver's proof
// and then runs `rsync --daemon` in inetd mode on that same connection. The port is never
// released and re-bound, so no other local process can slip in between check and pull.
import { createServer, type AddressInfo, type Server } from 'node:net';
import { SshRSyncError, oneLine } from '../errors.js';
import type { TunnelEvent } from './events.js';
import { startGate, type RunningGate } from './gate-process.js';
import { assertTunnelKey } from './proof.js';

export interface TunnelListenerOptions {
  key: Buffer;
  /** The daemon to run on a verified connection, e.g. ['rsync', '--daemon', '--config=FILE']. */
  rsyncArgv: string[];
  handshakeTimeoutMs: number;
  /** Live connections allowed at once; more are closed at once. Default 4. */
  maxConcurrent?: number;
  onEvent?: (event: TunnelEvent) => void;
  env?: NodeJS.ProcessEnv;
}

export interface TunnelListener {
  readonly port: number;
  /** Stops accepting, kills every gate and daemon, and resolves when they are gone. */
  close(): Promise<void>;
}

function validate(options: TunnelListenerOptions): number {
  assertTunnelKey(options.key);
  const max = options.maxConcurrent ?? 4;
  if (options.rsyncArgv.length === 0) throw new SshRSyncError('EUSAGE', 'tunnel listener needs an rsync command');
  if (!Number.isInteger(max) || max < 1) throw new SshRSyncError('EUSAGE', `maxConcurrent must be a positive integer, got ${max}`);
  if (!Number.isInteger(options.handshakeTimeoutMs) || options.handshakeTimeoutMs <= 0) {
    throw new SshRSyncError('EUSAGE', `handshakeTimeoutMs must be a positive integer, got ${options.handshakeTimeoutMs}`);
  }
  return max;
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

// Opens the session's tunnel listener on 127.0.0.1 (a random port).
export async function startTunnelListener(options: TunnelListenerOptions): Promise<TunnelListener> {
  const maxConcurrent = validate(options);
  const key = Buffer.from(options.key);
  const emit = (event: TunnelEvent): void => options.onEvent?.(event);
  const gates = new Set<RunningGate>();
  let connections = 0;
  let closing: Promise<void> | undefined;

  const server = createServer({ pauseOnConnect: true }, (socket) => {
    const connection = ++connections;
    if (closing) return void socket.destroy();
    if (gates.size >= maxConcurrent) {
      socket.destroy();
      emit({ type: 'rejected', connection, reason: `too many tunnel connections (at most ${maxConcurrent} at a time)` });
      return;
    }
    const gate = startGate(socket, { connection, key, rsyncArgv: options.rsyncArgv, handshakeTimeoutMs: options.handshakeTimeoutMs, env: options.env, emit });
    gates.add(gate);
    void gate.done.then(() => gates.delete(gate));
  });
  server.on('error', (error) => emit({ type: 'log', connection: 0, line: `tunnel listener: ${oneLine(error)}` }));
  const port = await listen(server).catch((error: unknown) => {
    throw new SshRSyncError('ETUNNEL', `cannot open the tunnel listener: ${oneLine(error)}`, { cause: error });
  });

  const closeAll = async (): Promise<void> => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    const running = [...gates];
    running.forEach((gate) => gate.stop());
    await Promise.all(running.map((gate) => gate.done));
    await closed;
    key.fill(0);
  };
  return { port, close: () => (closing ??= closeAll()) };
}
