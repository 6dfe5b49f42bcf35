// `ssh-r-sync-admin authorize`: prints what an administrator pastes to let one key in, and no
// more. Reverse mode (default): the server's authorized_keys line for a client key (`restrict`,
// `port-forwarding`, `permitlisten` pinned to one loopback port, `command=` the receiver with this
// key's --name and --tunnel-port), the sshd `Match User` block, and the client's command line.
// Pull mode (--pull): the client's authorized_keys line for the server's key (`rrsync -ro DIR`)
// and the receiver command to run on the server. Nothing is written anywhere; the existing
// authorized_keys (given, or the account's own) is read so that no two keys get one tunnel port.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { NAME_PATTERN, UsageError } from '@ssh-r-sync/core/internal';
import { collect, port } from './common.js';
import { subCommand, type ExitCodeHolder } from './admin-shared.js';
import { accountAuthorizedKeys, readExistingKeys, type ExistingKeys } from './admin-authorized-keys.js';
import { JSON_SCHEMA } from './format.js';

interface AuthorizeOptions {
  name: string;
  key: string;
  port?: number;
  recv?: string;
  rrsync: string;
  user: string;
  option: string[];
  server: string;
  client: string;
  path: string;
  clientKey: string;
  authorizedKeys?: string;
  root: string;
  pull?: boolean;
  json?: boolean;
}

/** Ports derived from names fall in this range (22000-22999). */
export const PORT_BASE = 22000;
export const PORT_RANGE = 1000;

const KEY_TYPES = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)$/;

// The `authorize` sub-command.
export function authorizeCommand(result: ExitCodeHolder): Command {
  return subCommand(new Command('authorize'))
    .usage('--name NAME --key FILE.pub [options] ROOT\n       ssh-r-sync-admin authorize --pull --name NAME --key FILE.pub [options] DIR')
    .summary("print the authorized_keys line (restrict, permitlisten, command=), the sshd Match block and the client's command")
    .description(
      'Reverse mode (default): print the line for ~USER/.ssh/authorized_keys on the backup server that lets the client key ' +
        'FILE.pub open one reverse tunnel on 127.0.0.1:PORT and nothing else, with the receiver (--name NAME --tunnel-port PORT ROOT) ' +
        'as its forced command; then the sshd_config Match block for the backup account and the command line for the client.\n\n' +
        "Pull mode (--pull): print the line for the client's ~USER/.ssh/authorized_keys that lets the server's key FILE.pub read DIR " +
        'through rrsync -ro and nothing else, and the receiver command to run on the server.',
    )
    .argument('<ROOT_OR_DIR>', 'reverse mode: BACKUP_ROOT on the server; --pull: the directory on the client to back up (absolute)')
    .requiredOption('--name <NAME>', "the host's name (the receiver's --name; the client cannot change it)")
    .requiredOption('--key <FILE.pub>', 'the public key to let in (reverse: the client\'s; --pull: the server\'s)')
    .option('--port <PORT>', `reverse mode: the tunnel port (default: derived from NAME, ${PORT_BASE}-${PORT_BASE + PORT_RANGE - 1})`, port)
    .option('--recv <PATH>', 'reverse mode: the receiver program (default: the installed ssh-r-sync-recv, absolute); several words, e.g. "/usr/bin/node /opt/srs/packages/cli/bin/ssh-r-sync-recv.js", are split on spaces (quote a word with \'…\')')
    .option('--rrsync <PATH>', '--pull: the rrsync program on the client', '/usr/bin/rrsync')
    .option('--user <USER>', 'the account the key logs into (the Match block and the printed commands); not Debian\'s system user backup, which sshd refuses (docs/setup.md)', 'ssh-r-sync')
    .option('--option <OPTION>', 'one more authorized_keys option, e.g. from="192.0.2.0/24" (repeatable)', collect, [])
    .option('--server <HOST>', "reverse mode: the server's host name in the printed client command", 'SERVER')
    .option('--path <PATH>', 'reverse mode: the directory to back up in the printed client command', 'PATH')
    .option('--client-key <FILE>', "reverse mode: the client's private key (-k) in the printed client command", '/root/.ssh/ssh-r-sync')
    .option('--authorized-keys <FILE>', "reverse mode: the server's authorized_keys whose tunnel ports are taken (default: ~USER/.ssh/authorized_keys when it exists; none: do not check)")
    .option('--client <HOST>', "--pull: the client's host name in the printed receiver command", 'CLIENT')
    .option('--root <BACKUP_ROOT>', '--pull: BACKUP_ROOT in the printed receiver command', 'BACKUP_ROOT')
    .option('--pull', 'pull mode: a line for the client that lets the server pull DIR through rrsync -ro')
    .option('--json', 'print one JSON object: { schema, mode, authorizedKeys, sshdMatch, clientCommand | recvCommand, port, portsInUse, checkedFile } (docs/json.md)')
    .addHelpText(
      'after',
      '\nThe default PORT is a hash of NAME into ' +
        `${PORT_BASE}-${PORT_BASE + PORT_RANGE - 1}: stable, but two names can get the same port. Every key on a server needs its own\n` +
        'port (two clients cannot listen on one port at once): authorize reads the existing authorized_keys (--authorized-keys FILE,\n' +
        'else ~USER/.ssh/authorized_keys when it exists) and takes the next free port when the derived one is held by another key\n' +
        '(permitlisten or --tunnel-port); a --port held by another key is refused. The client must use the same --tunnel-port.\n' +
        '\nExamples:\n' +
        '  ssh-r-sync-admin authorize --name laptop --key laptop.pub --json /srv/backup | jq -r .authorizedKeys >> ~backup/.ssh/authorized_keys\n' +
        '  ssh-r-sync-admin authorize --name laptop --key laptop.pub --port 22101 --server backup.example.org --path /home /srv/backup\n' +
        '  ssh-r-sync-admin authorize --pull --name web1 --key /root/.ssh/id_ed25519.pub --client web1.example.org --root /srv/backup /var/www\n' +
        '\nExit codes: 0 printed, 2 usage error (bad name, not a public key, relative path, a quote or newline in a word,\n' +
        'a --port another key holds, an authorized_keys that cannot be read).',
    )
    .action(async (target: string, options: AuthorizeOptions) => {
      result.code = await authorize(target, options);
    });
}

