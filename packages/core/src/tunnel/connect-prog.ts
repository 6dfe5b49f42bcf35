// Entry script that rsync runs as its --rsh program (no shell; see rsyncRsh()). Its arguments
// (rsync's `host rsync --server --daemon .`) are ignored.
// It reads the tunnel file named by SSH_R_SYNC_TUNNEL_FILE, connects to 127.0.0.1:port, proves
// the connection with command "rsync", then relays socket → stdout and (once the daemon has
// spoken) stdin → socket until the client's side closes. Errors: one line "ssh-r-sync: …" on
// stderr, exit 1.
import type { Socket } from 'node:net';
import { oneLine } from '../errors.js';
import { connectTunnel, proveTunnel } from './connect.js';
import { TUNNEL_FILE_ENV, readTunnelFile } from './tunnel-file.js';

function die(error: unknown): never {
  process.stderr.write(`ssh-r-sync: ${oneLine(error)}\n`);
  process.exit(1);
}

// Once the client's side has ended, its daemon is gone and nothing more can come: flush and
// exit, which closes our stdio and shows rsync the end of the stream. (process.stdout.end()
// does not close fd 1, so piping alone would leave rsync waiting.) The end of rsync's side is
// passed on as a half-close, so the daemon sees it and finishes.
// rsync's own bytes are held back until the first chunk from the daemon (its @RSYNCD greeting):
// the client rejects any byte that reaches it before its daemon owns the connection. Both sides
// of rsync's daemon protocol send their greeting without waiting, so this cannot deadlock.
function relay(socket: Socket): void {
  socket.on('error', (error) => die(`tunnel connection lost: ${oneLine(error)}`));
  process.stdout.on('error', () => process.exit(0)); // rsync went away; nothing left to relay to
  process.stdin.on('error', () => socket.end());
  socket.pipe(process.stdout, { end: false });
  socket.once('data', () => process.stdin.pipe(socket));
  socket.on('end', () => process.stdout.write('', () => process.exit(0)));
}

async function main(): Promise<void> {
  const path = process.env[TUNNEL_FILE_ENV];
  if (!path) throw new Error(`${TUNNEL_FILE_ENV} is not set`);
  const tunnel = readTunnelFile(path);
  const socket = await connectTunnel(tunnel.port, tunnel.timeoutMs);
  await proveTunnel(socket, tunnel.key, 'rsync', tunnel.timeoutMs);
  tunnel.key.fill(0);
  relay(socket);
}

main().catch(die);
