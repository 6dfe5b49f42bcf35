// The name the client asks for: --name-rpi, --name-file, -n, or the node name, in that order.
// It is only a hint: the receiver decides, and refuses a mismatch.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { UsageError } from '../errors.js';
import { validateName } from '../storage/host-dir.js';

export interface NameOptions {
  name?: string | undefined;
  nameFile?: string | undefined;
  nameRpi?: boolean | undefined;
  cpuinfo?: string;
}

// Turns arbitrary text (a DMI serial, a board id) into a name that passes the receiver's rule.
export function sanitizeName(text: string): string {
  const cleaned = text
    .trim()
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[._-]+/, '')
    .slice(0, 64);
  return cleaned;
}

// Works out the client's name, refusing one the receiver could never accept.
export function clientName(options: NameOptions): string {
  if (options.nameRpi) {
    const cpuinfo = readText(options.cpuinfo ?? '/proc/cpuinfo', '--name-rpi');
    const serial = /^Serial\s*:\s*([0-9a-fA-F]+)\s*$/m.exec(cpuinfo)?.[1];
    if (!serial) throw new UsageError('--name-rpi: no "Serial" line in /proc/cpuinfo (not a Raspberry Pi?)');
    return validateName(serial);
  }
  if (options.nameFile) {
    const name = sanitizeName(readText(options.nameFile, '--name-file'));
    if (!name) throw new UsageError(`--name-file ${options.nameFile}: nothing usable as a name in it`);
    return validateName(name);
  }
  const name = options.name ?? hostname().split('.')[0] ?? '';
  try {
    return validateName(name);
  } catch {
    throw new UsageError(`invalid name ${JSON.stringify(name.slice(0, 80))}: names match ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ (use -n NAME)`);
  }
}

function readText(path: string, option: string): string {
  try {
    return readFileSync(path, 'utf8').slice(0, 4096);
  } catch (error) {
    throw new UsageError(`${option}: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}
