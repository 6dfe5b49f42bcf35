// `ssh-r-sync snapshots`: this host's complete snapshots on the backup server (date, size, entries,
// verify state), asked of the same key's forced command.
import { Command } from 'commander';
import { createLogger, escapeText, remoteSnapshots, type ListedSnapshot, type SnapshotListing } from '@ssh-r-sync/core/internal';
import { addSshOptions, type SshCliOptions } from './client-ssh-options.js';
import { configureProgram, positiveSeconds } from './common.js';
import { JSON_SCHEMA, formatBytes, plural } from './format.js';

const PREFIX = 'ssh-r-sync';

interface SnapshotsCliOptions extends SshCliOptions {
  json?: boolean;
  timeout?: number;
  debug?: boolean;
}

// The snapshots sub-command's command line.
export function snapshotsProgram(): Command {
  const program = new Command(`${PREFIX} snapshots`)
    .usage('[options] [user@]host[:port]')
    .description(
      "List this machine's complete backups on the backup server, oldest first: id, when it was taken, its storage mode, " +
        'how many entries its manifest lists, what that run transferred, and the last verify. The server names the host by the key.',
    )
    .argument('<destination>', '[user@]host[:port] of the backup server, as for the backup');
  addSshOptions(program)
    .option('--json', 'print the list as one JSON object on stdout: { version, host, kind, snapshots: [...] }')
    .option('--timeout <SECONDS>', 'give up when the server has not answered after this long (default 60)', positiveSeconds)
    .option('--debug', 'log every step')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  ssh-r-sync snapshots -k /etc/ssh-r-sync/key backup.example.org\n' +
        '  ssh-r-sync snapshots -k KEY --json backup.example.org | jq -r \'.snapshots[-1].id\'\n' +
        '\nTRANSFERRED is what rsync sent in that run (the change), not the snapshot\'s size. VERIFY is the result of the\n' +
        'last `ssh-r-sync-admin verify` on the server ("never" when it was not verified).\n' +
        '\nExit codes: 0 listed (also when there is none yet), 1 the server could not be asked or refused, 2 usage error.',
    );
  return configureProgram(program, PREFIX);
}

// Parses argv (after "snapshots") and lists; resolves to the exit code.
export async function snapshots(argv: string[]): Promise<number> {
  const program = snapshotsProgram();
  program.parse(argv, { from: 'user' });
  const options = program.opts<SnapshotsCliOptions>();
  const [destination] = program.args as [string];
  const logger = createLogger({ prefix: PREFIX, debug: Boolean(options.debug) });
  const listing = await remoteSnapshots({
    destination,
    port: options.port,
    identityFile: options.sshKey,
    sshOptions: options.sshOption,
    sshDefaults: options.sshOpts,
    timeoutMs: Math.round((options.timeout ?? 60) * 1000),
    logger,
  });
  process.stdout.write(options.json ? `${JSON.stringify({ schema: JSON_SCHEMA, ...listing })}\n` : table(listing));
  if (!listing.snapshots.length) process.stderr.write(`${PREFIX}: ${listing.host} has no complete backup on this server yet\n`);
  return 0;
}

function table(listing: SnapshotListing): string {
  const rows = listing.snapshots.map((s) => [s.id || '(mirror)', s.startedAt.replace(/\.\d{3}Z$/, 'Z'), s.mode ?? '-', count(s.entries), bytes(s.bytes), verified(s)]);
  const header = ['ID', 'STARTED', 'MODE', 'ENTRIES', 'TRANSFERRED', 'VERIFY'];
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  const lines = all.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  return `${escapeText(`host ${listing.host}`)}\n${lines.join('\n')}\n`;
}

function verified(s: ListedSnapshot): string {
  if (!s.verify) return 'never verified';
  // As verify records it: --data rereads every file, --sample PCT a share of them, neither: metadata only.
  const how = s.verify.data ? 'data' : s.verify.sample !== null ? `sample ${s.verify.sample}%` : 'metadata';
  const result = s.verify.ok ? 'ok' : plural(s.verify.problems, 'problem');
  return `${result} (${how}, ${s.verify.at.replace(/\.\d{3}Z$/, 'Z')})`;
}

function count(value: number | null): string {
  return value === null ? '-' : String(value);
}

// The table's TRANSFERRED column: human units on a terminal, exact in a pipe.
function bytes(value: number | null): string {
  return value === null ? '-' : formatBytes(value, process.stdout);
}
