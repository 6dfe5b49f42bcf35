// The kernel's table of TCP sockets (Linux: /proc/net/tcp and /proc/net/tcp6, this network
// namespace's). It tells which local user owns the other end of a loopback connection, and how
// many received bytes a socket holds unread; no Node API does either. Elsewhere the table cannot
// be read and callers get undefined, and fall back to what works without it.
import { endianness } from 'node:os';
import { readFileSync } from 'node:fs';

export interface TcpEntry {
  /** "a.b.c.d:port" (IPv4-mapped IPv6 addresses as IPv4); other IPv6 addresses as "[hex]:port". */
  local: string;
  remote: string;
  /** The kernel's TCP state: 1 established, 6 time-wait, 10 listen, … */
  state: number;
  /** Bytes received and not yet read by any process. */
  rxQueue: number;
  /** The uid that created the socket. */
  uid: number;
  /** 0 once no process holds it (time-wait, orphans). */
  inode: number;
}

const TABLES = ['/proc/net/tcp', '/proc/net/tcp6'];
const LITTLE_ENDIAN = endianness() === 'LE';
// ::ffff:0:0/96 as the kernel prints it: four 32-bit words, each in host byte order.
const V4_MAPPED_PREFIX = `0000000000000000${LITTLE_ENDIAN ? 'FFFF0000' : '0000FFFF'}`;

// How the table spells a port: four upper-case hex digits.
function hexPort(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0');
}

function ipv4(word: string): string {
  const bytes = [0, 2, 4, 6].map((at) => parseInt(word.slice(at, at + 2), 16));
  return (LITTLE_ENDIAN ? bytes.reverse() : bytes).join('.');
}

function address(field: string): string {
  const [host = '', port = ''] = field.split(':');
  const number = parseInt(port, 16);
  if (host.length === 8) return `${ipv4(host)}:${number}`;
  if (host.length === 32 && host.startsWith(V4_MAPPED_PREFIX)) return `${ipv4(host.slice(24))}:${number}`;
  return `[${host}]:${number}`;
}

function entry(line: string): TcpEntry | undefined {
  // sl local rem st tx:rx tr:when retrnsmt uid timeout inode …
  const fields = line.trim().split(/\s+/);
  if (fields.length < 10) return undefined;
  return {
    local: address(fields[1]!),
    remote: address(fields[2]!),
    state: parseInt(fields[3]!, 16),
    rxQueue: parseInt(fields[4]!.split(':')[1] ?? '0', 16),
    uid: Number(fields[7]),
    inode: Number(fields[9]),
  };
}

// The sockets with `port` as their local or remote port; undefined when no table can be read.
// Lines are filtered by the port's spelling before they are parsed: a busy host has many.
export function tcpEntriesWithPort(port: number): TcpEntry[] | undefined {
  const needle = `:${hexPort(port)} `;
  const found: TcpEntry[] = [];
  let readable = false;
  for (const table of TABLES) {
    let text: string;
    try {
      text = readFileSync(table, 'latin1');
    } catch {
      continue; // no IPv6, or not Linux
    }
    readable = true;
    for (const line of text.split('\n')) {
      if (!line.includes(needle)) continue;
      const parsed = entry(line);
      if (parsed) found.push(parsed);
    }
  }
  return readable ? found : undefined;
}

// The uid owning the other end of each connection accepted on 127.0.0.1:listenPort (undefined
// for a peer not in the table: gone already); undefined when the table cannot be read. On
// loopback the connecting socket is established before the accepted one is handed out.
export function loopbackPeerUids(listenPort: number, peers: { address: string; port: number }[]): (number | undefined)[] | undefined {
  const entries = tcpEntriesWithPort(listenPort);
  if (!entries) return undefined;
  const listener = `127.0.0.1:${listenPort}`;
  const owners = new Map<string, number>();
  for (const socket of entries) if (socket.remote === listener && socket.inode !== 0) owners.set(socket.local, socket.uid);
  return peers.map((peer) => owners.get(`${peer.address}:${peer.port}`));
}
