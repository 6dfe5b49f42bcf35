// The client's end of the tunnel: one loopback listener for the whole session. Each accepted
// connection runs the client half of the proof in-process (client-proof.ts), then waits for the
// receiver's command: a check ends there, and an rsync connection is handed, in the same tick, to
// `rsync --daemon` in inetd mode (daemon.ts). The port is never released and re-bound, so no other local process can slip in
// between check and pull. A pending connection costs a socket and a timer, no process.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { SshRSyncError, oneLine } from '../errors.js';
import { proveReceiver, type ProofOutcome } from './client-proof.js';
import { parentDeathPrefix, startDaemon, type RunningDaemon } from './daemon.js';
import type { TunnelEvent } from './events.js';
import { assertTunnelKey } from './proof.js';

export interface TunnelListenerOptions {
  key: Buffer;
  /** The daemon to run on a verified connection, e.g. ['rsync', '--daemon', '--config=FILE']. */
  rsyncArgv: string[];
  handshakeTimeoutMs: number;
  /** Connections still in the proof allowed at once; more are closed at once. Default 64. */
  maxPending?: number;
  /** rsync daemons allowed at once; a proven rsync connection beyond that is closed. Default 4. */
  maxConcurrent?: number;
  onEvent?: (event: TunnelEvent) => void;
  env?: NodeJS.ProcessEnv;
}

export interface TunnelListener {
  readonly port: number;
  /** Stops accepting, drops pending connections, kills every daemon, and resolves when they are gone. */
  close(): Promise<void>;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new SshRSyncError('EUSAGE', `${name} must be a positive integer, got ${value}`);
  return value;
}

function validate(options: TunnelListenerOptions): { maxPending: number; maxConcurrent: number } {
  assertTunnelKey(options.key);
  if (options.rsyncArgv.length === 0) throw new SshRSyncError('EUSAGE', 'tunnel listener needs an rsync command');
  positiveInteger('handshakeTimeoutMs', options.handshakeTimeoutMs);
  return {
    maxPending: positiveInteger('maxPending', options.maxPending ?? 64),
    maxConcurrent: positiveInteger('maxConcurrent', options.maxConcurrent ?? 4),
  };
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
  const { maxPending, maxConcurrent } = validate(options);
  const key = Buffer.from(options.key);
  // The daemon's argv waits for a setpriv probe (a process, ~10 ms; cached): not before ssh can
  // start (the client starts the probe right after ssh), only before a connection's proof begins,
  // which comes well before its daemon has to start (in one tick).
  let argv: string[] | undefined;
  const argvReady = (): Promise<string[]> => parentDeathPrefix().then((prefix) => (argv = [...prefix, ...options.rsyncArgv]));
  const timeoutMs = options.handshakeTimeoutMs;
  const emit = (event: TunnelEvent): void => options.onEvent?.(event);
  const pending = new Map<Socket, (why: string) => void>();
  const daemons = new Set<RunningDaemon>();
  let connections = 0;
  let closing: Promise<void> | undefined;

  const proven = (socket: Socket, connection: number, outcome: ProofOutcome): void => {
    if ('rejected' in outcome) return emit({ type: 'rejected', connection, reason: outcome.rejected });
    if (outcome.command === 'check') {
      socket.resume(); // to see the receiver's end; it sends nothing else
      socket.end();
      setTimeout(() => socket.destroy(), timeoutMs).unref();
      return emit({ type: 'verified', connection, command: 'check' });
    }
    let refusal: string | undefined;
    // Never true, as every chunk went through the proof; checked because such bytes would be lost.
    if (socket.readableLength > 0) refusal = 'tunnel proof failed: receiver sent bytes after its command';
    else if (daemons.size >= maxConcurrent) refusal = `too many rsync daemons (at most ${maxConcurrent} at a time)`;
    if (refusal) {
      socket.destroy();
      return emit({ type: 'rejected', connection, reason: refusal });
    }
    pending.delete(socket);
    const daemon = startDaemon(socket, { connection, argv: argv!, env: options.env, emit }); // set before any proof began
    daemons.add(daemon);
    void daemon.done.then(() => daemons.delete(daemon));
    emit({ type: 'verified', connection, command: 'rsync' });
  };

  const server = createServer({ pauseOnConnect: true, noDelay: true }, (socket) => {
    const connection = ++connections;
    socket.on('error', () => undefined); // every failure is reported through the proof's outcome
    if (closing) return void socket.destroy();
    if (pending.size >= maxPending) {
      socket.destroy();
      return emit({ type: 'rejected', connection, reason: `too many pending tunnel connections (at most ${maxPending} at a time)` });
    }
    socket.once('close', () => pending.delete(socket));
    const onProven = (): void => emit({ type: 'proven', connection });
    const prove = (): void => {
      if (closing || socket.destroyed) return void socket.destroy();
      pending.set(socket, proveReceiver(socket, key, timeoutMs, (outcome) => proven(socket, connection, outcome), onProven));
    };
    if (argv) prove();
    else {
      pending.set(socket, () => undefined); // counted, and destroyed by close(), while it waits
      void argvReady().then(prove);
    }
  });
  server.on('error', (error) => emit({ type: 'log', connection: 0, line: `tunnel listener: ${oneLine(error)}` }));
  const port = await listen(server).catch((error: unknown) => {
    throw new SshRSyncError('ETUNNEL', `cannot open the tunnel listener: ${oneLine(error)}`, { cause: error });
  });

  const closeAll = async (): Promise<void> => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const [socket, abort] of pending) {
      abort('tunnel listener closed');
      socket.destroy();
    }
    const running = [...daemons];
    running.forEach((daemon) => daemon.stop());
    await Promise.all(running.map((daemon) => daemon.done));
    await closed;
    key.fill(0);
  };
  return { port, close: () => (closing ??= closeAll()) };
}
