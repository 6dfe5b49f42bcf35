// The client half of the tunnel proof, in-process, on an accepted (paused) connection. It reads
// the receiver's 64-byte reply and its command byte from 'data' chunks and treats any byte beyond
// what a step expects as a violation: an honest receiver sends nothing more until its daemon has
// spoken (its relay holds rsync's greeting back, see relayArgv()), so every byte after the command
// byte is still unread in the kernel when the outcome is reported, ready for the daemon. The proof
// itself must finish within timeoutMs; the command may come later, when the receiver's rsync
// starts (it holds the proven connection from its tunnel check until then), so that wait has no
// limit of its own: the session's end closes the listener and aborts it. On success the outcome is
// reported synchronously from the 'data' event that carried the command byte, with the socket
// still reading: the caller must pause it or hand it over in that same tick. On failure the socket
// is destroyed first.
import type { Socket } from 'node:net';
import { oneLine } from '../../errors.js';
import { proofTimedOut, startDeadline } from './deadline.js';
import {
  NONCE_BYTES,
  REPLY_BYTES,
  TUNNEL_MAGIC,
  clientMac,
  closedEarly,
  commandFromByte,
  macMatches,
  newNonce,
  proofFailed,
  receiverMac,
  type TunnelCommand,
} from './proof.js';

export type ProofOutcome = { command: TunnelCommand } | { rejected: string };

/** Optional: called once the receiver has proven itself and the client's proof is on its way. */
export type OnProven = () => void;

function strayBytes(count: number, after: string): string {
  return proofFailed(`receiver sent ${count} byte${count === 1 ? '' : 's'} after its ${after}`).message;
}

// Runs the client half of the proof within timeoutMs, calls done once; returns a function that aborts it.
export function proveReceiver(
  socket: Socket,
  key: Buffer,
  timeoutMs: number,
  done: (outcome: ProofOutcome) => void,
  onProven?: OnProven,
): (why: string) => void {
  const clientNonce = newNonce();
  let receiverNonce: Buffer | undefined;
  let chunks: Buffer[] = [];
  let received = 0;
  let settled = false;

  const finish = (outcome: ProofOutcome): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.off('close', onEnd);
    socket.off('error', onError);
    if ('rejected' in outcome) socket.destroy();
    done(outcome);
  };
  const reject = (why: string): void => finish({ rejected: why });
  const expected = (): number => (receiverNonce ? 1 : REPLY_BYTES);

  const onReply = (reply: Buffer): void => {
    const nonce = reply.subarray(0, NONCE_BYTES);
    if (!macMatches(receiverMac(key, clientNonce, nonce), reply.subarray(NONCE_BYTES, REPLY_BYTES))) {
      return reject(proofFailed("receiver's proof is wrong").message);
    }
    if (reply.length > REPLY_BYTES) return reject(strayBytes(reply.length - REPLY_BYTES, 'proof'));
    receiverNonce = Buffer.from(nonce);
    clearTimeout(timer); // proven; the command comes when the receiver's rsync starts
    socket.write(clientMac(key, receiverNonce, clientNonce));
    onProven?.();
  };
  const onCommand = (data: Buffer): void => {
    if (data.length > 1) return reject(strayBytes(data.length - 1, 'command'));
    let command: TunnelCommand;
    try {
      command = commandFromByte(data[0] ?? -1);
    } catch (error) {
      return reject(oneLine(error));
    }
    finish({ command });
  };
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk);
    received += chunk.length;
    if (received < expected()) return;
    const data = Buffer.concat(chunks, received);
    chunks = [];
    received = 0;
    if (receiverNonce) onCommand(data);
    else onReply(data);
  };
  const onEnd = (): void => reject(closedEarly(received, expected()).message);
  const onError = (error: NodeJS.ErrnoException): void => reject(closedEarly(received, expected(), ` (${error.code ?? 'socket error'})`).message);

  const deadline = startDeadline(timeoutMs);
  const timer = setTimeout(() => reject(proofTimedOut(deadline).message), timeoutMs);
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.on('close', onEnd);
  socket.on('error', onError);
  socket.write(Buffer.concat([TUNNEL_MAGIC, clientNonce]));
  socket.resume(); // an accepted socket starts paused, and 'data' listeners do not resume it
  return reject;
}