/** The tunnel port derived from a host name: stable, in 22000-22999. */
export function derivedPort(name: string): number {
  return PORT_BASE + (createHash('sha256').update(name).digest().readUInt32BE(0) % PORT_RANGE);
}

async function authorize(target: string, options: AuthorizeOptions): Promise<number> {
  if (!NAME_PATTERN.test(options.name)) throw new UsageError(`invalid --name "${printable(options.name)}": names match ${NAME_PATTERN.source}`);
  if (!isAbsolute(target)) throw new UsageError(`${options.pull ? 'DIR' : 'ROOT'} must be an absolute path, not "${printable(target)}"`);
  for (const [what, value] of [['--user', options.user], ['--server', options.server], ['--client', options.client]] as const) {
    if (!/^[A-Za-z0-9_.@:[\]-]+$/.test(value)) throw new UsageError(`invalid ${what} "${printable(value)}"`);
  }
  const key = await publicKey(options.key);
  const extra = options.option.map(keyOption);
  if (options.pull) return printPull(target, key, extra, options);
  const existing = await existingKeys(options);
  const taken = existing ? existing.uses.filter((use) => use.blob !== key.split(' ')[1]) : [];
  const { port: tunnelPort, note: portNote } = choosePort(options, taken, existing?.file ?? null);
  const recvWords = options.recv === undefined ? [defaultRecv()] : splitWords(options.recv, '--recv');
  const words = [...recvWords, '--name', options.name, '--tunnel-port', String(tunnelPort), target];
  const authorizedKeys = `${['restrict', 'port-forwarding', `permitlisten="127.0.0.1:${tunnelPort}"`, ...extra, `command="${commandString(words)}"`].join(',')} ${key}`;
  const sshdMatch = matchBlock(options.user, 'remote');
  const clientCommand = ['ssh-r-sync', '-k', shellWord(options.clientKey), '--tunnel-port', String(tunnelPort), '-n', options.name, `${options.user}@${options.server}`, shellWord(options.path)].join(' ');
  if (options.json) {
    const portsInUse = [...new Set(taken.map((use) => use.port))].sort((a, b) => a - b);
    process.stdout.write(`${JSON.stringify({ schema: JSON_SCHEMA, mode: 'reverse', authorizedKeys, sshdMatch, clientCommand, port: tunnelPort, portsInUse, checkedFile: existing?.file ?? null })}\n`);
    return 0;
  }
  process.stdout.write(
    `# ~${options.user}/.ssh/authorized_keys on the backup server, one line (tunnel port ${tunnelPort}, ${portNote}):\n` +
      `${authorizedKeys}\n\n` +
      '# /etc/ssh/sshd_config on the backup server (then: sshd -t && systemctl reload ssh):\n' +
      `${sshdMatch}\n` +
      '# On the client (as root to read everything; -k: the private key of this .pub, --client-key):\n' +
      `${clientCommand}\n`,
  );
  return 0;
}

