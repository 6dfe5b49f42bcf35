// ssh's failure in words that say what to do: the common set-up mistakes (a refused key, an
// unknown host key, a port that is taken, a forced command that does not run, a receiver that
// refused to start) recognised from ssh's last lines and its exit code.
import { SshRSyncError } from '../errors.js';

/** What any of the client's ssh connections (backup, restore, snapshots) tells about its failure. */
export interface SshConnectionFailure {
  /** ssh's exit code; null when only the program above it is known (rsync for a restore). */
  code: number | null;
  /** ssh's last lines on stderr, oldest first. */
  lines: readonly string[];
  identityFile?: string | undefined;
  /** ssh's destination (user@host) and port, for the commands we suggest. */
  target: string;
  port: number | null;
}

export interface SshFailure extends SshConnectionFailure {
  code: number;
  /** The receiver's own error line, when it refused to start. */
  serverError: string;
  /** The tunnel port asked for (0: one the server picks). */
  tunnelPort: number;
}

// What the login shell says when the forced command's program is not there (bash, dash, zsh, …).
const SHELL_CANNOT_RUN = /^(?:\S*\/)?(?:ba|da|k|z)?sh:.*(?:not found|[Nn]o such file or directory)/;

// What to do about the set-up mistakes every connection to the backup server can meet (a refused
// key, an unknown or changed host key, a forced command that does not run); null for any other failure.
export function connectionAdvice(failure: SshConnectionFailure): string | null {
  const { code, lines } = failure;
  const text = lines.join('\n');
  const last = lines.at(-1) ?? '';
  const said = last ? ` (ssh: ${last})` : '';
  const host = failure.target.slice(failure.target.lastIndexOf('@') + 1);
  const port = failure.port ?? 22;
  if (/Permission denied \(/.test(last)) {
    const key = failure.identityFile ? `the key ${failure.identityFile}` : 'the key (give it with -k)';
    return `the server refused ${key}: put its .pub in the backup account's authorized_keys (ssh-r-sync-admin authorize prints the line)${said}`;
  }
  if (/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for \S+ has changed/.test(text)) {
    const entry = port === 22 ? host : `[${host}]:${port}`;
    return `the server's host key has changed: if the server was reinstalled, remove the old key with \`ssh-keygen -R '${entry}'\` and add the new one; otherwise do not connect${said}`;
  }
  if (/No \S+ host key is known for|Host key verification failed/.test(text)) {
    return `the server's host key is not in known_hosts: add it with \`ssh-keyscan -p ${port} ${host} >> ~/.ssh/known_hosts\` (check its fingerprint), or connect once with \`ssh -p ${port} ${failure.target}\`${said}`;
  }
  // The login shell could not find the forced command (127), or node its script.
  const notRun =
    lines.find((line) => /Cannot find module/.test(line)) ??
    (code === 127 && /not found|No such file/.test(last) ? last : lines.find((line) => SHELL_CANNOT_RUN.test(line)));
  if (notRun) return `the server could not run this key's forced command: check the command="…" path in the backup account's authorized_keys (ssh: ${notRun})`;
  return null;
}

// The error for a failed ssh: what happened and what to do, with ssh's own last line kept.
export function sshFailureError(failure: SshFailure, cause: unknown): SshRSyncError {
  const { code, lines } = failure;
  const text = lines.join('\n');
  const last = lines.at(-1) ?? '';
  const said = last ? ` (ssh: ${last})` : '';
  const fail = (message: string, errorCode: 'ETUNNEL' | 'ECONFIG' = 'ETUNNEL') =>
    new SshRSyncError(errorCode, `ssh failed (exit ${code})${message ? `: ${message}` : ''}`, { cause });
  // The receiver ran and refused (its config, BACKUP_ROOT, its rsync): its own line says why.
  if (failure.serverError) return fail(`the server refused to start: ${failure.serverError}`, code === 2 ? 'ECONFIG' : 'ETUNNEL');
  const forward = /remote port forwarding failed for listen port (\d+)/.exec(text);
  if (forward?.[1] === '0') return fail(`the server refused a port of its choosing: this key has a fixed permitlisten port, give it with --tunnel-port PORT`);
  // ssh says the same when the port is taken and when the key may not listen there.
  if (forward) return fail(`the server would not forward port ${forward[1]}: another backup of this host is already running, or another key uses port ${forward[1]} on the server, or this key's permitlisten names another port (give that one with --tunnel-port)`);
  const advice = connectionAdvice(failure);
  if (advice) return fail(advice);
  if (/^setpriv: failed to execute \S+: No such file/.test(last)) return fail(`ssh is not installed on this machine: install it (apt install openssh-client)${said}`);
  return fail(last);
}
