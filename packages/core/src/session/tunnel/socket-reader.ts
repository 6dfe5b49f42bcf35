// Exact-length, deadline-bounded reads from a node socket for the receiver's half of the proof.
// socket.read(size) takes exactly size bytes and leaves the rest buffered in the stream.
import type { Socket } from 'node:net';
import { closedEarly } from './proof.js';
import { proofTimedOut, remainingMs, type Deadline } from './deadline.js';

// Reads exactly size bytes; closedHint is appended when the peer closes instead.
export function readExact(socket: Socket, size: number, deadline: Deadline, closedHint = ''): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (error: Error | undefined, data?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onClosed);
      socket.off('close', onClosed);
      socket.off('error', onError);
      if (error) reject(error);
      else resolve(data as Buffer);
    };
    const closed = (code = ''): Error => closedEarly(Math.min(socket.readableLength, size), size, `${code}${closedHint}`);
    const onReadable = (): void => {
      const chunk = socket.read(size) as Buffer | null;
      if (chunk === null) return;
      if (chunk.length < size) finish(closedEarly(chunk.length, size, closedHint));
      else finish(undefined, chunk);
    };
    const onClosed = (): void => finish(closed());
    const onError = (error: NodeJS.ErrnoException): void => finish(closed(` (${error.code ?? 'socket error'})`));
    const timer = setTimeout(() => finish(proofTimedOut(deadline)), remainingMs(deadline));
    socket.on('readable', onReadable);
    socket.on('end', onClosed);
    socket.on('close', onClosed);
    socket.on('error', onError);
    if (socket.readableEnded || socket.destroyed) onClosed();
    else onReadable();
  });
}
