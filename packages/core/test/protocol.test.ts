// The message channel over real streams: a whole conversation, chunking, every failure a
// user can meet (one line each), bounded memory, timers and listeners cleaned up, and a real
// child process that must exit by itself after close().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawn } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { openChannel, type MessageChannel } from '../src/session/protocol/index.js';

const KEY = 'f0'.repeat(32);
const T = { timeoutMs: 2000 };

// A channel reading `input` (what the test writes as the client) and writing `output`.
function receiverSide(options: { maxMessageBytes?: number } = {}) {
  const input = new PassThrough();
  const output = new PassThrough();
  const channel = openChannel(input, output, { peer: 'client', ...options });
  return { input, output, channel };
}

function line(message: object): string {
  return `${JSON.stringify({ v: 1, ...message })}\n`;
}

async function rejectsWith(promise: Promise<unknown>, code: string, message: string | RegExp): Promise<Error> {
  let caught: unknown;
  await assert.rejects(promise, (error: Error & { code?: string }) => {
    caught = error;
    assert.equal(error.code, code);
    if (typeof message === 'string') assert.equal(error.message, message);
    else assert.match(error.message, message);
    assert.doesNotMatch(error.message, /\n/);
    return true;
  });
  return caught as Error;
}

function listeners(stream: Readable): number[] {
  return ['data', 'end', 'close', 'readable'].map((event) => stream.listenerCount(event));
}

test('a full conversation between two channels', async () => {
  const up = new PassThrough();
  const down = new PassThrough();
  const client = openChannel(down, up, { peer: 'receiver' });
  const receiver = openChannel(up, down, { peer: 'client' });

  const receiverRun = (async () => {
    await receiver.send({ type: 'hello', protocol: 'ssh-r-sync', versions: [1] });
    const session = await receiver.receive('session', T);
    await receiver.send({ type: 'ready', name: session.name, mode: 'fake-super' });
    const go = await receiver.receive(['start', 'skip'], T);
    await receiver.send({
      type: 'result', status: 'success', committed: true, exitCode: 0, rsyncExitCode: 0, message: null,
      files: 3, bytes: 4096, durationMs: 12, snapshot: '2024-01-01T00:00:00Z',
    });
    await receiver.send({ type: 'bye', status: 'success', message: null });
    receiver.close();
    return { session, go };
  })();

  const hello = await client.receive('hello', T);
  assert.deepEqual(hello.versions, [1]);
  await client.send({
    type: 'session', protocol: 'ssh-r-sync', version: 1, name: 'laptop', tunnelPort: 22001,
    key: KEY, options: { oneFileSystem: true, fakeSuper: false },
  });
  assert.equal((await client.receive('ready', T)).mode, 'fake-super');
  await client.send({ type: 'start' });
  const result = await client.receive('result', T);
  assert.equal(result.files, 3);
  assert.equal(result.snapshot, '2024-01-01T00:00:00Z');
  assert.deepEqual(await client.receive('bye', T), { v: 1, type: 'bye', status: 'success', message: null });
  const seen = await receiverRun;
  assert.equal(seen.session.key, KEY);
  assert.equal(seen.go.type, 'start');
  await rejectsWith(client.receive('bye', T), 'EPROTOCOL', 'receiver closed the connection while we waited for bye');
  client.close();
});

test('one byte per chunk', async () => {
  const bytes = Buffer.from(line({ type: 'skip', reason: 'naïve ✓ split' }) + line({ type: 'start' }));
  const input = Readable.from((function* () {
    for (const byte of bytes) yield Buffer.of(byte);
  })(), { objectMode: false });
  const channel = openChannel(input, new PassThrough(), { peer: 'client' });
  assert.equal((await channel.receive(['start', 'skip'], T)).type, 'skip');
  assert.equal((await channel.receive('start', T)).type, 'start');
  await rejectsWith(channel.receive('start', T), 'EPROTOCOL', 'client closed the connection while we waited for start');
});

test('several messages in one chunk are kept, without reading ahead', async () => {
  const { input, channel } = receiverSide();
  input.write(line({ type: 'start' }) + line({ type: 'skip', reason: 'a' }) + line({ type: 'error', message: 'b' }));
  input.write(line({ type: 'start' }));
  assert.equal((await channel.receive('start', T)).type, 'start');
  // Nothing awaited and two lines held: the input is paused, the next chunk not read.
  assert.equal(input.readableFlowing, false);
  assert.ok(input.readableLength > 0);
  assert.deepEqual(listeners(input), [0, 0, 0, 0]);
  assert.equal((await channel.receive('skip', T)).reason, 'a');
  assert.equal((await channel.receive('error', T)).message, 'b');
  assert.equal((await channel.receive('start', T)).type, 'start');
  assert.equal(channel.bufferedBytes, 0);
});

