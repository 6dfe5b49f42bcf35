// `[user@]host[:port]`, with IPv6 literals in brackets; a destination never starts with '-'.
import { UsageError } from '../errors.js';

export interface Destination {
  /** What ssh gets as its destination: `user@host` or `host`. */
  target: string;
  port: number | null;
}

// Parses the destination and merges -p; a conflict between the two is a usage error.
export function parseDestination(text: string, portOption?: number): Destination {
  if (text === '' || text.startsWith('-')) throw new UsageError(`invalid destination ${JSON.stringify(text)}`);
  const at = text.lastIndexOf('@');
  const user = at >= 0 ? text.slice(0, at + 1) : '';
  const rest = at >= 0 ? text.slice(at + 1) : text;
  let host = rest;
  let port: number | null = null;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (bracket) {
    host = bracket[1]!;
    port = bracket[2] ? Number(bracket[2]) : null;
  } else if ((rest.match(/:/g) ?? []).length === 1) {
    const [h, p] = rest.split(':');
    if (!/^\d+$/.test(p!)) throw new UsageError(`invalid port in destination ${JSON.stringify(text)}`);
    host = h!;
    port = Number(p);
  }
  if (!host || host.startsWith('-') || /[\s]/.test(host)) throw new UsageError(`invalid host in destination ${JSON.stringify(text)}`);
  if (port !== null && (port < 1 || port > 65535)) throw new UsageError(`invalid port ${port} in destination`);
  if (portOption !== undefined && port !== null && port !== portOption) {
    throw new UsageError(`conflicting ports: ${port} in the destination, ${portOption} from -p`);
  }
  return { target: `${user}${host}`, port: port ?? portOption ?? null };
}
