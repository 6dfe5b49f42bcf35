// The receiver decides who the client is (SPEC §4 rule 1): `--name` in the key's forced
// command, or the config's map from key fingerprint to name (sshd's ExposeAuthInfo).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { SshRSyncError } from '../../errors.js';
import { validateName } from '../../storage/host-dir.js';

// OpenSSH's SHA256 fingerprint of a public key line's base64 blob.
export function fingerprint(blob: string): string {
  return `SHA256:${createHash('sha256').update(Buffer.from(blob, 'base64')).digest('base64').replace(/=+$/, '')}`;
}

// The fingerprints of the keys this session authenticated with, from sshd's SSH_USER_AUTH file.
export function authenticatedFingerprints(authFile: string | undefined): string[] {
  if (!authFile) return [];
  let text: string;
  try {
    text = readFileSync(authFile, 'utf8').slice(0, 65536);
  } catch {
    return [];
  }
  return text
    .split('\n')
    .map((line) => line.split(' '))
    .filter((words) => words[0] === 'publickey' && words[2])
    .map((words) => fingerprint(words[2]!));
}

export interface NameSources {
  name?: string | undefined;
  names?: Record<string, string> | undefined;
  authFile?: string | undefined;
}

// The host's name from the receiver's side; never from what the client says.
export function receiverName(sources: NameSources): string {
  if (sources.name) return validateName(sources.name);
  const map = sources.names ?? {};
  for (const print of authenticatedFingerprints(sources.authFile)) {
    const name = map[print];
    if (name) return validateName(name);
  }
  const why = Object.keys(map).length
    ? sources.authFile
      ? "this key's fingerprint is not in the config's names map"
      : 'sshd did not expose the key (set ExposeAuthInfo yes) for the names map'
    : 'no --name in the forced command and no names map in the config';
  // The receiver's set-up lacks the name (a configuration error, exit 2), whatever the client sent.
  throw new SshRSyncError('ECONFIG', `cannot tell which host this is: ${why}`);
}
