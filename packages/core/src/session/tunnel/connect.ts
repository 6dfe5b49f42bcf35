// The receiver's end of the tunnel: it proves itself first and checks the client's proof during the
// handshake (the tunnel check), then holds the connection until rsync runs and says what it is for:
// rsync pulls through the very connection that was checked (SPEC §3).
import { connect, type Socket } from 'node:net';
import { SshRSyncError, oneLine } from '../../errors.js';
import { remainingMs, startDeadline, type Deadline } from './deadline.js';
import {
  MAC_BYTES,
  NONCE_BYTES,
  TUNNEL_MAGIC,
  assertTunnelKey,
  clientMac,
  commandByte,
  macMatches,
  newNonce,
  proofFailed,
  receiverMac,
} from './proof.js';
import { socketInode, watchIdle, type IdleWatch } from './idle-watch.js';
import { readExact } from './socket-reader.js';

const CLIENT_REFUSED_HINT = " (the client did not accept the receiver's proof: wrong key?)";

function write(socket: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) =>
    socket.write(data, (error) => (error ? reject(proofFailed(`could not write to the connection (${oneLine(error)})`)) : resolve())),
  );
}

async function prove(socket: Socket, key: Buffer, deadline: Deadline): Promise<void> {
  const magic = await readExact(socket, TUNNEL_MAGIC.length, deadline);
  if (!magic.equals(TUNNEL_MAGIC)) throw proofFailed('wrong magic');
  const clientNonce = await readExact(socket, NONCE_BYTES, deadline);
  const receiverNonce = newNonce();
  await write(socket, Buffer.concat([receiverNonce, receiverMac(key, clientNonce, receiverNonce)]));
  const proof = await readExact(socket, MAC_BYTES, deadline, CLIENT_REFUSED_HINT);
  if (!macMatches(clientMac(key, receiverNonce, clientNonce), proof)) throw proofFailed("client's proof is wrong");
}

// Runs the receiver's half of the proof on a connected socket, and sends no command yet. On
// failure the socket is destroyed and the error is one line; on success no byte past the proof
// was read, and none can come before a command (the client waits for it).
export async function proveTunnel(socket: Socket, key: Buffer, timeoutMs: number): Promise<void> {
  assertTunnelKey(key);
  const deadline = startDeadline(timeoutMs);
  const ignore = (): void => undefined; // errors surface through the reads and writes
  socket.on('error', ignore);
  try {
    await prove(socket, key, deadline);
  } catch (error) {
    socket.destroy();
    throw error;
  } finally {
    socket.off('error', ignore);
  }
}

// Connects to the tunnel's loopback end within timeoutMs.
export function connectTunnel(port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true, noDelay: true });
    const fail = (message: string): void => {
      socket.destroy();
      reject(new SshRSyncError('ETUNNEL', message));
    };
    const timer = setTimeout(() => fail(`tunnel connect to 127.0.0.1:${port} timed out after ${timeoutMs / 1000}s`), timeoutMs);
    socket.once('error', (error) => {
      clearTimeout(timer);
      fail(`tunnel connect to 127.0.0.1:${port} failed: ${oneLine(error)}`);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
  });
}

/** A proven tunnel connection, held until rsync needs it (or the run ends without rsync). */
export interface TunnelConnection {
  /**
   * Sends the rsync command and gives the connection up: pass the socket as fd 3 of rsync (run
   * with tunnelRsyncArgs(), whose --rsh relay talks through it) in this same tick, then destroy our copy.
   * The client starts its daemon on that byte; its greeting must reach rsync, not us.
   */
  claim(): Socket;
  /** Ends a connection nobody claimed (the check command, then close); after claim() it only stops the idle watch. */
  release(): void;
}

export interface OpenTunnelOptions {
  port: number;
  key: Buffer;
  timeoutMs: number;
  /**
   * Once rsync claimed the connection: call onIdle when no byte came from the client for ms
   * (Linux; see idle-watch.ts). Stopped by release().
   */
  idle?: { ms: number; onIdle: () => void };
}

