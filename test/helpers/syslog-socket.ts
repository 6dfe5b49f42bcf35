// A unix stream socket that keeps every line it is sent, as a syslog daemon would: the tests'
// /dev/log, given to the receiver as its config's `syslog` (logger --socket PATH).
import assert from 'node:assert/strict';
import net from 'node:net';
import { waitUntil } from './fake-peer.js';

export interface SyslogSocket {
  /** Every line received so far, oldest first. */
  readonly lines: string[];
  /** The line number `index` (0-based), once it has come (at most 30 s). */
  line(index: number): Promise<string>;
  close(): Promise<void>;
}

// Serves `path` until close().
export async function startSyslogSocket(path: string): Promise<SyslogSocket> {
  const lines: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let rest = '';
    socket.on('data', (chunk) => {
      const parts = (rest + chunk.toString('utf8')).split('\n');
      rest = parts.pop()!;
      lines.push(...parts.filter(Boolean));
    });
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    lines,
    async line(index) {
      assert.ok(await waitUntil(() => lines.length > index, 30_000), `syslog line ${index} arrived (have ${lines.length}: ${lines.join(' | ')})`);
      return lines[index]!;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
