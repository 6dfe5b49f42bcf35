// The order of a manifest's lines, for tools that walk a manifest beside a tree or another
// manifest: the top `.` first, then component by component, bytewise, a directory right before
// its contents ("a" < "a/b" < "a-b": "/" ends a component, so it sorts before every byte).
// Paths are bytes as latin1 strings, relative to the top.

// Negative when `a` comes first, positive when `b` does, 0 when they are the same path.
export function compareManifestPaths(a: string, b: string): number {
  if (a === b) return 0;
  if (a === '.') return -1;
  if (b === '.') return 1;
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i += 1) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return (x === 0x2f ? -1 : x) - (y === 0x2f ? -1 : y);
  }
  return a.length - b.length;
}