test('no listeners or timers are left behind after each receive', async () => {
  const { input, channel } = receiverSide();
  const timers = () => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
  const before = timers();
  const errorListeners = input.listenerCount('error');
  for (let i = 0; i < 5; i++) {
    setImmediate(() => input.write(line({ type: 'start' })));
    await channel.receive('start', { timeoutMs: 60_000 });
    assert.deepEqual(listeners(input), [0, 0, 0, 0]);
  }
  assert.equal(timers(), before);
  assert.equal(input.listenerCount('error'), errorListeners);
});

test('unexpected, peer error and skip messages', async () => {
  const { input, channel } = receiverSide();
  input.write(line({ type: 'skip', reason: 'on battery' }));
  assert.equal((await channel.receive(['start', 'skip'], T)).type, 'skip');
  input.write(line({ type: 'skip', reason: 'again' }));
  await rejectsWith(channel.receive('start', T), 'EPROTOCOL', 'expected start from client, got skip');

  const other = receiverSide();
  other.input.write(line({ type: 'error', message: 'disk full\nreally' }));
  await rejectsWith(other.channel.receive('start', T), 'EPEER', 'peer: disk full\\nreally');

  const third = receiverSide();
  third.input.write(line({ type: 'start' }));
  await rejectsWith(third.channel.receive('ready', T), 'EPROTOCOL', 'expected ready from client, got start');
});

test('after a receive error the channel stays broken with the same error', async () => {
  const { input, channel } = receiverSide();
  input.write('Last login: Mon Jan  1 from 10.0.0.1\n');
  const first = await rejectsWith(channel.receive('session', T), 'EPROTOCOL', 'garbage from client: "Last login: Mon Jan  1 from 10.0.0.1"');
  input.write(line({ type: 'start' }));
  assert.equal(await channel.receive('start', T).catch((error: unknown) => error), first);
  // Sending still works: the receiver can tell the client why it gives up.
  await channel.send({ type: 'error', message: first.message });
});

test('EOF with nothing buffered and in the middle of a line', async () => {
  const a = receiverSide();
  a.input.end();
  await rejectsWith(a.channel.receive('session', { ...T, waitingFor: 'the session' }), 'EPROTOCOL', 'client closed the connection while we waited for the session');

  const b = receiverSide();
  b.input.end('{"v":1,"type":"st');
  await rejectsWith(b.channel.receive('start', T), 'EPROTOCOL', 'truncated message from client (17 bytes without end of line)');

  const c = receiverSide();
  setImmediate(() => c.input.destroy());
  await rejectsWith(c.channel.receive('start', T), 'EPROTOCOL', 'client closed the connection while we waited for start');
});

test('version, unknown type and schema violations through the channel', async () => {
  const cases: [string, string][] = [
    [line({ v: 7, type: 'start' }), 'unsupported protocol version 7 from client (this side speaks 1)'],
    [line({ type: 'teleport' }), 'unknown message type "teleport" from client'],
    [line({ type: 'start', now: true }), 'invalid start message from client: unknown key "now"'],
    ['{"v":1,"type":"session","protocol":"ssh-r-sync"}\n', 'invalid session message from client: version: Invalid input: expected number, received undefined'],
  ];
  for (const [text, message] of cases) {
    const { input, channel } = receiverSide();
    input.write(text);
    await rejectsWith(channel.receive(['start', 'session'], T), 'EPROTOCOL', message);
  }
});

test('a line over the limit is refused at the limit, a line at the limit is not', async () => {
  const exact = line({ type: 'skip', reason: 'r'.repeat(20) });
  const ok = receiverSide({ maxMessageBytes: exact.length - 1 });
  ok.input.write(exact);
  assert.equal((await ok.channel.receive('skip', T)).reason.length, 20);

  const over = receiverSide({ maxMessageBytes: exact.length - 2 });
  over.input.write(exact);
  await rejectsWith(over.channel.receive('skip', T), 'EPROTOCOL', `message from client exceeds ${exact.length - 2} bytes`);
});

test('10 MB without a newline is refused early with bounded memory', async () => {
  const { input, channel } = receiverSide();
  const chunk = Buffer.alloc(64 * 1024, 'a');
  let failed = false;
  let written = 0;
  const outcome = channel.receive('session', T).catch((error: Error) => {
    failed = true;
    return error;
  });
  while (!failed && written < 10 * 1024 * 1024) {
    written += chunk.length;
    if (!input.write(chunk)) await Promise.race([once(input, 'drain'), outcome]);
    assert.ok(channel.bufferedBytes <= 65536 + 64 * 1024);
  }
  const error = await outcome;
  assert.ok(error instanceof Error);
  assert.equal(error.message, 'message from client exceeds 65536 bytes');
  assert.ok(written < 1024 * 1024, `wrote ${written} bytes before the refusal`);
  assert.equal(channel.bufferedBytes, 0);
});

