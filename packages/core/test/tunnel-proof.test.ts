// The tunnel proof itself, against scripted peers: every way a proof can fail gives one line
// within the timeout, a good proof reads no byte past its end, and the two halves agree.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { proveTunnel } from '../src/session/tunnel/index.js';
import { proveReceiver, type ProofOutcome } from '../src/session/tunnel/client-proof.js';
import { MAC_BYTES, NONCE_BYTES, OPENER_BYTES, clientMac, commandByte, receiverMac } from '../src/session/tunnel/proof.js';
import { LineSplitter } from '../src/exec/line-splitter.js';

const KEY = randomBytes(32);

// Accepts one connection and runs `peer` on it as the client side; returns the receiver's socket.
async function withPeer(peer: (socket: Socket) => unknown) {
  let peerSocket: Socket | undefined;
  let peerDone: Promise<unknown> = Promise.resolve();
  const server = createServer((socket) => {
    peerSocket = socket;
    socket.on('error', () => undefined);
    peerDone = Promise.resolve(peer(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const close = () => {
    socket.destroy();
    peerSocket?.destroy();
    server.close();
  };
  return { socket, peerDone: () => peerDone, close };
}

// Reads exactly n bytes from a peer socket (test side, no care for over-reading).
async function take(socket: Socket, n: number): Promise<Buffer> {
  let data = Buffer.alloc(0);
  for await (const chunk of socket) {
    data = Buffer.concat([data, chunk as Buffer]);
    if (data.length >= n) break;
  }
  return data;
}

// A scripted client: an opener, then (optionally) a proof made with `proofKey`.
function scriptedClient(options: { magic?: string; proofKey?: Buffer; after?: Buffer }) {
  return async (socket: Socket) => {
    const nonce = randomBytes(NONCE_BYTES);
    socket.pause();
    socket.write(Buffer.concat([Buffer.from(options.magic ?? 'SRT1'), nonce]));
    if (!options.proofKey) return;
    const reply = await readN(socket, NONCE_BYTES + MAC_BYTES);
    const receiverNonce = reply.subarray(0, NONCE_BYTES);
    assert.ok(reply.subarray(NONCE_BYTES).equals(receiverMac(KEY, nonce, receiverNonce)));
    socket.write(Buffer.concat([clientMac(options.proofKey, receiverNonce, nonce), options.after ?? Buffer.alloc(0)]));
  };
}

function readN(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const tryRead = () => {
      const chunk = socket.read(n) as Buffer | null;
      if (chunk) {
        socket.off('readable', tryRead);
        resolve(chunk);
      }
    };
    socket.on('readable', tryRead);
    tryRead();
  });
}

async function proofError(peer: (socket: Socket) => void | Promise<void>, timeoutMs = 2000): Promise<{ message: string; ms: number }> {
  const { socket, close } = await withPeer(peer);
  const started = Date.now();
  try {
    await proveTunnel(socket, KEY, timeoutMs);
  } catch (error) {
    return { message: (error as Error).message, ms: Date.now() - started };
  } finally {
    close();
  }
  assert.fail('the proof should have failed');
}

test('a good proof leaves the bytes after it unread and sends no command by itself', async () => {
  const after = Buffer.from('@RSYNCD: 32.0\n');
  let peerGot = 0;
  let peerEnded: Promise<unknown> | undefined;
  const { socket, close } = await withPeer(async (peer) => {
    await scriptedClient({ proofKey: KEY, after })(peer);
    peer.on('data', (chunk: Buffer) => (peerGot += chunk.length));
    peerEnded = once(peer, 'end');
    peer.resume();
  });
  await proveTunnel(socket, KEY, 2000);
  assert.deepEqual(await take(socket, after.length), after); // and closes our end
  // Whatever the proof sent by itself would reach the peer before our end of the connection.
  await peerEnded;
  assert.equal(peerGot, 0, 'the command is sent when rsync starts, not by the proof');
  close();
});

test('the receiver refuses a peer that does not speak the tunnel protocol', async () => {
  const { message } = await proofError(scriptedClient({ magic: 'SSH-' }));
  assert.equal(message, 'tunnel proof failed: wrong magic');
});

test("the receiver refuses a client whose proof is wrong", async () => {
  const { message } = await proofError(scriptedClient({ proofKey: randomBytes(32) }));
  assert.equal(message, "tunnel proof failed: client's proof is wrong");
});

test('a peer that closes early or stalls gives one line, in time', async () => {
  const early = await proofError((socket) => void socket.end(Buffer.from('SRT1abcdef')));
  assert.equal(early.message, 'tunnel proof failed: connection closed after 6 of 32 bytes');
  const stalled = await proofError(() => undefined, 300);
  assert.equal(stalled.message, 'tunnel proof timed out after 0.3s');
  assert.ok(stalled.ms >= 290 && stalled.ms < 10_000, `took ${stalled.ms} ms`);
});

type Receiver = (socket: Socket, got: (n: number) => Promise<Buffer>) => unknown;

// Runs the client half on an accepted (paused) connection while `receiver` drives the other end
// (got(n) waits for the first n bytes from the client); returns the outcome and every byte the
// receiver got. With own = true the receiver reads its socket itself and `sent` stays empty.
async function clientOutcome(receiver: Receiver, timeoutMs = 2000, own = false): Promise<{ outcome: ProofOutcome; sent: Buffer }> {
  let outcome: Promise<ProofOutcome> | undefined;
  const server = createServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => undefined);
    outcome = new Promise((resolve) => proveReceiver(socket, KEY, timeoutMs, (result) => {
      resolve(result);
      socket.destroy();
    }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const socket = connect((server.address() as { port: number }).port, '127.0.0.1');
  socket.on('error', () => undefined);
  let sent = Buffer.alloc(0);
  const closed = once(socket, 'close');
  const waiting = new Set<() => void>();
  if (!own) {
    socket.on('data', (chunk: Buffer) => {
      sent = Buffer.concat([sent, chunk]);
      waiting.forEach((wake) => wake());
    });
  }
  const got = (n: number): Promise<Buffer> =>
    new Promise((resolve) => {
      const wake = (): void => {
        if (sent.length < n) return;
        waiting.delete(wake);
        resolve(sent.subarray(0, n));
      };
      waiting.add(wake);
      wake();
    });
  await once(socket, 'connect');
  await receiver(socket, got);
  if (own) socket.resume(); // to see the close
  await closed;
  server.close();
  return { outcome: await outcome!, sent };
}

// A receiver that answers the opener with `reply(clientNonce)` and then sends `then`.
function scriptedReceiver(reply: (clientNonce: Buffer) => Buffer, then?: Buffer): Receiver {
  return async (socket, got) => {
    const opener = await got(OPENER_BYTES);
    socket.write(reply(opener.subarray(4)));
    if (then) {
      // After the client's proof: `then` must not be read together with the reply.
      await got(OPENER_BYTES + MAC_BYTES);
      socket.write(then);
    }
  };
}

const goodReply = (clientNonce: Buffer): Buffer => {
  const receiverNonce = randomBytes(NONCE_BYTES);
  return Buffer.concat([receiverNonce, receiverMac(KEY, clientNonce, receiverNonce)]);
};

test('the two halves agree on the command', async () => {
  for (const command of ['check', 'rsync'] as const) {
    const { outcome } = await clientOutcome(async (socket) => {
      await proveTunnel(socket, KEY, 2000);
      socket.end(commandByte(command));
    }, 2000, true);
    assert.deepEqual(outcome, { command });
  }
});

test('once proven, the client waits for the command beyond the proof timeout (the receiver holds the connection until rsync)', async () => {
  const { outcome } = await clientOutcome(async (socket) => {
    await proveTunnel(socket, KEY, 300);
    await new Promise((resolve) => setTimeout(resolve, 900));
    socket.end(commandByte('rsync'));
  }, 300, true);
  assert.deepEqual(outcome, { command: 'rsync' });
});

test('the client half refuses a wrong receiver proof without sending anything more', async () => {
  const { outcome, sent } = await clientOutcome(scriptedReceiver(() => randomBytes(NONCE_BYTES + MAC_BYTES)));
  assert.deepEqual(outcome, { rejected: "tunnel proof failed: receiver's proof is wrong" });
  assert.equal(sent.length, OPENER_BYTES);
});

test('the client half refuses stray bytes after the proof, an unknown command, a stall', async () => {
  const stray = await clientOutcome(scriptedReceiver((nonce) => Buffer.concat([goodReply(nonce), Buffer.from('@')])));
  assert.deepEqual(stray.outcome, { rejected: 'tunnel proof failed: receiver sent 1 byte after its proof' });
  assert.equal(stray.sent.length, OPENER_BYTES);
  const unknown = await clientOutcome(scriptedReceiver(goodReply, Buffer.from([7])));
  assert.deepEqual(unknown.outcome, { rejected: 'tunnel proof failed: unknown command 0x07' });
  const started = Date.now();
  const stalled = await clientOutcome(() => undefined, 300);
  assert.deepEqual(stalled.outcome, { rejected: 'tunnel proof timed out after 0.3s' });
  assert.ok(Date.now() - started < 10_000);
});

test('log lines are bounded', () => {
  const lines = new LineSplitter(5);
  assert.deepEqual(lines.push('ab\ncdefghij'), ['ab', 'cdefg…']);
  assert.deepEqual(lines.push('klm\nno'), []);
  assert.deepEqual(lines.flush(), ['no']);
});