function printPull(dir: string, key: string, extra: string[], options: AuthorizeOptions): number {
  const rrsync = splitWords(options.rrsync, '--rrsync');
  const authorizedKeys = `${['restrict', ...extra, `command="${commandString([...rrsync, '-ro', dir])}"`].join(',')} ${key}`;
  const recvCommand = ['ssh-r-sync-recv', '--pull', `${options.user}@${options.client}`, '--name', options.name, shellWord(options.root)].join(' ');
  const sshdMatch = matchBlock(options.user, 'no');
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ schema: JSON_SCHEMA, mode: 'pull', authorizedKeys, sshdMatch, recvCommand, port: null })}\n`);
    return 0;
  }
  process.stdout.write(
    `# ~${options.user}/.ssh/authorized_keys on the client ${options.client}, one line (read-only access to ${dir} and nothing else):\n` +
      `${authorizedKeys}\n\n` +
      `# /etc/ssh/sshd_config on the client (optional, restrict already turns these off for this key):\n` +
      `${sshdMatch}\n` +
      `# On the backup server, the receiver that pulls (e.g. from a systemd timer):\n` +
      `# ${recvCommand}\n`,
  );
  return 0;
}

// The authorized_keys to check: --authorized-keys FILE (must be readable), none, or the account's
// own when it exists here (authorize may run on another machine than the server).
async function existingKeys(options: AuthorizeOptions): Promise<ExistingKeys | null> {
  if (options.authorizedKeys === 'none') return null;
  if (options.authorizedKeys !== undefined) return readExistingKeys(options.authorizedKeys, false);
  const found = await accountAuthorizedKeys(options.user);
  return found ? readExistingKeys(found, true) : null;
}

// The tunnel port: --port (refused when another key holds it), else the derived one, else the
// next free one after it in the range; with the sentence the printout says about it.
function choosePort(options: AuthorizeOptions, taken: ExistingKeys['uses'], file: string | null): { port: number; note: string } {
  const held = new Map(taken.map((use) => [use.port, use]));
  const checked = file ? `free in ${file}` : 'no authorized_keys found here to check: make sure no other key on the server uses it (--authorized-keys FILE)';
  if (options.port !== undefined) {
    const use = held.get(options.port);
    if (use) {
      throw new UsageError(`--port ${options.port} is already used by another key in ${file} (line ${use.line}${use.name ? `, --name ${use.name}` : ''}): choose another --port, e.g. ${nextFree(options.port, held)}`);
    }
    return { port: options.port, note: `given with --port, ${checked}` };
  }
  const derived = derivedPort(options.name);
  if (!held.has(derived)) return { port: derived, note: `derived from the name "${options.name}", ${checked}` };
  const use = held.get(derived)!;
  const port = nextFree(derived, held);
  return { port, note: `the next free one: ${derived}, derived from the name "${options.name}", is used by line ${use.line}${use.name ? ` (--name ${use.name})` : ''} of ${file}` };
}

// The first port after `from` in the range (wrapping around) that no key holds.
function nextFree(from: number, held: Map<number, unknown>): number {
  for (let step = 1; step <= PORT_RANGE; step += 1) {
    const candidate = PORT_BASE + ((from - PORT_BASE + step + PORT_RANGE) % PORT_RANGE);
    if (!held.has(candidate)) return candidate;
  }
  throw new UsageError(`every tunnel port in ${PORT_BASE}-${PORT_BASE + PORT_RANGE - 1} is used by a key: pass --port outside that range`);
}

// The sshd Match block for the backup account: tunnels only as `forwarding` allows, all else off.
// ClientAlive*: a peer that stops answering (a suspended laptop, a stopped ssh: TCP stays open)
// is dropped after a minute, with its session and its -R port, which a pinned --tunnel-port
// needs free for the next run.
function matchBlock(user: string, forwarding: 'remote' | 'no'): string {
  return [
    `Match User ${user}`,
    `    AllowTcpForwarding ${forwarding}`,
    '    AllowStreamLocalForwarding no',
    '    PermitOpen none',
    '    X11Forwarding no',
    '    AllowAgentForwarding no',
    '    PermitTunnel no',
    '    PermitTTY no',
    '    PermitUserRC no',
    '    PasswordAuthentication no',
    '    ClientAliveInterval 15',
    '    ClientAliveCountMax 4',
    '',
  ].join('\n');
}

