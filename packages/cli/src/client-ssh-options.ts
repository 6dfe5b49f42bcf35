// The client's ssh options, shared by the backup's command line and its restore and snapshots
// sub-commands: the same key, port and -o values reach the server the same way.
import type { Command } from 'commander';
import { collect, port } from './common.js';

export interface SshCliOptions {
  port?: number;
  sshKey?: string;
  sshOption: string[];
  sshOpts: boolean;
}

// Adds -p, -k, -o and --no-ssh-opts to a command.
export function addSshOptions(command: Command): Command {
  return command
    .option('-p, --port <PORT>', 'ssh port of the server', port)
    .option('-k, --ssh-key <FILE>', 'ssh private key to use (ssh -i)')
    .option('-o, --ssh-option <OPTION>', 'extra ssh option, as for ssh -o (repeatable)', collect, [])
    .option('--no-ssh-opts', "drop the default ssh options (BatchMode, keepalives, no multiplexing, ConnectTimeout, …)");
}
