// The one-time rsync daemon's configuration: read-only, one module, the client's filter rules,
// a per-session secret. Values never come from free text: the module path is a symlink in the
// session directory, so a path with a newline or %VAR% cannot change the config.
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { SshRSyncError } from '../errors.js';
import type { SessionDir } from '../session/session-dir.js';

export interface DaemonConfigOptions {
  dir: SessionDir;
  path: string;
  secret: string;
  user: string;
  module: string;
  privileged: boolean;
  filterFile?: string | undefined;
  dirMergeName?: string | undefined;
  debug: boolean;
  /** -x: the daemon itself leaves out what is mounted below PATH, whatever the receiver asks. */
  oneFileSystem?: boolean;
  /** /proc/self/mountinfo, for tests. */
  mountinfo?: string;
}

// Writes rsyncd.conf and its companions into the session directory; returns the config path.
export function writeDaemonConfig(options: DaemonConfigOptions): string {
  const { dir } = options;
  const tree = dir.file('tree');
  symlinkSync(options.path, tree);
  const secrets = dir.file('rsyncd.secrets');
  writeFileSync(secrets, `${options.user}:${options.secret}\n`, { mode: 0o600, flag: 'wx' });
  const lines = [
    `# one-time daemon of ssh-r-sync; removed when the session ends`,
    `numeric ids = yes`,
    `timeout = 600`,
    `log file = ${options.debug ? '/dev/stderr' : '/dev/null'}`,
    `transfer logging = no`,
    ...(options.privileged ? ['uid = 0', 'gid = 0', 'use chroot = yes'] : ['use chroot = no']),
    ``,
    `[${options.module}]`,
    `path = ${tree}`,
    `read only = yes`,
    `list = no`,
    `auth users = ${options.user}`,
    `secrets file = ${secrets}`,
    `strict modes = yes`,
    // A compromised server must not read outside PATH by following symlinks, nor devices.
    `refuse options = copy-links copy-unsafe-links copy-dirlinks copy-devices write-devices`,
  ];
  const filter = filterRules(options);
  if (filter) {
    const filterPath = dir.file('filter');
    writeFileSync(filterPath, filter, { mode: 0o600, flag: 'wx' });
    lines.push(`filter = merge ${filterPath}`);
  }
  const config = dir.file('rsyncd.conf');
  writeFileSync(config, `${lines.join('\n')}\n`, { mode: 0o600, flag: 'wx' });
  return config;
}

function filterRules(options: DaemonConfigOptions): string {
  const rules: string[] = [];
  if (options.dirMergeName) {
    if (/[\s/]/.test(options.dirMergeName)) throw new SshRSyncError('EUSAGE', `invalid --filter-dir-file name ${JSON.stringify(options.dirMergeName)}`);
    rules.push(`dir-merge ${options.dirMergeName}`);
  }
  if (options.oneFileSystem) rules.push(...mountExclusions(options.path, options.mountinfo ?? readMountinfo()));
  if (options.filterFile) {
    try {
      rules.push(readFileSync(options.filterFile, 'utf8').trimEnd());
    } catch (error) {
      throw new SshRSyncError('EUSAGE', `cannot read filter file ${options.filterFile}: ${(error as NodeJS.ErrnoException).code}`);
    }
  }
  return rules.length ? `${rules.join('\n')}\n` : '';
}

function readMountinfo(): string {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return '';
  }
}

// Rules that hide the contents of every mount point below `root` (the mount point itself stays,
// empty, as rsync -x leaves it).
export function mountExclusions(root: string, mountinfo: string): string[] {
  const rules: string[] = [];
  for (const line of mountinfo.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const point = field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
    if (!point.startsWith(`${root}/`) || point.includes('\n')) continue;
    const relative = point.slice(root.length).replace(/[\\*?[]/g, (char) => `\\${char}`);
    rules.push(`- ${relative}/*`);
  }
  return rules;
}
