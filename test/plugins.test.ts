// TS plugins and the config file, through real runs: loading (.ts at run time, npm names
// from the config's folder), tapping, ordering with scripts, timeout and error attribution,
// and --hook-list.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runRecv, tempDir, writeScript } from './helpers/cli.js';

let dir: string;
let cleanup: () => Promise<void>;
let run = 0;

before(async () => {
  ({ dir, cleanup } = await tempDir('srs-plugins-'));
});
after(() => cleanup());

async function fixture() {
  run += 1;
  const base = join(dir, `run${run}`);
  const src = join(base, 'src');
  const root = join(base, 'root');
  await mkdir(src, { recursive: true });
  await mkdir(root, { mode: 0o700 }); // a privileged receiver refuses a ROOT others can read
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  return { base, src, root, host: join(root, 'host1') };
}

// A TypeScript plugin that appends "<label> <point>" lines to `log` on every point.
function tracingPlugin(label: string, log: string, extra = ''): string {
  return `
import type { PipelineHooks } from '@ssh-r-sync/core';
import { appendFileSync } from 'node:fs';
enum Marker { Label = ${JSON.stringify(label)} }
const note = (point: string): void => appendFileSync(${JSON.stringify(log)}, Marker.Label + ' ' + point + '\\n');
export default function tracing(options: { suffix?: string } = {}) {
  return {
    name: Marker.Label + (options.suffix ?? ''),
    apply(hooks: PipelineHooks) {
      hooks.connect.tapPromise(Marker.Label, async () => { note('connect'); return undefined; });
      hooks.handshake.tap(Marker.Label, () => { note('handshake'); return undefined; });
      hooks.rsyncPre.tapPromise(Marker.Label, async (command) => { note('rsync.pre'); command.args.push('--exclude=excluded-by-plugin'); return undefined; });
      hooks.rsyncPost.tapPromise(Marker.Label, async (result) => { note('rsync.post ' + result.exitCode); return result; });
      hooks.done.tapPromise(Marker.Label, async (outcome) => { note('done ' + outcome.status); });
      ${extra}
    },
  };
}
`;
}

