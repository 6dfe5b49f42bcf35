// Two manifests of a host read side by side in one pass, as a merge: both list their entries in the
// same order (depth first, each directory's names sorted by their bytes, a directory right before
// its contents), so `diff` holds one entry of each at a time, whatever their size.
import { compareManifestPaths, streamManifest, type Entry, type FormatVersion, type StreamedEntry as Streamed } from '@ssh-r-sync/plugin-manifest';

/** A path in A, in B, or in both; `a`/`b` are null where the path is missing. */
export interface MergedEntry {
  path: string;
  a: Entry | null;
  b: Entry | null;
  versionA: FormatVersion;
  versionB: FormatVersion;
}


// Yields every path of manifests `fileA` and `fileB` once, in manifest order, with its entry in
// each. Throws (one line, naming the file) when a manifest is not in that order: a merge of
// unsorted input would report paths as added and removed that are in both.
export async function* mergeManifests(fileA: string, fileB: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<MergedEntry> {
  const a = ordered(fileA, options.signal);
  const b = ordered(fileB, options.signal);
  // A manifest's version is in its header, the same for every entry; 3 until one is seen.
  let versionA: FormatVersion = 3;
  let versionB: FormatVersion = 3;
  const next = async (side: AsyncGenerator<Streamed>): Promise<Streamed | null> => {
    const result = await side.next();
    return result.done ? null : result.value;
  };
  try {
    let x = await next(a);
    let y = await next(b);
    while (x || y) {
      if (x) versionA = x.version;
      if (y) versionB = y.version;
      // < 0: only in A; > 0: only in B; 0: in both.
      const order = !x ? 1 : !y ? -1 : compareManifestPaths(x.path, y.path);
      yield { path: order <= 0 ? x!.path : y!.path, a: order <= 0 ? x!.entry : null, b: order >= 0 ? y!.entry : null, versionA, versionB };
      if (order <= 0) x = await next(a);
      if (order >= 0) y = await next(b);
    }
  } finally {
    await a.return(undefined);
    await b.return(undefined);
  }
}

// streamManifest, checked to be in manifest order (strictly: a path listed twice is refused too).
async function* ordered(file: string, signal?: AbortSignal): AsyncGenerator<Streamed> {
  let previous: string | null = null;
  let line = 1;
  for await (const item of streamManifest(file, signal ? { signal } : {})) {
    line += 1;
    if (previous !== null && compareManifestPaths(previous, item.path) >= 0) {
      throw new Error(`${file}, line ${line}: not in manifest order (depth first, names sorted by their bytes): was it edited or written by another tool?`);
    }
    if (previous === null && item.path !== '.') throw new Error(`${file}, line ${line}: the first entry is not the top directory "."`);
    previous = item.path;
    yield item;
  }
}
