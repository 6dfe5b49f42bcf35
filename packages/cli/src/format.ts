// How every command prints numbers for people and for programs: one size formatter (human units
// on a terminal, exact byte counts in pipes and logs, exact numbers always in --json), plurals,
// and the schema version every --json object carries (docs/json.md).

/**
 * The version of every --json shape (docs/json.md). Raised when a field changes meaning or goes
 * away; new fields may appear without a raise.
 */
export const JSON_SCHEMA = 1;

const UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

// "1 file", "2 files", "0 files"; the plural form when it is not WORD+s ("1 entry", "3 entries").
export function plural(count: number | bigint, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 || count === 1n ? singular : pluralForm}`;
}

// A size for people: 512 B, 3.4 KiB, 12.5 MiB, 1.2 GiB (powers of 1024, one decimal).
export function humanBytes(bytes: number | bigint): string {
  let value = Number(bytes);
  if (value < 1024) return `${bytes} B`;
  let unit = -1;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${UNITS[unit]}`;
}

// A size as text goes to STREAM: human units on a terminal, the exact count ("4096 bytes")
// when the text goes to a pipe, a file or the journal, where it is grepped and compared.
export function formatBytes(bytes: number | bigint, stream: { isTTY?: boolean } = process.stdout): string {
  return stream.isTTY ? humanBytes(bytes) : plural(bytes, 'byte');
}

// ": 1 file, 30 bytes" after a run or a restore ('' when rsync gave no counts); sizes as formatBytes.
export function counts(files: number | null | undefined, bytes: number | null | undefined, stream: { isTTY?: boolean } = process.stderr): string {
  return files == null ? '' : `: ${plural(files, 'file')}, ${formatBytes(bytes ?? 0, stream)}`;
}

/** A backup run's result in --json: the same shape from the client and from the receiver. */
export interface RunResultJson {
  schema: typeof JSON_SCHEMA;
  status: 'success' | 'failure' | 'skipped';
  exitCode: number;
  committed: boolean;
  name: string | null;
  snapshot: string | null;
  files: number | null;
  bytes: number | null;
  durationMs: number;
  rsyncExitCode: number | null;
  message: string | null;
}

// The run result object, keys in one order whoever prints it.
export function runResultJson(result: Omit<RunResultJson, 'schema'>): RunResultJson {
  return {
    schema: JSON_SCHEMA,
    status: result.status,
    exitCode: result.exitCode,
    committed: result.committed,
    name: result.name,
    snapshot: result.snapshot,
    files: result.files,
    bytes: result.bytes,
    durationMs: result.durationMs,
    rsyncExitCode: result.rsyncExitCode,
    message: result.message,
  };
}