describe('TS plugins', () => {
  test('a .ts plugin given with --plugin loads at run time and taps every point; it runs between scripts in the order given', async () => {
    const f = await fixture();
    const log = join(f.base, 'log');
    await writeFile(join(f.src, 'excluded-by-plugin'), 'x');
    await writeFile(join(f.base, 'trace.ts'), tracingPlugin('trace', log));
    const script = await writeScript(f.base, 'script.sh', `echo "script $SSH_R_SYNC_POINT" >> ${log}`);
    const configHooks = { hooks: { connect: script } };
    await writeFile(join(f.base, 'ssh-r-sync.config.json'), JSON.stringify(configHooks));
    const result = await runRecv(
      ['--local', f.src, '--name', 'host1', '--plugin', './trace.ts', '-x', `connect:${script}`, '-x', `done:${script}`, f.root],
      { cwd: f.base },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      await readFile(log, 'utf8'),
      ['script connect', 'trace connect', 'script connect', 'trace handshake', 'trace rsync.pre', 'trace rsync.post 0', 'trace done success', 'script done', ''].join('\n'),
    );
    assert.ok(existsSync(join(f.host, 'a.txt')));
    assert.ok(!existsSync(join(f.host, 'excluded-by-plugin')), "the plugin's rsync option took effect");
  });

  test('a config file found by cosmiconfig (.ts through jiti) loads plugins by path and by npm name relative to itself', async () => {
    const f = await fixture();
    const log = join(f.base, 'log');
    const configDir = join(f.base, 'etc');
    await mkdir(join(configDir, 'node_modules', 'ssh-r-sync-plugin-demo'), { recursive: true });
    await writeFile(
      join(configDir, 'node_modules', 'ssh-r-sync-plugin-demo', 'package.json'),
      JSON.stringify({ name: 'ssh-r-sync-plugin-demo', type: 'module', exports: { '.': { import: './main.js' } } }),
    );
    await writeFile(
      join(configDir, 'node_modules', 'ssh-r-sync-plugin-demo', 'main.js'),
      `import { appendFileSync } from 'node:fs';
export default (options) => ({ name: 'demo', apply(hooks) { hooks.handshake.tapPromise('demo', async (ctx) => { appendFileSync(${JSON.stringify(log)}, 'demo ' + options.greeting + ' ' + ctx.name + '\\n'); }); } });`,
    );
    await writeFile(join(configDir, 'local.ts'), tracingPlugin('local', log));
    await writeFile(
      join(configDir, 'ssh-r-sync.config.ts'),
      `const config: { plugins: unknown[]; hookTimeout: number } = { plugins: ['./local.ts', ['ssh-r-sync-plugin-demo', { greeting: 'hi' }]], hookTimeout: 30 };\nexport default config;\n`,
    );
    // Found by search from the cwd…
    const searched = await runRecv(['--local', f.src, '--name', 'host1', f.root], { cwd: configDir });
    assert.equal(searched.code, 0, searched.stderr);
    // …and named with --config from elsewhere: npm names still resolve from the config's folder.
    const named = await runRecv(['--local', f.src, '--name', 'host1', '--config', join(configDir, 'ssh-r-sync.config.ts'), f.root], { cwd: f.base });
    assert.equal(named.code, 0, named.stderr);
    const lines = (await readFile(log, 'utf8')).split('\n');
    assert.equal(lines.filter((line) => line === 'demo hi host1').length, 2);
    assert.deepEqual(lines.slice(0, 3), ['local connect', 'local handshake', 'demo hi host1']);
  });

  test('a plugin tap that throws fails the run with the point and the plugin named', async () => {
    const f = await fixture();
    await writeFile(join(f.base, 'boom.ts'), tracingPlugin('boom', join(f.base, 'log'), `hooks.handshake.tapPromise('boom', async () => { throw new Error('disk on fire'); });`));
    const done = await writeScript(f.base, 'done.sh', `echo "$4" > ${f.base}/status`);
    const result = await runRecv(['--local', f.src, '--name', 'host1', '--plugin', join(f.base, 'boom.ts'), '-x', `done:${done}`, f.root]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^ssh-r-sync-recv: error: handshake hook "boom" failed: disk on fire$/m);
    assert.equal(await readFile(join(f.base, 'status'), 'utf8'), 'failure\n');
    assert.ok(!existsSync(join(f.host, 'a.txt')));
  });

  test('a plugin tap may skip the run', async () => {
    const f = await fixture();
    await writeFile(
      join(f.base, 'skipper.mjs'),
      `export default { name: 'skipper', apply(hooks) { hooks.rsyncPre.tapPromise('skipper', async () => ({ skip: true, reason: 'battery low' })); } };`,
    );
    const result = await runRecv(['--local', f.src, '--name', 'host1', '--plugin', join(f.base, 'skipper.mjs'), f.root]);
    assert.equal(result.code, 75, result.stderr);
    assert.match(result.stderr, /skipped: battery low/);
    assert.ok(!existsSync(join(f.host, 'a.txt')));
  });

  test('a plugin tap gets the same --hook-timeout as scripts', async () => {
    const f = await fixture();
    await writeFile(
      join(f.base, 'slow.mjs'),
      `export default { name: 'slow', apply(hooks) { hooks.connect.tapPromise('slow', () => new Promise(() => {})); } };`,
    );
    const started = Date.now();
    const result = await runRecv(['--local', f.src, '--name', 'host1', '--hook-timeout', '0.5', '--plugin', join(f.base, 'slow.mjs'), f.root]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /error: connect hook "slow" timed out after 0\.5 s/);
    assert.ok(Date.now() - started < 30_000, 'ended by the timeout (the tap never settles)');
  });

  test('a plugin may replace the rsync runner', async () => {
    const f = await fixture();
    await writeFile(
      join(f.base, 'runner.mjs'),
      `import { writeFileSync } from 'node:fs';
export default { name: 'runner', apply(hooks) { hooks.rsync.tapPromise('runner', async (command) => { writeFileSync(command.destination + 'made-by-runner', command.source); return { exitCode: 0, originalExitCode: 0, signal: null, output: '', files: 7, bytes: 42, durationMs: 1 }; }); } };`,
    );
    const result = await runRecv(['--local', f.src, '--name', 'host1', '--json', '--plugin', join(f.base, 'runner.mjs'), f.root]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await readFile(join(f.host, 'made-by-runner'), 'utf8'), `${f.src}/`);
    assert.ok(!existsSync(join(f.host, 'a.txt')), 'the built-in rsync did not run');
    assert.equal(JSON.parse(result.stdout).files, 7);
  });

  test('a bad plugin or config is a one-line configuration error (exit 2)', async () => {
    const f = await fixture();
    await writeFile(join(f.base, 'shapeless.mjs'), 'export default { hello: 1 };');
    const shapeless = await runRecv(['--local', f.src, '--name', 'host1', '--plugin', join(f.base, 'shapeless.mjs'), f.root]);
    assert.equal(shapeless.code, 2);
    assert.match(shapeless.stderr, /^ssh-r-sync-recv: error: cannot load plugin ".*shapeless\.mjs" \(from .*\): its default export must export \{ name, apply\(hooks\) \} or a function returning one$/m);
    const missing = await runRecv(['--local', f.src, '--name', 'host1', '--plugin', 'ssh-r-sync-plugin-nowhere', f.root]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /package "ssh-r-sync-plugin-nowhere" is not installed in node_modules of .*: npm install ssh-r-sync-plugin-nowhere in /);
    await writeFile(join(f.base, 'bad.json'), JSON.stringify({ hookTimeout: 'soon' }));
    const bad = await runRecv(['--local', f.src, '--name', 'host1', '--config', join(f.base, 'bad.json'), f.root]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /error: invalid config .*bad\.json: hookTimeout: /);
    await writeFile(join(f.base, 'typo.json'), JSON.stringify({ hook: {} }));
    const typo = await runRecv(['--local', f.src, '--name', 'host1', '--config', join(f.base, 'typo.json'), f.root]);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /invalid config .*typo\.json: .*hook/);
  });
});

