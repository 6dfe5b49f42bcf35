// The client's end of the tunnel: one loopback listener for the whole session. Each accepted
// connection runs the client half of the proof in-process (client-proof.ts), then waits for the
// receiver's command: a check ends there, and an rsync connection is handed, in the same tick, to
// `rsync --daemon` in inetd mode (daemon.ts). The port is never released and re-bound, so no other
// local process can slip in between check and pull. A pending connection costs a socket and a
// timer, no process. Other local users cannot crowd the receiver out (docs/protocol.md §2):
// unproven connections get a short deadline and live in bounded budgets that drop their oldest
// member rather than refuse a new one, and connections whose peer socket belongs to another uid
// (the kernel's TCP table says) have a budget of their own, apart from those of our own ssh.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { SshRSyncError, oneLine } from '../../errors.js';
import { proveReceiver, type ProofOutcome } from './client-proof.js';
import { parentDeathPrefix, startDaemon, type RunningDaemon } from './daemon.js';
import type { TunnelEvent } from './events.js';
import { PendingBudget, type PendingConnection } from './pending-budget.js';
import { assertTunnelKey } from './proof.js';
import { loopbackPeerUids } from './tcp-table.js';

export interface TunnelListenerOptions {
  key: Buffer;
  /** The daemon to run on a verified connection, e.g. ['rsync', '--daemon', '--config=FILE']. */
  rsyncArgv: string[];
  handshakeTimeoutMs: number;
  /**
   * How long a new connection has to send the receiver's 64-byte reply to our opener; it is
   * dropped after that. The receiver answers at once. Default 5000, never more than handshakeTimeoutMs.
   */
  replyTimeoutMs?: number;
  /**
   * Unproven connections from this user (our ssh: the receiver's, and any a stranger opened to
   * the server's tunnel port) held at once; a new one beyond that drops the oldest. Default 1024.
   */
  maxPending?: number;
  /** The same for connections from other local users (told apart on Linux only). Default 64. */
  maxPendingOthers?: number;
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

/** Proven connections that still wait for their command, at most (only a holder of K makes one). */
const MAX_WAITING = 16;
const DEFAULT_REPLY_TIMEOUT_MS = 5000;
/** The kernel's table is read at most this often, however fast connections arrive. */
const TABLE_READ_INTERVAL_MS = 50;

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new SshRSyncError('EUSAGE', `${name} must be a positive integer, got ${value}`);
  return value;
}