test('a stalled peer times out on time', async () => {
  const { input, channel } = receiverSide();
  input.write('{"v":1,'); // half a message, then nothing
  const started = performance.now();
  await rejectsWith(channel.receive('start', { timeoutMs: 150 }), 'ETIMEOUT', 'timed out after 150 ms waiting for start from client');
  const elapsed = performance.now() - started;
  // Never early; late only by what a loaded machine adds (without the timer it would never end).
  assert.ok(elapsed >= 140 && elapsed < 5000, `took ${elapsed} ms`);
  assert.deepEqual(listeners(input), [0, 0, 0, 0]);
});

test('timeout 0 or Infinity waits without a timer', async () => {
  const { input, channel } = receiverSide();
  for (const timeoutMs of [0, Infinity]) {
    setTimeout(() => input.write(line({ type: 'start' })), 30);
    assert.equal((await channel.receive('start', { timeoutMs })).type, 'start');
  }
  await rejectsWith(channel.receive('start', { timeoutMs: -1 }), 'EINTERNAL', 'invalid timeout -1');
});

test('a peer that stops reading makes a bounded send time out', async () => {
  const output = new PassThrough({ highWaterMark: 1 });
  const channel = openChannel(new PassThrough(), output, { peer: 'receiver' });
  await rejectsWith(channel.send({ type: 'start' }, { timeoutMs: 50 }), 'ETIMEOUT', 'timed out after 50 ms sending start to receiver');
});

test('send refuses an invalid message before writing anything', async () => {
  const { output, channel } = receiverSide();
  await rejectsWith(channel.send({ type: 'skip', reason: 'x'.repeat(2000) }), 'EINTERNAL', /^refusing to send an invalid skip message: reason: /);
  await rejectsWith(channel.send({ type: 'session' } as never), 'EINTERNAL', /^refusing to send an invalid session message: /);
  assert.equal(output.readableLength, 0);
});

test('send to a closed, destroyed or broken output rejects with one line', async () => {
  const ended = receiverSide();
  ended.output.end();
  await rejectsWith(ended.channel.send({ type: 'start' }), 'EPROTOCOL', 'could not send start to client: connection closed');

  const destroyed = receiverSide();
  destroyed.output.destroy();
  await rejectsWith(destroyed.channel.send({ type: 'start' }), 'EPROTOCOL', 'could not send start to client: connection closed');

  // A real pipe whose reader is gone: EPIPE.
  const child = spawn(process.execPath, ['-e', ''], { stdio: ['pipe', 'pipe', 'inherit'] });
  await once(child, 'exit');
  const channel = openChannel(child.stdout, child.stdin, { peer: 'receiver' });
  await rejectsWith(channel.send({ type: 'start' }), 'EPROTOCOL', /^could not send start to receiver: connection closed( \(EPIPE\))?$/);
  await rejectsWith(channel.send({ type: 'start' }), 'EPROTOCOL', /^could not send start to receiver: connection closed/);
  channel.close();
});

test('close() rejects a pending receive and refuses later calls', async () => {
  const { input, output, channel } = receiverSide();
  const pending = channel.receive('start', T);
  channel.close();
  await rejectsWith(pending, 'EINTERNAL', /closed/);
  await rejectsWith(channel.receive('start', T), 'EINTERNAL', /closed/);
  await rejectsWith(channel.send({ type: 'start' }), 'EINTERNAL', /closed/);
  assert.equal(output.writableEnded, true);
  assert.equal(input.destroyed, false);
  assert.deepEqual(listeners(input), [0, 0, 0, 0]);
});

test('a concurrent receive is refused', async () => {
  const { input, channel } = receiverSide();
  const first = channel.receive('start', T);
  await rejectsWith(channel.receive('start', T), 'EINTERNAL', /^receive\(start\) while another receive is waiting$/);
  input.write(line({ type: 'start' }));
  assert.equal((await first).type, 'start');
});

test('a child on stdin/stdout exits by itself after close()', async () => {
  const index = pathToFileURL(fileURLToPath(new URL('../src/session/protocol/index.ts', import.meta.url))).href;
  const script = `
    const { openChannel } = await import(${JSON.stringify(index)});
    const channel = openChannel(process.stdin, process.stdout, { peer: 'client' });
    const message = await channel.receive('start', { timeoutMs: 5000 });
    await channel.send({ type: 'skip', reason: 'got ' + message.type });
    channel.close();
  `;
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  const channel: MessageChannel = openChannel(child.stdout, child.stdin, { peer: 'receiver' });
  await channel.send({ type: 'start' }); // and keep the child's stdin open
  assert.equal((await channel.receive('skip', { timeoutMs: 10_000 })).reason, 'got start');
  // Generous: a child held open by its channel would never exit by itself.
  const timer = setTimeout(() => child.kill(), 15_000);
  const [code, signal] = await exited;
  clearTimeout(timer);
  assert.equal(signal, null, 'the child did not exit by itself within 15 s');
  assert.equal(code, 0);
  await rejectsWith(channel.receive('bye', T), 'EPROTOCOL', 'receiver closed the connection while we waited for bye');
  channel.close();
});
