// Whether a remote DIR is empty, asked over the same ssh with rsync itself (`--list-only`): no
// remote shell command, so no quoting of DIR for a shell on the other side.
import { SshRSyncError } from '../errors.js';
import { describeRestoreFailure, runRestoreRsync } from './restore-rsync.js';
import type { RemoteTarget } from './restore-target.js';

/** How long the listing may take: one directory, over an ssh that BatchMode keeps from prompting. */
const LISTING_TIMEOUT_SECONDS = 120;
/** A `--list-only` line: mode, size, date, time, name. */
const LINE = /^[-a-zA-Z]{10}\S*\s+[\d,.]+\s+\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d (.*)$/;
/** rsync's words for a DIR that is not there. */
const MISSING = /change_dir .* failed: No such file or directory|link_stat .* failed: No such file or directory/;

export interface RemoteState {
  exists: boolean;
  empty: boolean;
}

// Lists DIR's own entries over ssh; a DIR that does not exist counts as empty (rsync creates it).
export async function remoteState(target: RemoteTarget, rsh: string, signal?: AbortSignal): Promise<RemoteState> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), LISTING_TIMEOUT_SECONDS * 1000);
  const stop = () => controller.abort();
  signal?.addEventListener('abort', stop, { once: true });
  let names = 0;
  try {
    const result = await runRestoreRsync({
      args: ['--list-only', '-s', `--rsh=${rsh}`, `--timeout=${LISTING_TIMEOUT_SECONDS}`],
      source: target.rsyncTarget,
      list: [],
      onLine: (line) => {
        const match = LINE.exec(line);
        if (match && match[1] !== '.') names += 1;
      },
      signal: controller.signal,
    });
    if (result.exitCode === 0) return { exists: true, empty: names === 0 };
    if (result.exitCode === 23 && MISSING.test(result.output)) return { exists: false, empty: true };
    if (controller.signal.aborted && !signal?.aborted) throw new SshRSyncError('ETIMEOUT', `listing ${target.spec} took longer than ${LISTING_TIMEOUT_SECONDS} s: is the host reachable?`);
    throw new SshRSyncError('ERSYNC', `cannot look into ${target.spec}: ${describeRestoreFailure(result, target.spec)}`);
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', stop);
  }
}