function validate(options: TunnelListenerOptions) {
  assertTunnelKey(options.key);
  if (options.rsyncArgv.length === 0) throw new SshRSyncError('EUSAGE', 'tunnel listener needs an rsync command');
  const handshakeTimeoutMs = positiveInteger('handshakeTimeoutMs', options.handshakeTimeoutMs);
  return {
    replyTimeoutMs: Math.min(handshakeTimeoutMs, positiveInteger('replyTimeoutMs', options.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS)),
    maxPending: positiveInteger('maxPending', options.maxPending ?? 1024),
    maxPendingOthers: positiveInteger('maxPendingOthers', options.maxPendingOthers ?? 64),
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

interface Arrival {
  socket: Socket;
  connection: number;
}

// Opens the session's tunnel listener on 127.0.0.1 (a random port).
export async function startTunnelListener(options: TunnelListenerOptions): Promise<TunnelListener> {
  const limits = validate(options);
  const key = Buffer.from(options.key);
  // The daemon's argv waits for a setpriv probe (a process, ~10 ms; cached): not before ssh can
  // start (the client starts the probe right after ssh), only before a connection's proof begins,
  // which comes well before its daemon has to start (in one tick).
  let argv: string[] | undefined;
  const argvReady = (): Promise<string[]> => parentDeathPrefix().then((prefix) => (argv = [...prefix, ...options.rsyncArgv]));
  const timeoutMs = options.handshakeTimeoutMs;
  const emit = (event: TunnelEvent): void => options.onEvent?.(event);
  const ownUid = process.geteuid?.();
  const own = new PendingBudget(limits.maxPending, 'this user');
  const others = new PendingBudget(limits.maxPendingOthers, 'other local users');
  const waiting = new Map<Socket, (why: string) => void>(); // proven, until their command
  const daemons = new Set<RunningDaemon>();
  let arrivals: Arrival[] = [];
  let sortTimer: { cancel(): void } | undefined;
  let lastTableRead = -Infinity;
  let connections = 0;
  let port = 0;
  let stopping = false; // set first thing in close()
  let closing: Promise<void> | undefined;

  const proven = (socket: Socket, connection: number, outcome: ProofOutcome): void => {
    waiting.delete(socket);
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
    else if (daemons.size >= limits.maxConcurrent) refusal = `too many rsync daemons (at most ${limits.maxConcurrent} at a time)`;
    if (refusal) {
      socket.destroy();
      return emit({ type: 'rejected', connection, reason: refusal });
    }
    const daemon = startDaemon(socket, { connection, argv: argv!, env: options.env, emit }); // set before any proof began
    daemons.add(daemon);
    void daemon.done.then(() => daemons.delete(daemon));
    emit({ type: 'verified', connection, command: 'rsync' });
  };

  // A connection in its budget: waits for the daemon's argv, then runs the proof within the
  // reply timeout; once the receiver is proven it leaves the budget for the waiting set.
  const admit = ({ socket, connection }: Arrival, budget: PendingBudget): void => {
    let abort: ((why: string) => void) | undefined;
    const member: PendingConnection = {
      socket,
      connection,
      drop(why) {
        if (abort) return abort(why); // reported through the proof's outcome
        socket.destroy();
        emit({ type: 'rejected', connection, reason: why });
      },
    };
    budget.admit(member);
    socket.once('close', () => budget.delete(socket));
    const onProven = (): void => {
      budget.delete(socket);
      if (waiting.size >= MAX_WAITING) return abort!(`too many proven tunnel connections waiting for a command (at most ${MAX_WAITING})`);
      waiting.set(socket, abort!);
      emit({ type: 'proven', connection });
    };
    const prove = (): void => {
      if (stopping || socket.destroyed) return void socket.destroy();
      abort = proveReceiver(socket, key, limits.replyTimeoutMs, (outcome) => proven(socket, connection, outcome), onProven);
    };
    if (argv) prove();
    else void argvReady().then(prove);
  };

  // Connections that arrived since the last read of the kernel's table are sorted with one read:
  // ours (same uid as this process: our ssh) or another user's. Unknown owners count as others;
  // where the table cannot be read at all (not Linux), everyone shares our budget.
  const sortArrivals = (): void => {
    sortTimer?.cancel();
    sortTimer = undefined;
    lastTableRead = performance.now();
    const live: Arrival[] = [];
    for (const arrival of arrivals) {
      if (stopping || arrival.socket.destroyed || arrival.socket.remoteAddress === undefined) arrival.socket.destroy();
      else live.push(arrival);
    }
    arrivals = [];
    if (live.length === 0) return;
    const uids = loopbackPeerUids(port, live.map(({ socket }) => ({ address: socket.remoteAddress!, port: socket.remotePort! })));
    const groups = new Map<PendingBudget, Arrival[]>([[own, []], [others, []]]);
    live.forEach((arrival, i) => groups.get(!uids || uids[i] === ownUid ? own : others)!.push(arrival));
    for (const [budget, group] of groups) {
      // Only members that had their chance (their opener went out) make room for new ones: when
      // more arrived at once than the budget holds, the latest of them go.
      for (const { socket, connection } of group.splice(budget.limit)) {
        socket.destroy();
        emit({ type: 'rejected', connection, reason: `dropped: more than ${budget.limit} new tunnel connections from ${budget.peers} at once` });
      }
      group.forEach((arrival) => admit(arrival, budget));
    }
  };

  const server = createServer({ pauseOnConnect: true, noDelay: true }, (socket) => {
    const connection = ++connections;
    socket.on('error', () => undefined); // every failure is reported through the proof's outcome
    if (stopping) return void socket.destroy();
    arrivals.push({ socket, connection });
    // As many unsorted connections as the budgets hold are sorted at once, not dropped: a flood
    // from other users must not push ours out before we know whose is whose.
    if (arrivals.length >= limits.maxPending + limits.maxPendingOthers) return sortArrivals();
    if (sortTimer) return;
    const wait = lastTableRead + TABLE_READ_INTERVAL_MS - performance.now();
    if (wait > 0) {
      const timer = setTimeout(sortArrivals, wait);
      sortTimer = { cancel: () => clearTimeout(timer) };
    } else {
      const immediate = setImmediate(sortArrivals);
      sortTimer = { cancel: () => clearImmediate(immediate) };
    }
  });
  server.on('error', (error) => emit({ type: 'log', connection: 0, line: `tunnel listener: ${oneLine(error)}` }));
  port = await listen(server).catch((error: unknown) => {
    throw new SshRSyncError('ETUNNEL', `cannot open the tunnel listener: ${oneLine(error)}`, { cause: error });
  });

  const closeAll = async (): Promise<void> => {
    stopping = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    sortArrivals(); // destroys them, as we are closing
    for (const member of [...own.all(), ...others.all()]) {
      member.drop('tunnel listener closed');
      member.socket.destroy();
    }
    for (const [socket, abort] of waiting) {
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
