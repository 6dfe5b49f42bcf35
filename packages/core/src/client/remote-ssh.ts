// The client's ssh for a restore or a listing: the same key, options and safe defaults as the
// backup's connection, without the reverse forward, and asking the forced command for one thing.
import { UsageError } from '../errors.js';
import type { Destination } from './destination.js';
import { checkKeyFile } from './preflight.js';
import { DEFAULT_SSH_OPTIONS } from './ssh.js';

export interface RemoteSshOptions {
  destination: Destination;
  identityFile?: string | undefined;
  /** -o/--ssh-option values; ssh keeps the first value of each option, so these win. */
  extraOptions: string[];
  defaults: boolean;
}

// ssh's options (no program, no destination): the user's first, then the defaults; a -k file
// that cannot be read is refused here, before anything runs.
export function remoteSshOptions(options: RemoteSshOptions): string[] {
  const args = ['-T', '-x', '-a'];
  for (const option of options.extraOptions) args.push('-o', option);
  // LogLevel=INFO, as the backup's ssh: at ERROR ssh says only "Host key verification failed."
  // and not whether the key is unknown or changed, which the advice (ssh-advice.ts) tells apart.
  if (options.defaults) for (const option of [...DEFAULT_SSH_OPTIONS, 'ClearAllForwardings=yes', 'LogLevel=INFO']) args.push('-o', option);
  if (options.identityFile) {
    checkKeyFile(options.identityFile);
    args.push('-i', options.identityFile);
  }
  if (options.destination.port) args.push('-p', String(options.destination.port));
  return args;
}

// The host part rsync is given: user@host, an IPv6 literal in brackets.
export function rsyncHost(destination: Destination): string {
  const at = destination.target.lastIndexOf('@');
  const user = at >= 0 ? destination.target.slice(0, at + 1) : '';
  const host = destination.target.slice(at + 1);
  return host.includes(':') ? `${user}[${host}]` : `${user}${host}`;
}

// One rsync -e/--rsh string: rsync splits it on spaces and honours single and double quotes (no
// backslashes), so each word is quoted in a way rsync reads back exactly; a word with both kinds
// of quote cannot be given.
export function rshCommand(words: string[]): string {
  return words
    .map((word) => {
      if (/^[A-Za-z0-9_./:=,+@%-]+$/.test(word)) return word;
      if (!word.includes("'")) return `'${word}'`;
      if (!word.includes('"')) return `"${word}"`;
      throw new UsageError(`cannot pass ${JSON.stringify(word.slice(0, 80))} to ssh through rsync: it contains both kinds of quote`);
    })
    .join(' ');
}
