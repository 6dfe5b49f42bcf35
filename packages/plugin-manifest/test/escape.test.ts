// Manifest fields: names are bytes; every one must come back from its field exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeName, seconds, unescapeName } from '../src/index.js';

const bytes = (...values: number[]) => Buffer.from(values).toString('latin1');
const utf8 = (text: string) => Buffer.from(text).toString('latin1');

test('printable names and valid UTF-8 stay as they are', () => {
  assert.equal(escapeName('plain name-1.txt'), 'plain name-1.txt');
  assert.equal(Buffer.from(escapeName(utf8('café 日本 🎉')), 'latin1').toString('utf8'), 'café 日本 🎉');
});

test('tab, newline and backslash are escaped; other control bytes and DEL as \\xHH', () => {
  assert.equal(escapeName('a\tb\nc\\d'), 'a\\tb\\nc\\\\d');
  assert.equal(escapeName('cr\r\x01\x7f'), 'cr\\x0d\\x01\\x7f');
});

test('bytes that are not UTF-8 are escaped one by one, the valid ones around them kept', () => {
  assert.equal(escapeName(bytes(0x66, 0xff, 0x6f)), 'f\\xffo');
  assert.equal(escapeName(bytes(0xc0, 0x80)), '\\xc0\\x80', 'overlong NUL');
  assert.equal(escapeName(bytes(0xed, 0xa0, 0x80)), '\\xed\\xa0\\x80', 'a surrogate');
  assert.equal(escapeName(bytes(0xf4, 0x90, 0x80, 0x80)), '\\xf4\\x90\\x80\\x80', 'above U+10FFFF');
  assert.equal(escapeName(bytes(0xe2, 0x82)), '\\xe2\\x82', 'a cut sequence');
  assert.equal(escapeName(bytes(0x80) + utf8('é')), `\\x80${utf8('é')}`, 'a stray continuation byte');
});

test('unescapeName gives back the bytes of any name', () => {
  const names = ['x', 'a\tb\nc\\d', '\\x41 is not an escape', bytes(0xff, 0xfe, 0x5c, 0x78, 0x34, 0x31), utf8('ünï\tcode'), bytes(...Array.from({ length: 255 }, (_, i) => i + 1))];
  for (const name of names) {
    const field = escapeName(name);
    assert.doesNotMatch(field, /[\t\n]/, 'a field never holds a tab or a newline');
    assert.equal(unescapeName(field), name);
  }
});

test('mtimes are exact seconds with nine decimals, also before 1970', () => {
  assert.equal(seconds(1_577_934_245_123_456_789n), '1577934245.123456789');
  assert.equal(seconds(5n), '0.000000005');
  assert.equal(seconds(-500_000_000n), '-0.500000000');
});
