// `ssh-r-sync`: the client. Serves PATH read-only through a reverse tunnel to the receiver.
import { Command } from 'commander';
import { UsageError } from '@ssh-r-sync/core';
import { configureProgram, runMain } from './common.js';

const PREFIX = 'ssh-r-sync';

// The client's command line.
export function clientProgram(): Command {
  const program = new Command(PREFIX)
    .usage('[options] [user@]host[:port] PATH')
    .description('Back up PATH to a backup server: open one outgoing ssh connection and let the server pull, read-only.')
    .argument('<destination>', '[user@]host[:port] of the backup server')
    .argument('<PATH>', 'directory to back up');
  return configureProgram(program, PREFIX);
}

// Parses argv and runs the client; resolves to the exit code.
export async function client(argv: string[]): Promise<number> {
  const program = clientProgram();
  program.parse(argv, { from: 'user' });
  throw new UsageError('the client is not implemented yet');
}

// Entry point of the bin script.
export function main(): Promise<never> {
  return runMain(PREFIX, () => client(process.argv.slice(2)));
}
