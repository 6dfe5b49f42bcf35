// What the admin sub-commands share: the prefix, option parsers, the host listing, ages.
import { statSync } from 'node:fs';
import { stat, readdir } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { NAME_PATTERN, UsageError, oneLine, swappable, validateName, type Logger } from '@ssh-r-sync/core/internal';
import { configureProgram, durationMs } from './common.js';

export const ADMIN_PREFIX = 'ssh-r-sync-admin';

/** Where a sub-command leaves its exit code (commander's actions cannot return one). */
export interface ExitCodeHolder {
  code: number;
}

// A sub-command with the same usage-error handling as the program (exit 2, one line).
export function subCommand(command: Command): Command {
  return configureProgram(command, ADMIN_PREFIX);
}

// Commander parser: a duration such as 36h, 2h30m or 14d, in milliseconds (the shared syntax).
export const duration = durationMs;

// Commander parser: a whole number >= 1.
export function positiveInteger(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(number) || number < 1) throw new InvalidArgumentError('expected a whole number >= 1');
  return number;
}

// Commander parser: an ISO 8601 time, e.g. 2026-11-22T03:00:00Z.
export function isoTime(value: string): Date {
  const date = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(date.getTime())) throw new InvalidArgumentError('expected an ISO 8601 time such as 2026-11-22T03:00:00Z');
  return date;
}

// BACKUP_ROOT as an absolute path; a usage error unless it is a directory.
export async function backupRoot(root: string): Promise<string> {
  const absolute = resolve(root);
  const info = await stat(absolute).catch(() => null);
  if (!info?.isDirectory()) throw new UsageError(`BACKUP_ROOT ${absolute} is not a directory`);
  return absolute;
}

// The hosts to look at: the names given (checked), or every directory under ROOT named like a
// host (`.ssh-r-sync` and anything else that is not a host name are skipped), sorted.
export async function hostNames(root: string, names: string[]): Promise<string[]> {
  if (names.length) {
    for (const name of names) {
      try {
        validateName(name);
      } catch (error) {
        throw new UsageError(oneLine(error));
      }
    }
    return [...new Set(names)];
  }
  const entries = await readdir(root, { withFileTypes: true });
  return entries
    .filter((entry) => entry.isDirectory() && NAME_PATTERN.test(entry.name))
    .map((entry) => entry.name)
    .sort();
}

export function hostDir(root: string, name: string): string {
  return join(root, name);
}

export { formatAge } from '@ssh-r-sync/core/internal';

// Lays out rows as left-aligned columns separated by two spaces.
export function columns(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n') + '\n';
}

// Root running an admin command that changes a backup root another account owns (a non-root
// receiver's: prune, verify, offsite sync|forget) becomes that account first, for good: its deletions
// and restic then reach only what the account could (a folder it swapped for a symlink leads
// nowhere the account could not go itself), and what is written under ROOT stays the account's
// (a root-owned host record or off-site state would lock the account's own runs out). Returns
// the account's name, or null.
// Root's own root whose path another account could swap (see swappable) is refused: root's
// deletions there could be led anywhere, and becoming that account would not make them its own.
export function becomeOwnerOf(root: string, logger: Logger): string | null {
  if (process.getuid?.() !== 0) return null;
  const { uid, gid } = statSync(root);
  if (uid === 0) {
    const weak = swappable(root);
    if (weak) throw new UsageError(`refusing to change ${root} as root: ${weak}, so another account could swap it for a symlink meanwhile (chown root or chmod go-w it, or run as the account that owns it)`);
    return null;
  }
  try {
    // Documented (process.initgroups), though @types/node leaves it out.
    (process as NodeJS.Process & { initgroups(user: number, extraGroup: number): void }).initgroups(uid, gid);
  } catch {
    process.setgroups!([gid]); // no passwd entry for that uid: its own group only
  }
  process.setgid!(gid);
  process.setuid!(uid);
  // Root's own places (its agent, its runtime and cache folders) are no use to the account and
  // would only make restic and ssh warn; an explicit RESTIC_CACHE_DIR is the admin's choice and stays.
  for (const key of ['SSH_AUTH_SOCK', 'XDG_RUNTIME_DIR', 'XDG_CACHE_HOME', 'XDG_CONFIG_HOME', 'XDG_DATA_HOME', 'XDG_STATE_HOME']) delete process.env[key];
  let account = String(uid);
  try {
    const info = userInfo();
    account = info.username;
    // restic's cache and ssh (sftp: repositories) look in the account's home, as when the receiver runs.
    Object.assign(process.env, { HOME: info.homedir, USER: info.username, LOGNAME: info.username });
  } catch {
    delete process.env.HOME;
    Object.assign(process.env, { USER: account, LOGNAME: account });
  }
  logger.debug(`running as ${account} (uid ${uid}), the owner of ${root}`);
  return account;
}

// swappable lives in core (restore uses it too); the admin commands import it from here.
export { swappable };
