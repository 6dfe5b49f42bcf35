// The receiver's end of the tunnel: it proves itself first, checks the client's proof, then says
// what the connection is for. Used for the check before a run and, through connect-prog.ts as
// rsync's --rsh program (connect-prog), for the pull itself, so both travel on verified connections.
import { connect, type Socket } from 'node:net';
import { SshRSyncError, oneLine } from '../errors.js';
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
  type TunnelCommand,
} from './proof.js';
import { nodeScriptArgv } from './script.js';
import { readExact } from './socket-reader.js';

const CLIENT_REFUSED_HINT = " (the client did not accept the receiver's proof: wrong key?)";

function write(socket: Socket, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) =>
    socket.write(data, (error) => (error ? reject(proofFailed(`could not write to the connection (${oneLine(error)})`)) : resolve())),
  );
}

async function prove(socket: Socket, key: Buffer, command: TunnelCommand, deadline: Deadline): Promise<void> {
  const magic = await readExact(socket, TUNNEL_MAGIC.length, deadline);
  if (!magic.equals(TUNNEL_MAGIC)) throw proofFailed('wrong magic');
  const clientNonce = await readExact(socket, NONCE_BYTES, deadline);
  const receiverNonce = newNonce();
  await write(socket, Buffer.concat([receiverNonce, receiverMac(key, clientNonce, receiverNonce)]));
  const proof = await readExact(socket, MAC_BYTES, deadline, CLIENT_REFUSED_HINT);
  if (!macMatches(clientMac(key, receiverNonce, clientNonce), proof)) throw proofFailed("client's proof is wrong");
  await write(socket, commandByte(command));
}

// Runs the receiver's half of the proof on a connected socket, then sends command. On failure
// the socket is destroyed and the error is one line; on success no byte past the proof was read.
export async function proveTunnel(socket: Socket, key: Buffer, command: TunnelCommand, timeoutMs: number): Promise<void> {
  assertTunnelKey(key);
  const deadline = startDeadline(timeoutMs);
  const ignore = (): void => undefined; // errors surface through the reads and writes
  socket.on('error', ignore);
  try {
    await prove(socket, key, command, deadline);
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

// Checks that 127.0.0.1:port is this session's tunnel, without starting rsync.
export async function checkTunnel(options: { port: number; key: Buffer; timeoutMs: number }): Promise<void> {
  const deadline = startDeadline(options.timeoutMs);
  const socket = await connectTunnel(options.port, options.timeoutMs);
  await proveTunnel(socket, options.key, 'check', Math.max(1, remainingMs(deadline)));
  // The listener ends the connection after reading "check"; wait for that, but never past the deadline.
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => socket.destroy(), remainingMs(deadline));
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.resume();
    socket.end();
  });
}


// rsync's own word splitting for -e/--rsh: spaces separate, quotes keep spaces (no backslashes).
function rshWord(word: string): string {
  if (!/[\s'"]/.test(word)) return word;
  if (!word.includes("'")) return `'${word}'`;
  if (!word.includes('"')) return `"${word}"`;
  throw new SshRSyncError('EINTERNAL', `cannot pass ${JSON.stringify(word)} to rsync -e: it holds both kinds of quotes`);
}

// The --rsh value that makes rsync reach the daemon through connect-prog: rsync runs it without a
// shell and talks to it over a socket pair, so no loopback TCP hop (and its Nagle delays) is added.
export function rsyncRsh(): string {
  return nodeScriptArgv('connect-prog').map(rshWord).join(' ');
}
