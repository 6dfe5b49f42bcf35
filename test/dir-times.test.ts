// Directory mtimes are stored to the nanosecond. rsync compares times to the second unless told
// otherwise, and leaves a directory's time alone when it "matches": a directory changed in the
// same second as its backup was stored with the time rsync made it at, and a restore gave it
// that wrong time. The receiver runs rsync with --modify-window=-1.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, utimesSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startBackupServer, type BackupServer } from './helpers/backup-server.js';
import { tempDir } from './helpers/cli.js';

const NAME = 'dirtimes1';
let server: BackupServer;
let tmp: { dir: string; cleanup: () => Promise<void> };

before(async () => {
  server = await startBackupServer({ recvArgs: ['--name', NAME] });
  tmp = await tempDir('srs-dir-times-');
});
after(async () => {
  await server?.stop();
  await tmp?.cleanup();
});

test('a stored directory whose mtime differs from the client\'s only below the second is set right by the next run', async () => {
  const src = join(tmp.dir, 'src');
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, 'sub', 'f'), 'f\n');
  // The client's directory: a time with nanoseconds, 1.1 s into a second.
  const client = new Date('2024-05-06T07:08:09.100Z');
  utimesSync(join(src, 'sub'), client, client);
  const first = await server.backup(src, ['-n', NAME]);
  assert.equal(first.code, 0, first.stderr);
  const stored = join(server.root, NAME, 'sub');
  assert.equal(lstatSync(stored, { bigint: true }).mtimeNs, lstatSync(join(src, 'sub'), { bigint: true }).mtimeNs);
  // The stored copy drifts within the same second (as one made in the second of its backup does).
  const drifted = new Date('2024-05-06T07:08:09.700Z');
  utimesSync(stored, drifted, drifted);
  const second = await server.backup(src, ['-n', NAME]);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(lstatSync(stored, { bigint: true }).mtimeNs, lstatSync(join(src, 'sub'), { bigint: true }).mtimeNs, 'the directory has the client\'s exact mtime again');
});
