// docs/setup.md is correct (issue 10, item 6): its blocks marked ```sh setup=TOPOLOGIES as=ROLE
// are extracted from the document and run with `bash -e`, in document order, for each topology
// (reverse, pull): installed from the packed tarball into a fresh prefix, a real backup account
// (useradd as the doc says, under a throwaway name), the config by plugin name, the key line and
// Match block that `authorize` printed, against a throwaway sshd; then the final `status` must pass
// and a snapshot must exist. Only the values in SUBSTITUTIONS below differ from what a user types.
// `systemctl` is skipped (no systemd here); the written units go through `systemd-analyze verify`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, runProgram, type RunResult } from './helpers/cli.js';
import { removeThrowawayUser } from './helpers/nonroot-server.js';
import { startSshd, type Sshd } from './helpers/sshd.js';

type Topology = 'reverse' | 'pull';
type Role = 'install' | 'server' | 'client';
interface Block {
  topologies: string[];
  role: Role;
  text: string;
  line: number;
}

const DOC = join(repoRoot, 'docs/setup.md');
const ANALYZE = '/usr/bin/systemd-analyze';

// The marked blocks of the document, their indentation (inside list items) removed.
async function docBlocks(): Promise<Block[]> {
  const lines = (await readFile(DOC, 'utf8')).split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i += 1) {
    const open = /^(\s*)```sh setup=([\w,]+) as=(install|server|client)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j += 1) body.push(lines[j]!.slice(Math.min(indent, lines[j]!.search(/\S|$/))));
    blocks.push({ topologies: open[2]!.split(','), role: open[3] as Role, text: `${body.join('\n')}\n`, line: i + 1 });
    i = j;
  }
  return blocks;
}

interface Context {
  topology: Topology;
  base: string;
  /** The account on the server (ssh-r-sync in the doc), and in pull mode the one on the client. */
  serverAccount: string;
  clientAccount: string;
  tunnelPort: number;
  /** The throwaway sshd's port; starts it on first use (after the doc's server set-up). */
  sshPort: () => Promise<number>;
}

// What the test changes in the doc's commands, in the order applied, and nothing else. A row
// with a function replaces each match with what it returns; `sshPort` starts the throwaway sshd.
function substitutions(c: Context, role: Role): Array<[RegExp, (match: string) => string | Promise<string>]> {
  const account = c.topology === 'pull' && role === 'client' ? c.clientAccount : c.serverAccount;
  const clientSsh = join(c.base, 'client-ssh'); // the client's /root/.ssh
  return [
    // the client dials the throwaway sshd, its host key in the client's known_hosts
    [/(?<=\s)ssh-r-sync@backup\.example\.org(?=\s|$)/g, async () => `-p ${await c.sshPort()} -o UserKnownHostsFile=${clientSsh}/known_hosts ${c.serverAccount}@127.0.0.1`],
    [/(?<=\s)ssh-r-sync@web1\.example\.org(?=\s|$)/g, async () => `${c.clientAccount}@127.0.0.1:${await c.sshPort()}`],
    [/ssh-keyscan -t ed25519 (backup|web1)\.example\.org/g, async () => `ssh-keyscan -p ${await c.sshPort()} -t ed25519 127.0.0.1`],
    // "copy the .pub to the other machine": one machine here
    [/\/root\/laptop\.pub/g, () => `${clientSsh}/ssh-r-sync.pub`],
    [/\/root\/server\.pub/g, () => join(c.base, 'home-server', '.ssh', 'id_ed25519.pub')],
    [/\/root\/\.ssh\b/g, () => clientSsh],
    [/\/root\//g, () => `${c.base}/root/`],
    [/\/var\/lib\/ssh-r-sync\b/g, () => join(c.base, role === 'client' && c.topology === 'pull' ? 'home-client' : 'home-server')],
    [/\/srv\/backup\b/g, () => join(c.base, 'backup')],
    [/\/etc\/ssh-r-sync\b/g, () => join(c.base, 'etc')], // and SSH_R_SYNC_CONFIG_DIR
    [/\/etc\/ssh\/sshd_config\b/g, () => join(c.base, 'sshd_config.added')], // given to the throwaway sshd when it starts
    [/sshd -t && systemctl reload ssh/g, () => ': sshd -t, reload: the test starts its sshd with these lines'],
    [/^systemctl .*$/gm, () => ': systemctl skipped: no systemd here'],
    [/--install\b/g, () => `--install --dir ${join(c.base, 'units')}`],
    [/(?<=\s)(\/home|\/var\/www)(?=\s|$)/gm, () => join(c.base, 'data')],
    [/\b22324\b/g, () => String(c.tunnelPort)],
    [/authorize --name laptop/g, () => `authorize --port ${c.tunnelPort} --name laptop`],
    // the account's name, not the commands (ssh-r-sync-recv, a command's first word) nor paths
    [/(?<![\w./@-])(?<!^[ \t]*)ssh-r-sync(?![\w.-])/gm, () => account],
    // the tarball's directory stays the working directory of the install block
    [/^npm install -g /gm, () => `npm install -g --prefix ${join(c.base, 'prefix')} --prefer-offline --no-audit --no-fund --loglevel=error `],
  ];
}

async function substitute(text: string, c: Context, role: Role, used: Set<number>): Promise<string> {
  let out = text;
  const rows = substitutions(c, role);
  for (const [index, [pattern, replace]] of rows.entries()) {
    const matches = [...out.matchAll(pattern)];
    if (!matches.length) continue;
    used.add(index);
    let result = '';
    let last = 0;
    for (const match of matches) {
      result += out.slice(last, match.index) + (await replace(match[0]));
      last = match.index! + match[0].length;
    }
    out = result + out.slice(last);
  }
  return out;
}

// Runs a script with bash -e in its own process group, killed with it after `timeoutMs`.
function bash(script: string, cwd: string, env: NodeJS.ProcessEnv, timeoutMs = 180_000): Promise<RunResult> {
  return runProgram('bash', ['-e', '-c', script], { cwd, env, timeoutMs });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function uidOf(name: string): number | undefined {
  const result = spawnSync('id', ['-u', name], { encoding: 'utf8' });
  return result.status === 0 ? Number(result.stdout.trim()) : undefined;
}

let packDir: string;
let blocks: Block[];
/** The rows of substitutions() that matched something, over both topologies. */
const used = new Set<number>();

before(async () => {
  blocks = await docBlocks();
  packDir = await mkdtemp(join(tmpdir(), 'srs-setup-pack-'));
  // The test run has just built and bundled (scripts/test.mjs): pack that, as `npm run pack` would.
  const packed = await bash(`exec ${JSON.stringify(process.execPath)} scripts/pack.mjs --no-build --out ${JSON.stringify(packDir)}`, repoRoot, process.env);
  assert.equal(packed.code, 0, packed.stderr);
});
after(() => rm(packDir, { recursive: true, force: true }));

const NAMES: Record<Topology, string> = { reverse: 'laptop', pull: 'web1' };

for (const topology of ['reverse', 'pull'] as const) {
  describe(`docs/setup.md, ${topology} mode`, () => {
    let base: string;
    let sshd: Sshd | undefined;
    const serverAccount = `srs-${randomBytes(4).toString('hex')}`;
    const clientAccount = `srs-${randomBytes(4).toString('hex')}`;

    before(async () => {
      base = await mkdtemp(join(tmpdir(), `srs-setup-${topology}-`));
      await chmod(base, 0o711); // the accounts reach their homes, the prefix and BACKUP_ROOT below it
      for (const sub of ['client-ssh', 'root']) await mkdir(join(base, sub), { mode: 0o700 });
      await mkdir(join(base, 'units'));
      // What is backed up: readable by the pull mode's client account too.
      await mkdir(join(base, 'data', 'sub'), { recursive: true, mode: 0o755 });
      await writeFile(join(base, 'data', 'a.txt'), 'alpha\n', { mode: 0o644 });
      await writeFile(join(base, 'data', 'sub', 'b.txt'), 'beta\n', { mode: 0o644 });
      await chmod(join(base, 'data'), 0o755);
      await chmod(join(base, 'data', 'sub'), 0o755);
    });

    after(async () => {
      await sshd?.stop();
      for (const name of [serverAccount, clientAccount]) {
        const uid = uidOf(name);
        if (uid !== undefined) await removeThrowawayUser({ name, uid, gid: uid, home: '' });
      }
      await rm(base, { recursive: true, force: true });
    });

    test('its commands, run as written, end in a passing status and a snapshot', { timeout: 600_000 }, async () => {
      const mine = blocks.filter((block) => block.topologies.includes(topology));
      assert.ok(mine.some((b) => b.role === 'install') && mine.some((b) => b.role === 'server') && mine.some((b) => b.role === 'client'), `marked blocks for ${topology} in ${DOC}`);
      const context: Context = {
        topology,
        base,
        serverAccount,
        clientAccount,
        tunnelPort: await freePort(),
        sshPort: async () => {
          if (!sshd) {
            // The account the client side logs into: sshd reads its ~/.ssh/authorized_keys.
            const account = topology === 'pull' ? clientAccount : serverAccount;
            const added = existsSync(join(base, 'sshd_config.added')) ? (await readFile(join(base, 'sshd_config.added'), 'utf8')).split('\n') : [];
            sshd = await startSshd({
              user: account,
              dir: join(base, 'sshd'),
              shellStartup: '',
              extraConfig: [`SetEnv SSH_R_SYNC_CONFIG_DIR=${join(base, 'etc')}`, `Match User ${account}`, '    AuthorizedKeysFile %h/.ssh/authorized_keys', ...added],
            });
          }
          return sshd.port;
        },
      };
      const env = { ...process.env, PATH: `${join(base, 'prefix', 'bin')}:${process.env.PATH}`, SSH_R_SYNC_CONFIG_DIR: join(base, 'etc'), NO_COLOR: '1', npm_config_update_notifier: 'false' };
      let lastOutput = '';
      for (const block of mine) {
        const script = await substitute(block.text, context, block.role, used);
        const result = await bash(script, block.role === 'install' ? packDir : base, env);
        lastOutput = result.stdout;
        assert.equal(result.code, 0, `docs/setup.md line ${block.line} (${block.role}) failed:\n${script}\n--- stdout:\n${result.stdout}\n--- stderr:\n${result.stderr}${sshd ? `\n--- sshd:\n${sshd.log()}` : ''}`);
      }
      // The last block is the check at the end: `status` passed (bash -e) and names the host.
      assert.match(lastOutput, new RegExp(`^${NAMES[topology]}\\b`, 'm'), lastOutput);
      const hostDir = join(base, 'backup', NAMES[topology]);
      const snapshots = readdirSync(hostDir).filter((entry) => /^\d{4}-\d\d-\d\dT\d{6}Z$/.test(entry));
      assert.equal(snapshots.length, 1, `one snapshot in ${hostDir}`);
      assert.equal(await readFile(join(hostDir, snapshots[0]!, 'sub', 'b.txt'), 'utf8'), 'beta\n');
      assert.equal(statSync(join(hostDir, snapshots[0]!)).uid, uidOf(serverAccount), 'written by the backup account');
      assert.ok(existsSync(join(hostDir, `${snapshots[0]}.meta`, 'manifest.tsv')), 'the manifest plugin ran, by name from /etc/ssh-r-sync/config.json');
      // The units the doc's `systemd --install` wrote.
      const units = readdirSync(join(base, 'units')).map((unit) => join(base, 'units', unit));
      assert.deepEqual(units.map((unit) => unit.slice(unit.lastIndexOf('/') + 1)).sort(), [`ssh-r-sync-${NAMES[topology]}.service`, `ssh-r-sync-${NAMES[topology]}.timer`, 'ssh-r-sync-status.service', 'ssh-r-sync-status.timer'].sort());
      assert.match(await readFile(join(base, 'units', 'ssh-r-sync-status.service'), 'utf8'), /^ExecStart=\S+ status --report --max-age 36h \S+\/backup$/m);
      if (existsSync(ANALYZE)) {
        const verify = spawnSync(ANALYZE, ['verify', ...units], { encoding: 'utf8', timeout: 30_000 });
        assert.equal(verify.status, 0, `systemd-analyze verify:\n${verify.stdout}${verify.stderr}`);
      }
    });
  });
}

test('every row of the substitution table still matches something in docs/setup.md', () => {
  const rows = substitutions({ topology: 'reverse', base: '/', serverAccount: '', clientAccount: '', tunnelPort: 0, sshPort: async () => 0 }, 'server').length;
  const unused = [...Array(rows).keys()].filter((index) => !used.has(index));
  assert.deepEqual(unused, [], 'rows that match nothing: the doc changed, update the table');
});
