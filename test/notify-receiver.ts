// A local HTTP server on 127.0.0.1 that stands in for healthchecks.io and a webhook in the
// notify tests: it records every request (method, path with query, headers, body) and answers
// as the test tells it per path: 200, any status, or never (a hung server).
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  method: string;
  /** Path and query, as sent. */
  url: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: string;
}

/** How the server answers a request: a status code, or 'hang' (it never answers). */
export type Answer = number | 'hang';

export interface NotifyReceiver {
  readonly port: number;
  /** `http://127.0.0.1:PORT` */
  readonly base: string;
  readonly received: Received[];
  /** Requests whose path starts with `prefix`. */
  at(prefix: string): Received[];
  /** Sets the answer for paths that start with `prefix` (longest prefix wins; default 200). */
  answer(prefix: string, answer: Answer): void;
  /** Resolves once `count` requests under `prefix` arrived (rejects after `timeoutMs`). */
  waitFor(prefix: string, count: number, timeoutMs?: number): Promise<Received[]>;
  clear(): void;
  close(): Promise<void>;
}

const MAX_BODY = 1024 * 1024;

// Starts the recording server on an ephemeral loopback port.
export async function startNotifyReceiver(): Promise<NotifyReceiver> {
  const received: Received[] = [];
  const answers = new Map<string, Answer>();
  const waiters = new Set<() => void>();
  const hung = new Set<ServerResponse>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      received.push({ method: req.method ?? '', url: req.url ?? '', path: url.pathname, query: url.searchParams, headers: req.headers, body: Buffer.concat(chunks).toString() });
      for (const wake of waiters) wake();
      const prefix = [...answers.keys()].filter((p) => url.pathname.startsWith(p)).sort((a, b) => b.length - a.length)[0];
      const answer = prefix === undefined ? 200 : answers.get(prefix)!;
      if (answer === 'hang') {
        hung.add(res);
        return;
      }
      res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer === 200 ? 'OK' : 'no');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const at = (prefix: string) => received.filter((r) => r.path.startsWith(prefix));
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    received,
    at,
    answer: (prefix, answer) => void answers.set(prefix, answer),
    waitFor: (prefix, count, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (at(prefix).length < count) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(at(prefix));
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`${at(prefix).length} of ${count} requests under ${prefix} arrived: ${JSON.stringify(received.map((r) => r.url))}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      }),
    clear: () => {
      received.length = 0;
      answers.clear();
    },
    close: async () => {
      for (const res of hung) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
