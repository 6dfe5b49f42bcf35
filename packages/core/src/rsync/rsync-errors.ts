// rsync's failure in words: the line of its output that names the cause, and what the common
// causes mean for a backup (a full disk, files that vanished, a stall, a signal), so that the
// one-line error says what happened and not only an exit code.

/** What the description is made from: an RsyncResult after rsync.post. */
export interface RsyncFailure {
  exitCode: number;
  originalExitCode: number;
  signal: string | null;
  output: string;
}

/** rsync's own diagnostics (and rrsync's, and a daemon's refusals). */
export const RSYNC_DIAGNOSTIC = /^(?:rsync(?: error| warning)?: |\S*rrsync error: |@ERROR|file has vanished: |\[\w+\] io timeout )/;
const DIAGNOSTIC = RSYNC_DIAGNOSTIC;
/** The closing summary: "rsync error: … (code N) at main.c(…)". */
const SUMMARY = /^rsync (?:error|warning): /;
/** Lines that only echo a failure on the other end of rsync's pipe. */
const ECHO = /Broken pipe \(32\)|Connection reset by peer \(104\)|connection unexpectedly closed|error in rsync protocol data stream|received SIGUSR1/;
/** Words of a program's complaint, for output without rsync's own lines (ssh's, a wrapper's). */
const COMPLAINT = /error|denied|refused|failed|fatal|not found|cannot|unable|timed out|no such|closed/i;
const ENOSPC = /No space left on device \(28\)/;
const EDQUOT = /Disk quota exceeded \(122\)/;
const IO_TIMEOUT = /io timeout after (\d+) seconds/;
const MAX_LINE = 300;

// One line saying why rsync failed, with the line of its output that shows it; `root` is BACKUP_ROOT.
export function describeRsyncFailure(result: RsyncFailure, root: string): string {
  const lines = outputLines(result.output);
  const diagnostics = lines.filter((line) => DIAGNOSTIC.test(line));
  const causes = diagnostics.filter((line) => !SUMMARY.test(line) && !ECHO.test(line));
  const code = result.originalExitCode;
  const mapped = result.exitCode !== code ? ` (rsync.post changed ${code} to ${result.exitCode})` : '';
  const quoted = (line: string | undefined) => (line ? `: ${clip(line)}` : '');
  const more = (found: string[]) => quoted(found[0]) + (found.length > 1 ? ` (and ${found.length - 1} more)` : '');

  if (result.signal) return `rsync was killed by ${result.signal}${mapped}`;
  const space = diagnostics.find((line) => ENOSPC.test(line));
  if (space) return `no space left on BACKUP_ROOT (${root}): free space there (old snapshots: ssh-r-sync-admin prune) and run the backup again${mapped}${quoted(space)}`;
  const quota = diagnostics.find((line) => EDQUOT.test(line));
  if (quota) return `disk quota exceeded on BACKUP_ROOT (${root}): raise the quota or free space there and run the backup again${mapped}${quoted(quota)}`;
  const stall = diagnostics.find((line) => IO_TIMEOUT.test(line));
  if (stall || code === 30 || code === 35) {
    const seconds = stall ? `${IO_TIMEOUT.exec(stall)![1]} seconds` : '--io-timeout seconds';
    return `no data moved for ${seconds} (--io-timeout): the client stalled or the connection hung (rsync exit ${code})${mapped}`;
  }
  if (code === 24) {
    const vanished = diagnostics.filter((line) => line.startsWith('file has vanished: '));
    return `some files vanished on the client during the transfer (rsync exit 24; an rsync.post hook can map 24 to 0)${mapped}${more(vanished)}`;
  }
  if (code === 23) return `some files or attributes were not transferred (rsync exit 23)${mapped}${more(causes)}`;
  if (code === 20) return `rsync was stopped by SIGINT, SIGTERM or SIGHUP (rsync exit 20)${mapped}`;
  const complaint = lines.findLast((line) => !DIAGNOSTIC.test(line) && COMPLAINT.test(line));
  return `rsync exited with code ${result.exitCode}${mapped}${quoted(causes[0] ?? complaint ?? diagnostics[0])}`;
}

// The output's lines (already bounded by the runner); --progress separates its updates with \r.
function outputLines(output: string): string[] {
  return output
    .split(/[\r\n]+/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

function clip(line: string): string {
  return line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line;
}
