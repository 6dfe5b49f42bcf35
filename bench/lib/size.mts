// The benches' --bytes option: a size as a person writes it (1G, 100M, 512K, powers of 1024) or a
// plain byte count. Throws one-line errors, which each bench prints above its usage.

// The bytes that `text` means (e.g. "1.5G"); throws on anything else.
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (!match) throw new Error(`invalid size ${JSON.stringify(text)} (e.g. 1G, 100M, 512K, 123456)`);
  const power = ' kmgt'.indexOf((match[2] || ' ').toLowerCase());
  return Math.round(Number(match[1]) * 1024 ** power);
}

// The --bytes option, or `fallback` when it is absent; at least one byte (a tree of empty files
// would make every ratio meaningless).
export function bytesOption(text: string | undefined, fallback: number): number {
  const bytes = text === undefined ? fallback : parseSize(text);
  if (bytes < 1) throw new Error('--bytes must be at least 1 byte');
  return bytes;
}
