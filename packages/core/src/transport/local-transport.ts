// The pipeline without ssh: rsync pulls from a local directory. Tests and plugin authors use it.
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { SshRSyncError } from '../errors.js';
import type { Endpoint, Peer, Transport } from './transport.js';

export interface LocalTransportOptions {
  source: string;
  name: string;
  oneFileSystem?: boolean;
}

// A transport whose source is a directory on this machine.
export function localTransport(options: LocalTransportOptions): Transport {
  const source = resolve(options.source);
  return {
    kind: 'local',
    async handshake(): Promise<Peer> {
      const info = await stat(source).catch(() => null);
      if (!info?.isDirectory()) throw new SshRSyncError('EUSAGE', `source ${source} is not a directory`);
      return { name: options.name, oneFileSystem: options.oneFileSystem ?? false, fakeSuper: false };
    },
    async start() {
      return undefined;
    },
    async endpoint(): Promise<Endpoint> {
      return { source: `${source}/`, transportArgs: [], env: {}, compress: false };
    },
    async report() {},
    async finish() {},
  };
}
