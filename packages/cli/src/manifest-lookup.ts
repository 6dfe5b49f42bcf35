// One path's line in a manifest, found without parsing the others: `versions` asks this of every
// backup of a host, and parsing each of 200 000 lines of 100 manifests (streamManifest) took a
// minute where searching the text for the path's own line start takes seconds (bench/history.mts).
// Streamed in chunks like streamManifest, with the same bound on a line; only the header and the
// one line found are parsed (verify is what reads every line and checks it).
import { createReadStream } from 'node:fs';
import { MAX_LINE_BYTES, escapeName, parseEntryLine, parseHeader, type Entry, type FormatVersion } from '@ssh-r-sync/plugin-manifest';

const CHUNK = 1024 * 1024;

// The entry of `path` (bytes as latin1) in the manifest at `file`, or null when it lists no such
// path. Throws (one line, naming the file) for a header it does not know, a line longer than
// MAX_LINE_BYTES, a malformed line for the path, or a missing final newline.
export async function findEntry(file: string, path: string, options: { signal?: AbortSignal } = {}): Promise<{ entry: Entry; version: FormatVersion } | null> {
  // A manifest line starts with the escaped path and a tab; escaped names hold no raw newline or
  // tab, so "\n" + name + "\t" is the start of that path's line and of nothing else.
  const needle = `\n${escapeName(path)}\t`;
  const stream = createReadStream(file, { encoding: 'latin1', highWaterMark: CHUNK, ...(options.signal ? { signal: options.signal } : {}) });
  let version: FormatVersion | undefined;
  let text = '';
  const fail = (why: string): never => {
    throw new Error(`${file}: ${why}`);
  };
  const chunks = (stream as AsyncIterable<string>)[Symbol.asyncIterator]();
  const next = async (): Promise<string | null> => {
    const result = await chunks.next();
    return result.done ? null : result.value;
  };
  try {
    for (let chunk = await next(); chunk !== null; chunk = await next()) {
      text += chunk;
      if (version === undefined) {
        const end = text.indexOf('\n');
        if (end < 0) {
          if (text.length > MAX_LINE_BYTES) fail(`a line longer than ${MAX_LINE_BYTES} bytes`);
          continue;
        }
        try {
          version = parseHeader(text.slice(0, end));
        } catch (error) {
          fail((error as Error).message);
        }
        text = text.slice(end); // keep the newline: the first entry's line starts after one too
      }
      const at = text.indexOf(needle);
      if (at >= 0) {
        let end = text.indexOf('\n', at + 1);
        while (end < 0 && text.length - at <= MAX_LINE_BYTES + 1) {
          const more = await next();
          if (more === null) fail('the manifest does not end with a newline (torn?)');
          text += more;
          end = text.indexOf('\n', at + 1);
        }
        if (end < 0) fail(`a line longer than ${MAX_LINE_BYTES} bytes`);
        try {
          return { entry: parseEntryLine(text.slice(at + 1, end), version!).entry, version: version! };
        } catch (error) {
          fail((error as Error).message);
        }
      }
      // Keep only the last, unfinished line (from its newline on): the needle may span chunks.
      const last = text.lastIndexOf('\n');
      if (text.length - last > MAX_LINE_BYTES + 1) fail(`a line longer than ${MAX_LINE_BYTES} bytes`);
      text = text.slice(last);
    }
  } finally {
    stream.destroy();
  }
  if (version === undefined) fail(text ? 'no header line' : 'an empty manifest (no header)');
  if (text !== '\n') fail('the manifest does not end with a newline (torn?)');
  return null;
}
