// Reads an existing authorized_keys for `authorize`: which tunnel ports its keys already hold
// (permitlisten="…:P" and a receiver's --tunnel-port P in command="…"), so that a new key never
// gets a port another key uses. Read-only, bounded; the file is the administrator's, but a line
// we cannot read is skipped, never fatal (sshd skips it too).
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { UsageError } from '@ssh-r-sync/core/internal';
import { runBounded } from './bounded-run.js';

/** authorized_keys files beyond this are refused (sshd has no limit; a real one is a few KiB). */
export const MAX_AUTHORIZED_KEYS_BYTES = 4 * 1024 * 1024;

export interface PortUse {
  port: number;
  /** 1-based line number in the file. */
  line: number;
  /** The receiver's --name in that line's command="…", if any. */
  name: string | null;
  /** The key's base64 blob (to tell the same key being authorized again). */
  blob: string;
}

export interface ExistingKeys {
  file: string;
  uses: PortUse[];
}

const KEY_TYPE = /^(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)(-cert-v01@openssh\.com)?$/;

// The tunnel ports the lines of an authorized_keys text hold, with their line numbers.
export function portUses(text: string): PortUse[] {
  const uses: PortUse[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const parsed = splitLine(line);
    if (!parsed) return;
    const ports = new Set<number>();
    let name: string | null = null;
    for (const option of parsed.options) {
      const [key = '', value] = splitOption(option);
      if (key.toLowerCase() === 'permitlisten' && value !== undefined) {
        const port = /(?:^|:)(\d{1,5})$/.exec(value)?.[1];
        if (port) ports.add(Number(port));
      } else if (key.toLowerCase() === 'command' && value !== undefined) {
        const words = value.split(/\s+/).map((word) => word.replace(/^'(.*)'$/, '$1'));
        words.forEach((word, i) => {
          const inline = /^--tunnel-port=(\d{1,5})$/.exec(word)?.[1];
          const port = inline ?? (word === '--tunnel-port' && /^\d{1,5}$/.test(words[i + 1] ?? '') ? words[i + 1] : undefined);
          if (port) ports.add(Number(port));
          const inlineName = /^--name=(.+)$/.exec(word)?.[1];
          if (inlineName) name = inlineName;
          else if ((word === '--name' || word === '-n') && words[i + 1]) name = words[i + 1]!;
        });
      }
    }
    for (const port of ports) if (port >= 1 && port <= 65535) uses.push({ port, line: index + 1, name, blob: parsed.blob });
  });
  return uses;
}

// Splits `[options] TYPE BLOB [comment]`; options are comma-separated, values "…" with \" inside.
function splitLine(line: string): { options: string[]; blob: string } | null {
  const first = /^\S+/.exec(line)![0];
  if (KEY_TYPE.test(first)) return { options: [], blob: line.split(/\s+/)[1] ?? '' };
  const options: string[] = [];
  let current = '';
  let quoted = false;
  let i = 0;
  for (; i < line.length; i += 1) {
    const c = line[i]!;
    if (quoted && c === '\\' && line[i + 1] === '"') {
      current += '"';
      i += 1;
    } else if (c === '"') quoted = !quoted;
    else if (!quoted && c === ',') {
      options.push(current);
      current = '';
    } else if (!quoted && /\s/.test(c)) break;
    else current += c;
  }
  if (quoted) return null;
  options.push(current);
  const [, blob = ''] = line.slice(i).trim().split(/\s+/);
  return { options, blob };
}

function splitOption(option: string): [string, string | undefined] {
  const at = option.indexOf('=');
  return at < 0 ? [option, undefined] : [option.slice(0, at), option.slice(at + 1)];
}

// Reads FILE (bounded); null when it does not exist and `missingOk`.
export async function readExistingKeys(file: string, missingOk: boolean): Promise<ExistingKeys | null> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (missingOk && code === 'ENOENT') return null;
    const what = missingOk ? `${code === 'EACCES' ? 'run as root or as the backup account, or ' : ''}give --authorized-keys FILE` : 'check the path';
    throw new UsageError(`cannot read authorized_keys ${file} (${code ?? oneWord(error)}): ${what}, or --authorized-keys none to skip the check`, { cause: error });
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new UsageError(`authorized_keys ${file} is not a regular file`);
    const buffer = Buffer.alloc(Math.min(info.size, MAX_AUTHORIZED_KEYS_BYTES) + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_AUTHORIZED_KEYS_BYTES) throw new UsageError(`authorized_keys ${file} is larger than ${MAX_AUTHORIZED_KEYS_BYTES} bytes: not an authorized_keys file?`);
    return { file, uses: portUses(buffer.subarray(0, bytesRead).toString('utf8')) };
  } finally {
    await handle.close();
  }
}

// The account's ~/.ssh/authorized_keys (home from getent, else /etc/passwd); null when the
// account is unknown here (authorize may run elsewhere than the server).
export async function accountAuthorizedKeys(user: string): Promise<string | null> {
  const home = await homeOf(user);
  return home ? join(home, '.ssh', 'authorized_keys') : null;
}

async function homeOf(user: string): Promise<string | null> {
  const result = await runBounded('getent', ['passwd', user], { timeoutMs: 5000, maxBytes: 4096 });
  let entry = result.exitCode === 0 ? result.stdout.split('\n')[0] : undefined;
  if (result.missing) {
    const passwd = await readExistingPasswd();
    entry = passwd.split('\n').find((line) => line.startsWith(`${user}:`));
  }
  const home = entry?.split(':')[5];
  return home && home.startsWith('/') ? home : null;
}

async function readExistingPasswd(): Promise<string> {
  const handle = await open('/etc/passwd', 'r').catch(() => null);
  if (!handle) return '';
  try {
    const buffer = Buffer.alloc(MAX_AUTHORIZED_KEYS_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
}

function oneWord(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0]! : String(error);
}