// Connects to the tunnel and proves it both ways; the connection then waits, idle, for rsync.
// This is the tunnel check of the handshake and the pull's connection in one.
export async function openTunnel(options: OpenTunnelOptions): Promise<TunnelConnection> {
  const deadline = startDeadline(options.timeoutMs);
  const socket = await connectTunnel(options.port, options.timeoutMs);
  await proveTunnel(socket, options.key, Math.max(1, remainingMs(deadline)));
  socket.on('error', () => undefined); // an idle connection that breaks shows up in rsync, or not at all
  const idle = options.idle;
  // Found now, not in claim()'s tick: one read of the kernel's table.
  const inode = idle ? socketInode(socket.localPort!, options.port) : undefined;
  let watch: IdleWatch | undefined;
  let state: 'held' | 'claimed' | 'released' = 'held';
  return {
    claim(): Socket {
      if (state !== 'held') throw new SshRSyncError('EINTERNAL', `the tunnel connection was already ${state}`);
      if (socket.destroyed) throw new SshRSyncError('ETUNNEL', 'the tunnel connection closed before rsync could use it');
      // Only a byte read past the proof could sit in node's buffer; none can (see proveTunnel).
      if (socket.readableLength > 0) throw new SshRSyncError('ETUNNEL', 'tunnel proof failed: client sent bytes before the command');
      state = 'claimed';
      socket.write(commandByte('rsync'));
      // The relay's dd and cat read and write it with plain blocking calls; node's copy is
      // closed right after the spawn, in this tick, so our event loop never sees it blocking.
      (socket as unknown as { _handle?: { setBlocking?: (on: boolean) => number } })._handle?.setBlocking?.(true);
      if (idle) watch = watchIdle(inode, { localPort: socket.localPort!, remotePort: options.port, idleMs: idle.ms, onIdle: idle.onIdle });
      return socket;
    },
    release(): void {
      watch?.stop();
      if (state !== 'held') return;
      state = 'released';
      if (!socket.destroyed) socket.end(commandByte('check'));
      setTimeout(() => socket.destroy(), 1000).unref();
    },
  };
}

// Checks that 127.0.0.1:port is this session's tunnel, without starting rsync.
export async function checkTunnel(options: { port: number; key: Buffer; timeoutMs: number }): Promise<void> {
  const connection = await openTunnel(options);
  connection.release();
}

// rsync's own word splitting for -e/--rsh: spaces separate, quotes keep spaces (no backslashes).
function rshWord(word: string): string {
  if (!/[\s'"]/.test(word)) return word;
  if (!word.includes("'")) return `'${word}'`;
  if (!word.includes('"')) return `"${word}"`;
  throw new SshRSyncError('EINTERNAL', `cannot pass ${JSON.stringify(word)} to rsync -e: it holds both kinds of quotes`);
}

// rsync's --rsh program on the receiver (no node start-up, no file): a shell that relays between
// rsync's pipes and the proven tunnel connection rsync inherited as fd 3 (runRsync passes it).
// rsync's own bytes wait in its pipe until the first byte from the client's daemon (its
// @RSYNCD greeting) has come through: the client refuses any byte that reaches it before its
// daemon owns the connection. Both sides greet without waiting, so this cannot deadlock. The
// shell then becomes `cat <&3`, which ends when the daemon is done; the other direction's cat
// ends with rsync. The words rsync appends (`tunnel rsync --server --daemon .`) are ignored.
// rsync must run with --blocking-io: otherwise it leaves the relay's stdout non-blocking (as ssh
// likes it), and cat fails with EAGAIN as soon as rsync's pipe is full.
const RELAY_SCRIPT = [
  '[ -S /dev/fd/3 ] || { echo "ssh-r-sync: rsync was started without its tunnel connection on fd 3" >&2; exit 1; }',
  'dd bs=1 count=1 <&3 2>/dev/null',
  'exec 4<&0',
  'cat <&4 >&3 4<&- & exec cat <&3 4<&-',
].join('; ');

/** The relay as an argv: what rsync runs for --rsh, before the words it appends. */
export function relayArgv(): string[] {
  return ['/bin/sh', '-c', RELAY_SCRIPT, 'ssh-r-sync-tunnel'];
}

/** rsync's options for pulling through a TunnelConnection passed as its fd 3. */
export function tunnelRsyncArgs(): string[] {
  return [`--rsh=${relayArgv().map(rshWord).join(' ')}`, '--blocking-io'];
}