// Reads and checks a public key file: one line `TYPE BASE64 [comment]`; returns that line.
async function publicKey(file: string): Promise<string> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read --key ${file}: ${error.code ?? error.message}`);
  });
  if (/PRIVATE KEY/.test(text)) throw new UsageError(`--key ${file} is a private key: give the public key (${file}.pub), and keep the private key where it is`);
  const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '');
  if (lines.length !== 1) throw new UsageError(`--key ${file} must hold exactly one public key line, found ${lines.length} lines`);
  const line = lines[0]!.trim();
  const [type = '', blob = '', ...comment] = line.split(/\s+/);
  if (!KEY_TYPES.test(type)) throw new UsageError(`--key ${file} is not an OpenSSH public key: unknown key type "${printable(type.slice(0, 40))}" (expected ssh-ed25519, ssh-rsa, ecdsa-sha2-…, sk-…)`);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) throw new UsageError(`--key ${file}: the key data is not base64`);
  const decoded = Buffer.from(blob, 'base64');
  const length = decoded.length >= 4 ? decoded.readUInt32BE(0) : -1;
  if (length !== type.length || decoded.subarray(4, 4 + length).toString('latin1') !== type) {
    throw new UsageError(`--key ${file}: the key data does not hold a ${type} key`);
  }
  if (/[\x00-\x1f\x7f]/.test(comment.join(' '))) throw new UsageError(`--key ${file}: control characters in the key's comment`);
  return [type, blob, ...comment].join(' ');
}

// An extra authorized_keys option: `name` or `name="value"`, no newline, no unquoted space.
function keyOption(option: string): string {
  if (!/^[A-Za-z][A-Za-z0-9-]*(="[^"\\\x00-\x1f]*")?$/.test(option)) {
    throw new UsageError(`invalid --option "${printable(option)}": expected NAME or NAME="VALUE" (no quote, backslash or newline in VALUE)`);
  }
  if (/^(command|permitlisten|permitopen)=/i.test(option)) throw new UsageError(`--option ${option.split('=')[0]} is set by this command`);
  return option;
}

// The forced command: sshd runs it through the account's shell, inside "…" in authorized_keys.
// No word may hold a `"`, a backslash or a control character (a usage error, not an escape).
function commandString(words: string[]): string {
  for (const word of words) {
    if (word === '' || /["\\\x00-\x1f\x7f]/.test(word)) throw new UsageError(`cannot put "${printable(word)}" into a forced command: no empty word, quote, backslash or newline allowed`);
  }
  return words.map(shellWord).join(' ');
}

// Quotes a word for sh when it needs it (single quotes; a ' inside becomes '\'').
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_./:=,+@%-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

// Splits an option value into words on spaces; '…' keeps spaces inside one word.
function splitWords(value: string, what: string): string[] {
  const words: string[] = [];
  const pattern = /'([^']*)'|(\S+)/g;
  for (let match = pattern.exec(value); match; match = pattern.exec(value)) words.push(match[1] ?? match[2]!);
  if (!words.length) throw new UsageError(`${what} is empty`);
  if (/'/.test(value.replace(/'[^']*'/g, ''))) throw new UsageError(`${what}: unbalanced ' in "${printable(value)}"`);
  if (!isAbsolute(words[0]!)) throw new UsageError(`${what} must start with an absolute path, not "${printable(words[0]!)}"`);
  return words;
}

// The installed ssh-r-sync-recv: the link npm made to this package's bin/ssh-r-sync-recv.js
// (PREFIX/bin after `npm install -g` of the packed tarball, node_modules/.bin in a checkout),
// else that file itself.
function defaultRecv(): string {
  const packageDir = cliPackageDir();
  const own = join(packageDir, 'bin', 'ssh-r-sync-recv.js');
  const links = [
    join(packageDir, '..', '..', '..', 'bin', 'ssh-r-sync-recv'), // PREFIX/lib/node_modules/ssh-r-sync -> PREFIX/bin
    join(packageDir, '..', '..', 'node_modules', '.bin', 'ssh-r-sync-recv'),
    join(packageDir, '..', '..', '.bin', 'ssh-r-sync-recv'),
  ];
  for (const candidate of links) {
    if (existsSync(candidate) && sameFile(candidate, own)) return candidate;
  }
  return own;
}

function sameFile(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

// The directory of the commands' package: @ssh-r-sync/cli in a checkout, ssh-r-sync when
// installed from the packed tarball (this file is in dist/ or dist/bundle/ of it).
function cliPackageDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i += 1) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (manifest.name === '@ssh-r-sync/cli' || manifest.name === 'ssh-r-sync') return dir;
    } catch {
      // not here
    }
    dir = dirname(dir);
  }
  throw new UsageError('cannot find the installed ssh-r-sync-recv: give --recv PATH');
}

function printable(text: string): string {
  return JSON.stringify(text).slice(1, -1);
}
