// The plugin's options as written in the receiver's config, and their checked form. Everything is
// checked when the config is loaded: a repository without a password file, a password in the
// config, or a password file others can read stops the receiver there (exit 2), with what to do.
import { statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { SshRSyncError } from '@ssh-r-sync/core';

/** One restic repository, as in the config. */
export interface RepositoryOptions {
  /** Names the repository in logs, the state file and the admin commands: `offsite`. */
  name: string;
  /** restic's `-r`: `sftp:user@host:/srv/restic`, `s3:https://s3.example.com/bucket`, `rest:https://…`, `/mnt/usb/restic`. */
  repository: string;
  /** An absolute path to the repository's password, mode 0600 (or RESTIC_PASSWORD_FILE in env). */
  passwordFile?: string;
  /** restic's environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, B2_…, RESTIC_CACHE_DIR … (never argv). */
  env?: Record<string, string>;
  /** restic's `-o key=value` (sftp.command, s3.region, …): not for secrets, they are on its command line. */
  options?: Record<string, string>;
  /** Retention off-site, in plugin-rotate's words: '14d 4w 6m 2y'; 'rotate': the host's own
   *  policy (plugin-rotate's in the same config); none = keep every copy. */
  keep?: string;
  /** With keep: always keep this many of the newest copies (restic's --keep-last). */
  keepLast?: number;
}

export interface ResticOptions {
  repositories: RepositoryOptions[];
  /** The restic program (default: `restic` on PATH). */
  restic?: string;
  /** Seconds the copies after one backup may take in all (default 21600, 0 = no limit). */
  timeout?: number;
  /** Hold snapshots not yet copied everywhere from local rotation (default true). */
  hold?: boolean;
  /** Run `restic forget --prune` after the copies of a run (default true where a repository has keep). */
  forget?: boolean;
}

export interface Repository {
  name: string;
  repository: string;
  passwordFile: string | null;
  env: Record<string, string>;
  options: [string, string][];
  keep: Keep | null;
}

/** How a repository's copies are forgotten: by its own rules (restic's --keep-* flags), or by the
 *  host's rotation policy (plugin-rotate's plan over the copies, then `restic forget ID…`). */
export type Keep = { kind: 'own'; last: number | null; rules: [flag: string, count: number][]; text: string } | { kind: 'rotate'; text: string };

export interface ParsedOptions {
  repositories: Repository[];
  restic: string;
  timeoutMs: number;
  hold: boolean;
  forget: boolean;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const ENV_NAME = /^[A-Z_][A-Z0-9_]*$/;
const PASSWORD_VARIABLES = ['RESTIC_PASSWORD', 'RESTIC_PASSWORD_COMMAND'];
/** restic's own variables that the plugin sets itself. */
const RESERVED = ['RESTIC_REPOSITORY', 'RESTIC_REPOSITORY_FILE', 'TZ'];
const UNIT_FLAGS: Record<string, string> = { h: '--keep-hourly', d: '--keep-daily', w: '--keep-weekly', m: '--keep-monthly', y: '--keep-yearly' };
/** restic 0.14 has no "unlimited" count: '*y' keeps this many years. */
const ALL = 100000;

function fail(message: string): never {
  throw new SshRSyncError('ECONFIG', message);
}

// Checks the options; throws ECONFIG naming the repository and what to change.
export function parseOptions(options: ResticOptions): ParsedOptions {
  if (typeof options !== 'object' || options === null) fail('give {"repositories": [{"name": …, "repository": …, "passwordFile": …}]}');
  for (const key of Object.keys(options)) if (!['repositories', 'restic', 'timeout', 'hold', 'forget'].includes(key)) fail(`unknown option ${JSON.stringify(key)} (repositories, restic, timeout, hold, forget)`);
  const { repositories, restic = 'restic', timeout = 21600, hold = true, forget = true } = options;
  if (!Array.isArray(repositories) || repositories.length === 0) fail('repositories: give at least one {"name": "offsite", "repository": "sftp:…", "passwordFile": "/etc/ssh-r-sync/restic.pass"}');
  if (typeof restic !== 'string' || restic === '') fail('restic: give the program\'s name or absolute path');
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0) fail(`timeout must be a number of seconds >= 0, got ${JSON.stringify(timeout)}`);
  if (typeof hold !== 'boolean') fail(`hold must be true or false, got ${JSON.stringify(hold)}`);
  if (typeof forget !== 'boolean') fail(`forget must be true or false, got ${JSON.stringify(forget)}`);
  const names = new Set<string>();
  const parsed = repositories.map((r, i) => {
    const repo = parseRepository(r, i);
    if (names.has(repo.name)) fail(`repository name "${repo.name}" is given twice`);
    names.add(repo.name);
    return repo;
  });
  return { repositories: parsed, restic, timeoutMs: timeout * 1000, hold, forget };
}

function parseRepository(r: RepositoryOptions, index: number): Repository {
  if (typeof r !== 'object' || r === null) fail(`repositories[${index}] must be an object`);
  const where = `repositories[${index}]`;
  for (const key of Object.keys(r)) if (!['name', 'repository', 'passwordFile', 'env', 'options', 'keep', 'keepLast'].includes(key)) fail(`${where}: unknown option ${JSON.stringify(key)}`);
  if (typeof r.name !== 'string' || !NAME.test(r.name)) fail(`${where}: name must be lower-case letters, digits, - or _ (e.g. "offsite"), got ${JSON.stringify(r.name)}`);
  const at = `repository "${r.name}"`;
  if (typeof r.repository !== 'string' || r.repository.trim() === '' || r.repository.startsWith('-') || /[\n\0]/.test(r.repository)) fail(`${at}: give restic's repository (sftp:user@host:/path, s3:https://host/bucket, rest:https://host/, or an absolute path)`);
  if (!/^(sftp|s3|rest|b2|azure|gs|swift|rclone):/.test(r.repository) && !isAbsolute(r.repository)) fail(`${at}: ${JSON.stringify(r.repository)} is neither an absolute path nor a restic backend (sftp:, s3:, rest:, b2:, azure:, gs:, swift:, rclone:)`);
  const env: Record<string, string> = {};
  if (r.env !== undefined) {
    if (typeof r.env !== 'object' || r.env === null || Array.isArray(r.env)) fail(`${at}: env must be an object of variables`);
    for (const [key, value] of Object.entries(r.env)) {
      if (!ENV_NAME.test(key)) fail(`${at}: env ${JSON.stringify(key)} is not a variable name`);
      if (typeof value !== 'string' || value.includes('\0')) fail(`${at}: env ${key} must be a string`);
      if (PASSWORD_VARIABLES.includes(key)) fail(`${at}: env ${key} would put the password in the config: write it to a file of mode 0600 and give "passwordFile"`);
      if (RESERVED.includes(key)) fail(`${at}: env ${key} is set by the plugin (the repository is "repository")`);
      env[key] = value;
    }
  }
  const passwordFile = r.passwordFile ?? env.RESTIC_PASSWORD_FILE ?? null;
  if (r.passwordFile !== undefined && env.RESTIC_PASSWORD_FILE !== undefined) fail(`${at}: give the password file once, as passwordFile or as env RESTIC_PASSWORD_FILE`);
  if (passwordFile === null) fail(`${at}: give "passwordFile", an absolute path to a file of mode 0600 holding the repository's password`);
  delete env.RESTIC_PASSWORD_FILE;
  checkPasswordFile(passwordFile, at);
  const opts: [string, string][] = [];
  if (r.options !== undefined) {
    if (typeof r.options !== 'object' || r.options === null || Array.isArray(r.options)) fail(`${at}: options must be an object of restic -o settings`);
    for (const [key, value] of Object.entries(r.options)) {
      if (!/^[a-z0-9]+\.[a-z0-9._-]+$/i.test(key)) fail(`${at}: option ${JSON.stringify(key)} is not a restic -o name (like sftp.command or s3.region)`);
      if (typeof value !== 'string' || /[\n\0]/.test(value)) fail(`${at}: option ${key} must be a one-line string`);
      opts.push([key, value]);
    }
  }
  return { name: r.name, repository: r.repository, passwordFile, env, options: opts, keep: parseKeep(r.keep, r.keepLast, at) };
}

// The password file must be absolute, a regular file, and readable by its owner only.
export function checkPasswordFile(path: string, at: string): void {
  if (typeof path !== 'string' || !isAbsolute(path)) fail(`${at}: passwordFile must be an absolute path, got ${JSON.stringify(path)}`);
  let mode: number;
  try {
    const stats = statSync(path);
    if (!stats.isFile()) fail(`${at}: passwordFile ${path} is not a regular file`);
    mode = stats.mode & 0o777;
  } catch (error) {
    if (error instanceof SshRSyncError) throw error;
    fail(`${at}: passwordFile ${path}: ${(error as NodeJS.ErrnoException).code ?? 'cannot be read'}: write the repository's password there (mode 0600)`);
  }
  if (mode & 0o077) fail(`${at}: passwordFile ${path} can be read by others (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 ${path}`);
}

// '14d 4w 6m 2y' (+ keepLast) as restic's --keep-* flags.
function parseKeep(keep: unknown, keepLast: unknown, at: string): Repository['keep'] {
  if (keep === undefined && keepLast === undefined) return null;
  if (keep === 'rotate') {
    if (keepLast !== undefined) fail(`${at}: keepLast does not go with keep "rotate": the host's policy (plugin-rotate's keepLast) applies`);
    return { kind: 'rotate', text: "the host's rotation policy" };
  }
  const rules: [string, number][] = [];
  if (keep !== undefined) {
    if (typeof keep !== 'string' || keep.trim() === '') fail(`${at}: keep must be like '14d 4w 6m 2y', or "rotate" for the host's policy`);
    const seen = new Set<string>();
    for (const token of keep.trim().split(/\s+/)) {
      const match = /^(\d+|\*)([hdwmy])$/.exec(token);
      if (!match || match[1] === '0') fail(`${at}: cannot read ${JSON.stringify(token)} in keep ${JSON.stringify(keep)}: e.g. '14d 4w 6m 2y' (h, d, w, m, y; '*' for all), or "rotate" for the host's policy`);
      if (seen.has(match[2]!)) fail(`${at}: ${match[2]} is given twice in keep ${JSON.stringify(keep)}`);
      seen.add(match[2]!);
      rules.push([UNIT_FLAGS[match[2]!]!, match[1] === '*' ? ALL : Math.min(Number(match[1]), ALL)]);
    }
  }
  if (keepLast !== undefined && (!Number.isSafeInteger(keepLast) || (keepLast as number) < 1)) fail(`${at}: keepLast must be a whole number >= 1`);
  const last = (keepLast as number | undefined) ?? null;
  return { kind: 'own', last, rules, text: [typeof keep === 'string' ? keep.trim() : '', last ? `keep-last ${last}` : ''].filter(Boolean).join(', ') };
}
