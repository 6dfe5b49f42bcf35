// Helpers that turn untrusted peer text into safe one-line fragments of error messages.

const unsafe = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
const unsafeOrQuote = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}"\\]/gu;
const named: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '"': '\\"', '\\': '\\\\' };
// Long hex runs look like session keys or secrets: never echo them.
const hexRun = /[0-9a-fA-F]{32,}/g;

function escapeChar(char: string): string {
  const known = named[char];
  if (known !== undefined) return known;
  const code = char.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

// Escapes control, format and line-separator characters so peer text stays on one line.
export function escapeText(text: string): string {
  return text.replace(unsafe, escapeChar);
}

// Quotes at most `max` characters of untrusted input, escaped and with hex secrets redacted.
export function quote(text: string, max = 80): string {
  const head = text.slice(0, max * 2 + 64);
  const chars = Array.from(head.replace(hexRun, '<redacted>'));
  const shown = chars.slice(0, max).join('');
  const more = chars.length > max || head.length < text.length ? '…' : '';
  return `"${shown.replace(unsafeOrQuote, escapeChar)}${more}"`;
}

// A duration for messages: "20 s", "1.5 s", "250 ms".
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  return `${Number.isInteger(seconds) ? seconds : seconds.toFixed(1)} s`;
}
