// Message schemas and the line codec: what is accepted, what is refused and how it is said.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage, type MessageInput } from '../src/session/protocol/index.js';
import { formatDuration, quote } from '../src/session/protocol/text.js';

const KEY = 'a1'.repeat(32);
const session = {
  v: 1,
  type: 'session',
  protocol: 'ssh-r-sync',
  version: 1,
  name: 'laptop',
  tunnelPort: 22001,
  key: KEY,
  options: { oneFileSystem: true, fakeSuper: false },
};
const result = {
  v: 1,
  type: 'result',
  status: 'success',
  committed: true,
  exitCode: 0,
  rsyncExitCode: 0,
  message: null,
  files: 12,
  bytes: 3400,
  durationMs: 1500,
  snapshot: null,
};

function decode(value: unknown): unknown {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return decodeMessage(Buffer.from(text), 'client');
}

function refused(value: unknown, message: string | RegExp, code = 'EPROTOCOL'): void {
  assert.throws(
    () => decode(value),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, code);
      if (typeof message === 'string') assert.equal(error.message, message);
      else assert.match(error.message, message);
      assert.doesNotMatch(error.message, /\n/);
      return true;
    },
  );
}

test('every message type decodes', () => {
  const messages = [
    { v: 1, type: 'hello', protocol: 'ssh-r-sync', versions: [1] },
    session,
    { v: 1, type: 'ready', name: 'laptop', mode: 'fake-super' },
    { v: 1, type: 'start' },
    { v: 1, type: 'skip', reason: 'on battery' },
    result,
    { v: 1, type: 'bye', status: 'failure', message: 'done hook failed' },
    { v: 1, type: 'error', message: 'disk full' },
  ];
  for (const message of messages) assert.deepEqual(decode(message), message);
});

test('unknown keys are refused, also nested and __proto__', () => {
  refused({ ...session, extra: 1 }, 'invalid session message from client: unknown key "extra"');
  refused({ ...session, options: { oneFileSystem: true, fakeSuper: false, su: true } }, 'invalid session message from client: options: unknown key "su"');
  refused('{"v":1,"type":"start","__proto__":{"x":1}}', 'invalid start message from client: unknown key "__proto__"');
  refused({ v: 1, type: 'start', 'a\nb': 1 }, 'invalid start message from client: unknown key "a\\nb"');
});

test('wrong types, bad keys, out-of-range and negative numbers are refused', () => {
  const invalid = /^invalid session message from client: /;
  refused({ ...session, options: { oneFileSystem: true, fakeSuper: 'yes' } }, /^invalid session message from client: options\.fakeSuper: .*expected boolean/);
  refused({ ...session, key: 'a'.repeat(65) }, 'invalid session message from client: key: must be 64 hex characters (a 32-byte key)');
  refused({ ...session, key: 'a'.repeat(63) }, invalid);
  refused({ ...session, key: 'g'.repeat(64) }, invalid);
  refused({ ...session, tunnelPort: 0 }, /tunnelPort: /);
  refused({ ...session, tunnelPort: 65536 }, /tunnelPort: /);
  refused({ ...session, tunnelPort: 22001.5 }, /tunnelPort: /);
  refused({ ...session, name: 'x'.repeat(256) }, /name: /);
  refused({ ...result, files: -1 }, /^invalid result message from client: files: /);
  refused({ ...result, bytes: 1.5 }, /bytes: /);
  refused({ ...result, durationMs: '5' }, /durationMs: /);
  refused({ ...result, exitCode: 3 }, /exitCode: /);
  refused({ ...result, message: 'm'.repeat(4097) }, /message: /);
  refused({ v: 1, type: 'hello', protocol: 'ssh-r-sync', versions: [] }, /versions: /);
  refused({ v: 1, type: 'hello', protocol: 'ssh-r-sync', versions: Array(17).fill(1) }, /versions: /);
  refused({ v: 1, type: 'hello', protocol: 'rsync', versions: [1] }, /protocol: /);
  refused({ v: 1, type: 'ready', name: 'x', mode: 'root' }, /mode: /);
  refused({ v: 1, type: 'skip', reason: 'r'.repeat(1025) }, /reason: /);
});

test('garbage, versions and unknown types get their own messages', () => {
  refused('hello', 'garbage from client: "hello"');
  refused('[1,2]', 'garbage from client: "[1,2]"');
  refused('null', 'garbage from client: "null"');
  refused('{"v":1}', 'garbage from client: "{\\"v\\":1}"');
  refused('{"v":1,"type":3}', /^garbage from client: /);
  refused('', 'garbage from client: ""');
  refused({ v: 7, type: 'start' }, 'unsupported protocol version 7 from client (this side speaks 1)');
  refused({ type: 'start' }, 'unsupported protocol version none from client (this side speaks 1)');
  refused({ v: '1', type: 'start' }, 'unsupported protocol version "\\"1\\"" from client (this side speaks 1)');
  refused({ v: 1, type: 'x' }, 'unknown message type "x" from client');
  refused({ v: 1, type: 'constructor' }, 'unknown message type "constructor" from client');
});

test('garbage quotes at most 80 characters, escaped, and never a hex key', () => {
  const banner = `Welcome to Ubuntu\x1b[0m\r\t${'x'.repeat(200)}`;
  refused(banner, `garbage from client: "Welcome to Ubuntu\\x1b[0m\\r\\t${'x'.repeat(57)}…"`);
  refused(`{"key":"${KEY}"`, 'garbage from client: "{\\"key\\":\\"<redacted>\\""');
  assert.throws(() => decodeMessage(Buffer.from([0x7b, 0xff, 0xfe]), 'client'), {
    code: 'EPROTOCOL',
    message: 'garbage from client: "{\ufffd\ufffd"',
  });
  assert.equal(quote('\u202e\u2028ab', 3), '"\\u202e\\u2028a…"');
});

test('encode adds the version, refuses invalid messages and keeps one line', () => {
  const line = encodeMessage({ type: 'skip', reason: 'line one\nline two' }, 65536);
  assert.equal(line, '{"v":1,"type":"skip","reason":"line one\\nline two"}\n');
  assert.equal(line.indexOf('\n'), line.length - 1);
  const bad = [
    { type: 'skip', reason: 'r'.repeat(1025) },
    { type: 'start', extra: true },
    { type: 'nope' },
    { v: 2, type: 'start' },
  ] as unknown as MessageInput[];
  for (const message of bad) assert.throws(() => encodeMessage(message, 65536), { code: 'EINTERNAL' });
  assert.throws(() => encodeMessage({ type: 'skip', reason: 'x'.repeat(100) }, 64), /skip message is \d+ bytes, over the limit of 64/);
});

test('durations read naturally', () => {
  assert.equal(formatDuration(20_000), '20 s');
  assert.equal(formatDuration(1500), '1.5 s');
  assert.equal(formatDuration(250), '250 ms');
});
