// What a client may ask of its key's forced command (SSH_ORIGINAL_COMMAND): nothing (the backup),
// the list of its snapshots, or one restore in the exact shape `ssh-r-sync restore` sends. The
// rsync request is not filtered but rebuilt: each letter and option is checked against a short
// allow-list of read-only ones, and the server later builds its own argv from what passed.
import { UsageError } from '../errors.js';
import { decodeSpec, type RestoreSpec } from './spec.js';

/** Longest request accepted; a restore of many paths can be split into several. */
export const MAX_REQUEST_BYTES = 65536;
/** Most paths one restore may name. */
export const MAX_SPECS = 256;
/** The listing request, as `ssh-r-sync snapshots` sends it. */
export const SNAPSHOTS_REQUEST = 'ssh-r-sync snapshots --json';

/**
 * rsync's short options a restore may carry, each read-only on the sending side: n dry-run,
 * v verbose, l links (sent as links), H hard links, o g owner group, D devices and specials
 * (their numbers are sent, nothing is opened), t times, p perms, A ACLs, X xattrs, r recursive,
 * R relative, S sparse. Everything else (L k K copy-links, s secluded args, M remote options, e a
 * shell, …) is refused.
 */
const LETTERS = new Set('nvlHogDtpAXrRS');
/** rsync's capability flags after -e. (protocol features, not options). */
const CAPABILITIES = /^\.[A-Za-z]{0,32}$/;

export type ServeRequest =
  | { kind: 'backup' }
  | { kind: 'snapshots' }
  | {
      kind: 'restore';
      /** The short options that passed, without the dash. */
      letters: string;
      /** The capability string that followed -e (e.g. ".iLsfxCIvu"), or ''. */
      capabilities: string;
      numericIds: boolean;
      /** What the client's rsync asked for: one snapshot, the whole tree or some paths. */
      snapshot: string;
      paths: string[] | null;
    };

function refused(why: string): UsageError {
  return new UsageError(`refused: ${why}`);
}

function show(word: string): string {
  return JSON.stringify(word.length > 60 ? `${word.slice(0, 60)}…` : word);
}

// Reads SSH_ORIGINAL_COMMAND; throws a one-line usage error ("refused: …") for anything else.
export function parseRequest(command: string | undefined): ServeRequest {
  if (command === undefined || command === '') return { kind: 'backup' };
  if (Buffer.byteLength(command) > MAX_REQUEST_BYTES) throw refused(`the requested command is longer than ${MAX_REQUEST_BYTES} bytes (restore fewer --path at a time)`);
  if (command === SNAPSHOTS_REQUEST) return { kind: 'snapshots' };
  const words = command.split(' ');
  if (words[0] !== 'rsync') {
    throw refused(`this key runs backups, \`ssh-r-sync snapshots\` and \`ssh-r-sync restore\` only, not ${show(words[0] ?? '')}`);
  }
  if (words[1] !== '--server') throw refused('not an rsync server command (rsync --server …)');
  if (words[2] !== '--sender') throw refused('only restores are served: the request would write to the server (rsync --server without --sender)');
  let letters = '';
  let capabilities = '';
  let numericIds = false;
  let index = 3;
  for (; index < words.length && words[index] !== '.'; index += 1) {
    const word = words[index]!;
    if (!word.startsWith('-')) break; // a path before the "." that ends the options
    if (word === '--numeric-ids') numericIds = true;
    else if (/^--timeout=\d{1,9}$/.test(word)) {
      // The server sets its own --timeout.
    } else if (/^-[^-]/.test(word) && index === 3) {
      for (let i = 1; i < word.length; i += 1) {
        const letter = word[i]!;
        if (letter === 'e' && CAPABILITIES.test(word.slice(i + 1))) {
          capabilities = word.slice(i + 1);
          break;
        }
        if (!LETTERS.has(letter)) throw refused(`rsync option -${letter === 'e' ? 'e (a remote shell)' : letter} is not allowed in a restore`);
        letters += letter;
      }
    } else throw refused(`rsync option ${show(word)} is not allowed in a restore`);
  }
  if (words[index] !== '.') throw refused('not the rsync command line `ssh-r-sync restore` sends');
  if (letters === '') throw refused('not the rsync command line `ssh-r-sync restore` sends (no short options)');
  const args = words.slice(index + 1);
  if (args.length === 0) throw refused('the restore names nothing to send');
  if (args.length > MAX_SPECS) throw refused(`a restore names at most ${MAX_SPECS} paths`);
  const specs: RestoreSpec[] = args.map(decodeSpec);
  const snapshot = specs[0]!.snapshot;
  if (specs.some((spec) => spec.snapshot !== snapshot)) throw refused('one restore reads one snapshot');
  const whole = specs.some((spec) => spec.path === null);
  if (whole && specs.length > 1) throw refused('the whole snapshot and single paths in one restore');
  return { kind: 'restore', letters, capabilities, numericIds, snapshot, paths: whole ? null : specs.map((spec) => spec.path!) };
}
