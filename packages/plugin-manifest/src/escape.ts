// Names are bytes, not text: a file name may hold a tab, a newline or bytes that are not UTF-8.
// The manifest keeps every name on one line and one field, reversibly. Names travel here as
// "binary" strings (latin1: one char per byte), so valid UTF-8 passes through byte for byte.

const BACKSLASH = 0x5c;

// A name's bytes (as a latin1 string) escaped for a manifest field: `\\`, `\t`, `\n`, and
// `\xHH` for other control bytes and for every byte that is not part of valid UTF-8.
export function escapeName(bytes: string): string {
  if (isPlain(bytes)) return bytes;
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const byte = bytes.charCodeAt(i);
    if (byte >= 0x80) {
      const length = utf8SequenceLength(bytes, i);
      if (length > 0) {
        out += bytes.slice(i, i + length);
        i += length;
      } else {
        out += hex(byte);
        i += 1;
      }
      continue;
    }
    if (byte === BACKSLASH) out += '\\\\';
    else if (byte === 0x09) out += '\\t';
    else if (byte === 0x0a) out += '\\n';
    else if (byte < 0x20 || byte === 0x7f) out += hex(byte);
    else out += bytes[i];
    i += 1;
  }
  return out;
}

// The bytes (as a latin1 string) of an escaped field: the inverse of escapeName.
export function unescapeName(field: string): string {
  return field.replace(/\\(\\|t|n|x([0-9a-f]{2}))/g, (_, what: string, code: string | undefined) =>
    code ? String.fromCharCode(parseInt(code, 16)) : what === 't' ? '\t' : what === 'n' ? '\n' : '\\',
  );
}

// Printable ASCII without a backslash: the common case, kept as it is.
function isPlain(bytes: string): boolean {
  for (let i = 0; i < bytes.length; i += 1) {
    const byte = bytes.charCodeAt(i);
    if (byte < 0x20 || byte >= 0x7f || byte === BACKSLASH) return false;
  }
  return true;
}

function hex(byte: number): string {
  return `\\x${byte.toString(16).padStart(2, '0')}`;
}

// The length of the valid UTF-8 sequence at `i` (2-4), or 0 when the byte there does not start
// one: stray continuation bytes, overlong forms, surrogates and code points above U+10FFFF.
function utf8SequenceLength(bytes: string, i: number): number {
  const lead = bytes.charCodeAt(i);
  let length: number;
  let min: number;
  if (lead >= 0xc2 && lead <= 0xdf) [length, min] = [2, 0x80];
  else if (lead >= 0xe0 && lead <= 0xef) [length, min] = [3, 0x800];
  else if (lead >= 0xf0 && lead <= 0xf4) [length, min] = [4, 0x10000];
  else return 0;
  if (i + length > bytes.length) return 0;
  let code = lead & (0xff >> (length + 1));
  for (let k = 1; k < length; k += 1) {
    const next = bytes.charCodeAt(i + k);
    if ((next & 0xc0) !== 0x80) return 0;
    code = (code << 6) | (next & 0x3f);
  }
  if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return 0;
  return length;
}