describe('--hook-list', () => {
  test('prints every point with its contracts, on stdout, exit 0', async () => {
    const result = await runRecv(['--hook-list']);
    assert.equal(result.code, 0, result.stderr);
    for (const point of ['connect', 'handshake', 'rsync.pre', 'rsync', 'rsync.post', 'done']) {
      assert.match(result.stdout, new RegExp(`^${point.replace('.', '\\.')}\\b`, 'm'));
    }
    assert.match(result.stdout, /^rsync\.pre\n {4}when: {4}right before rsync starts\n {4}argv: {4}ROOT DIR NAME PRIVILEGED\(0\/1\)/m);
    assert.match(result.stdout, /alias: rsync\.done/);
    assert.match(result.stdout, /a leading \\0 replaces the defaults/);
    assert.match(result.stdout, /one integer that replaces rsync's exit code/);
  });

  test('lists the taps the config and plugins register, in run order', async () => {
    const f = await fixture();
    await writeFile(join(f.base, 'trace.ts'), tracingPlugin('trace', join(f.base, 'log')));
    const script = await writeScript(f.base, 'pre.sh', 'exit 0');
    await writeFile(join(f.base, '.ssh-r-syncrc.json'), JSON.stringify({ hooks: { 'rsync.pre': [script] }, plugins: ['./trace.ts'] }));
    const result = await runRecv(['--hook-list', '-x', `rsync.pre:${script}`], { cwd: f.base });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^  rsync\\.pre {3}1\\. script ${script} {3}2\\. plugin trace {3}3\\. script ${script}$`, 'm'));
    assert.match(result.stdout, /^  connect {5}1\. plugin trace$/m);
    assert.match(result.stdout, /^  rsync {7}\(none\)$/m);
    // No test run happened: nothing was written by the plugin.
    assert.ok(!existsSync(join(f.base, 'log')));
  });
});

describe('examples/', () => {
  test('the example config loads with its scripts and plugin, and the example plugin limits bandwidth', async () => {
    const f = await fixture();
    const list = await runRecv(['--config', 'examples/ssh-r-sync.config.ts', '--hook-list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^ {2}rsync\.pre {3}1\. plugin bandwidth$/m);
    assert.match(list.stdout, /^ {2}rsync\.post {2}1\. script .*\/hooks\/rsync-post-ignore-vanished$/m);
    const run = await runRecv(['--local', f.src, '--name', 'host1', '--debug', '--plugin', 'examples/plugin-bandwidth.ts', f.root]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /"--bwlimit=1000"/);
  });
});
