// plugin-notify through real receiver runs (`ssh-r-sync-recv --local`, and one through sshd):
// a local HTTP server on 127.0.0.1 records what healthchecks.io and a webhook would receive;
// start and success pings with the log tail, /fail for a failed run, /log for a skip, the
// webhook's JSON, the command's stdin and environment, per-host URLs, a server that is down or
// hangs (the backup still succeeds, the failure is logged once with the URL redacted and
// counted), and the status timer's stale-host failure, sent once per episode.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostStatus, readHostRecord, type Logger, type StatusReport } from '@ssh-r-sync/core';
import notify, { readNotifyState, EVENT_SCHEMA, type NotifyEvent } from '@ssh-r-sync/plugin-notify';
import { processesMatching, repoRoot, runNode, runRecv, tempDir, writeScript } from './helpers/cli.js';
import { startBackupServer } from './helpers/backup-server.js';
import { startNotifyReceiver, type NotifyReceiver } from './notify-receiver.js';

// Secret-looking parts of the URLs: none may appear in any log line or record.
const UUID = '0b1e7c6a-5d2f-4c9d-9e8f-5a6b7c8d9e0f';
const TOKEN = 'tok-9f8e7d6c5b4a3921';
const ENV_SECRET = 'env-secret-5c4b3a29';

let tmp: Awaited<ReturnType<typeof tempDir>>;
let http: NotifyReceiver;
let src: string;
/** An rsync that is also asked for a source that does not exist: real rsync fails with exit 23. */
let failingRsync: string[];
before(async () => {
  tmp = await tempDir('srs-notify-');
  http = await startNotifyReceiver();
  src = join(tmp.dir, 'src');
  await mkdir(join(src, 'sub'), { recursive: true });
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  await writeFile(join(src, 'sub', 'b.txt'), 'beta\n');
  const wrapper = await writeScript(tmp.dir, 'rsync-missing-source', '#!/bin/bash\nexec rsync "${@:1:$#-1}" /no-such-source "${@: -1}"\n');
  failingRsync = ['--rsync', wrapper];
});
after(async () => {
  await http?.close();
  await tmp?.cleanup();
});

let fixtures = 0;
// A fresh ROOT and a receiver config with plugin-link-dest and plugin-notify's `options`.
async function fixture(options: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const base = join(tmp.dir, `f${++fixtures}`);
  const root = join(base, 'root');
  await mkdir(root, { recursive: true, mode: 0o700 });
  const config = join(base, 'ssh-r-sync.config.json');
  await writeFile(config, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-notify', options]], ...extra }));
  const run = (name = 'host1', source = src, args: string[] = []) =>
    runRecv(['--config', config, '--local', source, '--name', name, ...args, root], { cwd: base, env: { SRS_NOTIFY_TOKEN: ENV_SECRET } });
  return { base, root, config, run };
}

const hc = (prefix: string) => `${http.base}/${prefix}/${UUID}/{host}`;
const noSecrets = (text: string, where: string) => {
  assert.ok(!text.includes(UUID), `${where} shows the healthchecks UUID: ${text}`);
  assert.ok(!text.includes(TOKEN), `${where} shows the webhook token: ${text}`);
};

describe('pings for real runs', () => {
  test('a good run: /start, then the success ping with the log tail, paired by rid; nothing secret in the log', async () => {
    http.clear();
    const f = await fixture({ healthchecks: hc('ok') });
    const r = await f.run('host1', src, ['--debug']);
    assert.equal(r.code, 0, r.stderr);
    const pings = http.at('/ok/');
    assert.deepEqual(pings.map((p) => `${p.method} ${p.path}`), [`POST /ok/${UUID}/host1/start`, `POST /ok/${UUID}/host1`]);
    const [start, done] = pings as [typeof pings[0], typeof pings[0]];
    assert.match(start.query.get('rid') ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(done.query.get('rid'), start.query.get('rid'));
    assert.match(done.headers['content-type'] ?? '', /^text\/plain/);
    assert.match(done.body, /^host1: success \(exit 0\) after \d+\.\d s/);
    assert.match(done.body, /snapshot \d{4}-\d\d-\d\dT\d{6}Z \(complete\)/);
    assert.match(done.body, /rsync exit 0, 2 files, 11 bytes/);
    assert.match(r.stderr, /notify\]: host1: success sent to healthchecks http:\/\/127\.0\.0\.1:\d+\/…/);
    noSecrets(r.stderr, 'the receiver\'s stderr');
    const state = await readNotifyState(f.root, 'host1');
    assert.equal(state.failures, 0);
    assert.equal(state.lastDelivered?.status, 'success');
  });

  test('a failed run: /start, then /fail with rsync\'s error lines; the client still gets its failure (exit 1)', async () => {
    http.clear();
    const f = await fixture({ healthchecks: hc('bad') });
    const r = await f.run('host1', src, failingRsync);
    assert.equal(r.code, 1, r.stderr);
    const pings = http.at('/bad/');
    assert.deepEqual(pings.map((p) => p.path), [`/bad/${UUID}/host1/start`, `/bad/${UUID}/host1/fail`]);
    const body = pings[1]!.body;
    assert.match(body, /^host1: failure \(exit 1\)/);
    assert.match(body, /rsync exit 23/);
    assert.match(body, /^rsync: \[sender\] link_stat "\/no-such-source" failed: No such file or directory/m);
    assert.match(body, /^rsync error: some files\/attrs were not transferred/m);
    noSecrets(r.stderr, 'the receiver\'s stderr');
    // logBytes bounds the body: its end is kept, whole lines, marked as cut.
    const small = await fixture({ healthchecks: hc('small'), logBytes: 160 });
    assert.equal((await small.run('host1', src, failingRsync)).code, 1);
    const cut = http.at(`/small/${UUID}/host1/fail`)[0]!.body;
    assert.ok(Buffer.byteLength(cut) <= 160, cut);
    assert.match(cut, /^…\(earlier lines cut\)\nrsync error: some files\/attrs were not transferred .*\n$/);
  });

  test('a skipped run (an rsync.pre hook exits 75): /start, then /log with the reason — neither success nor failure', async () => {
    http.clear();
    const scripts = join(tmp.dir, 'scripts');
    await mkdir(scripts, { recursive: true });
    const notNow = await writeScript(scripts, 'not-now', 'echo on battery >&2\nexit 75\n');
    const f = await fixture({ healthchecks: hc('skip') }, { hooks: { 'rsync.pre': notNow } });
    const r = await f.run();
    assert.equal(r.code, 75, r.stderr);
    const pings = http.at('/skip/');
    assert.deepEqual(pings.map((p) => p.path), [`/skip/${UUID}/host1/start`, `/skip/${UUID}/host1/log`]);
    assert.match(pings[1]!.body, /^host1: skipped \(exit 75\)/);
  });

  test('the webhook gets the outcome as JSON (schema 1), the command the same on stdin, with no secret in its environment', async () => {
    http.clear();
    const out = join(tmp.dir, 'command-out');
    await mkdir(out, { recursive: true });
    const command = await writeScript(out, 'record', `n=$(ls '${out}' | grep -c json)\ncat > '${out}'/event-$n.json\nenv > '${out}'/env-$n.txt\nprintf '%s\\n' "$@" > '${out}'/argv-$n.txt\n`);
    const f = await fixture({ webhook: `${http.base}/hook/{host}?token=${TOKEN}`, command: [command, 'one arg', '$(not a shell)'] });
    const r = await f.run('host1', src, ['--debug']);
    assert.equal(r.code, 0, r.stderr);
    const posts = http.at('/hook/');
    assert.equal(posts.length, 2);
    for (const post of posts) {
      assert.equal(post.method, 'POST');
      assert.equal(post.headers['content-type'], 'application/json');
      assert.equal(post.query.get('token'), TOKEN);
    }
    const [start, end] = posts.map((p) => JSON.parse(p.body) as NotifyEvent) as [NotifyEvent, NotifyEvent];
    assert.equal(start.status, 'started');
    assert.equal(start.host, 'host1');
    assert.deepEqual(Object.keys(end).sort(), ['at', 'committed', 'durationMs', 'exitCode', 'host', 'log', 'message', 'report', 'rsync', 'schema', 'snapshot', 'source', 'startedAt', 'status']);
    assert.equal(end.schema, EVENT_SCHEMA);
    assert.equal(end.source, 'run');
    assert.equal(end.status, 'success');
    assert.equal(end.exitCode, 0);
    assert.equal(end.committed, true);
    assert.match(end.snapshot ?? '', /^\d{4}-\d\d-\d\dT\d{6}Z$/);
    assert.equal(end.startedAt, start.startedAt);
    assert.equal(typeof end.durationMs, 'number');
    assert.equal(end.rsync?.exitCode, 0);
    assert.equal(end.rsync?.files, 2);
    assert.equal(end.rsync?.bytes, 11);
    assert.equal(end.report, null);
    // The command: the same two events, argv as given (no shell), an environment without secrets.
    const events = [0, 1].map((n) => readFile(join(out, `event-${n}.json`), 'utf8').then((text) => JSON.parse(text) as NotifyEvent));
    const [cmdStart, cmdEnd] = await Promise.all(events);
    assert.equal(cmdStart!.status, 'started');
    assert.deepEqual({ ...cmdEnd!, at: end.at }, end);
    assert.equal(await readFile(join(out, 'argv-1.txt'), 'utf8'), 'one arg\n$(not a shell)\n');
    const env = await readFile(join(out, 'env-1.txt'), 'utf8');
    assert.ok(!env.includes(ENV_SECRET), `the command's environment holds the receiver's secret: ${env}`);
    assert.match(env, /^SSH_R_SYNC_STATUS=success$/m);
    assert.match(env, /^SSH_R_SYNC_NAME=host1$/m);
    noSecrets(r.stderr, 'the receiver\'s stderr');
  });

  test('per-host settings override the top level; {host} is the host\'s name; null turns one off', async () => {
    http.clear();
    const f = await fixture({
      healthchecks: hc('top'),
      webhook: `${http.base}/top-hook/{host}`,
      hosts: { 'host.two': { healthchecks: `${http.base}/own/{host}/${UUID}` }, host3: { webhook: null } },
    });
    for (const name of ['host1', 'host.two', 'host3']) assert.equal((await f.run(name)).code, 0);
    assert.deepEqual(http.at('/top/').map((p) => p.path), [`/top/${UUID}/host1/start`, `/top/${UUID}/host1`, `/top/${UUID}/host3/start`, `/top/${UUID}/host3`]);
    assert.deepEqual(http.at('/own/').map((p) => p.path), [`/own/host.two/${UUID}/start`, `/own/host.two/${UUID}`]);
    assert.deepEqual(http.at('/top-hook/').map((p) => p.path), ['/top-hook/host1', '/top-hook/host1', '/top-hook/host.two', '/top-hook/host.two']);
  });
});

describe('when notifications cannot be delivered', () => {
  test('a server answering 500: retried, then given up; the backup exits 0, one redacted line per event, counted', async () => {
    http.clear();
    http.answer('/down/', 500);
    const f = await fixture({ healthchecks: hc('down'), retries: 2, timeout: 5 });
    const r = await f.run('host1', src, ['--debug']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(http.at(`/down/${UUID}/host1/start`).length, 3);
    assert.equal(http.at(`/down/${UUID}/host1`).filter((p) => p.path.endsWith('/host1')).length, 3);
    const lines = r.stderr.split('\n').filter((line) => line.includes('could not send'));
    // The start's failure while the session runs (the client sees it too); the end's after it, as
    // core reports failed after-session work: once, and kept in the host's record for status.
    assert.deepEqual(
      lines.map((line) => line.replace(/:\d+\//, ':PORT/')),
      [
        'ssh-r-sync-recv[notify]: warn: host1: could not send the started notification to healthchecks http://127.0.0.1:PORT/…: answered HTTP 500 (3 attempts) (the backup is not affected)',
        'ssh-r-sync-recv: error: after the backup, notify failed: could not send the success notification to healthchecks http://127.0.0.1:PORT/…: answered HTTP 500 (3 attempts) (the backup itself is complete)',
      ],
    );
    const task = (await readHostRecord(f.root, 'host1'))?.afterSession?.tasks.find((t) => t.name === 'notify');
    assert.equal(task?.outcome, 'failed');
    assert.match(task?.error ?? '', /^could not send the success notification to healthchecks http:\/\/127\.0\.0\.1:\d+\/…: answered HTTP 500/);
    noSecrets(r.stderr, 'the receiver\'s stderr');
    const state = await readNotifyState(f.root, 'host1');
    assert.equal(state.failures, 2);
    assert.equal(state.lastFailure?.channel, 'healthchecks');
    assert.equal(state.lastFailure?.error, 'answered HTTP 500 (3 attempts)');
    noSecrets(await readFile(join(f.root, '.ssh-r-sync', 'notify', 'host1.json'), 'utf8'), 'the notify record');
    noSecrets(await readFile(join(f.root, '.ssh-r-sync', 'log', 'host1.log'), 'utf8'), 'the run log');
  });

  test('a 4xx is final (one attempt); a hung server and a refused port are bounded; a failing command too', async () => {
    http.clear();
    http.answer('/gone/', 404);
    http.answer('/hung/', 'hang');
    const refused = await startNotifyReceiver();
    const refusedUrl = `${refused.base}/x/${UUID}`;
    await refused.close();
    const scripts = join(tmp.dir, 'failing');
    await mkdir(scripts, { recursive: true });
    const failing = await writeScript(scripts, 'fails', 'cat >/dev/null\nexit 3\n');
    const f = await fixture({
      healthchecks: hc('gone'),
      hosts: { host2: { healthchecks: `${http.base}/hung/${UUID}`, webhook: `${refusedUrl}?token=${TOKEN}`, command: [failing] } },
      retries: 1,
      timeout: 1,
    });
    const r1 = await f.run('host1', src, failingRsync);
    assert.equal(r1.code, 1, r1.stderr); // rsync's failure, not the notifications'
    assert.deepEqual(http.at('/gone/').map((p) => p.path), [`/gone/${UUID}/host1/start`, `/gone/${UUID}/host1/fail`]);
    // A failed run's end goes after the session too (the client does not wait for it): core reports its failure.
    assert.match(r1.stderr, /after the run, notify failed: could not send the failure notification to healthchecks http:\/\/127\.0\.0\.1:\d+\/…: answered HTTP 404 \(the run's outcome stands\)/);
    const running = f.run('host2');
    // While a request hangs, no process on the machine carries the URL's secret in its argv.
    await http.waitFor('/hung/', 1);
    assert.deepEqual(await processesMatching(UUID), []);
    const r2 = await running;
    assert.equal(r2.code, 0, r2.stderr);
    assert.match(r2.stderr, /could not send the success notification to healthchecks http:\/\/127\.0\.0\.1:\d+\/…: no answer within 1 s \(2 attempts\)/);
    assert.match(r2.stderr, /could not send the success notification to webhook http:\/\/127\.0\.0\.1:\d+\/…: cannot reach the server: ECONNREFUSED \(2 attempts\)/);
    assert.match(r2.stderr, /could not send the success notification to the command ".*fails": exited with code 3/);
    noSecrets(r1.stderr + r2.stderr, 'the receiver\'s stderr');
    assert.equal((await readNotifyState(f.root, 'host2')).failures, 6);
  });

  test('a bad option stops the receiver before anything runs (exit 2), without repeating the URL', async () => {
    const f = await fixture({ healthchecks: `ftp://${UUID}@example.org/` });
    const r = await f.run();
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /@ssh-r-sync\/plugin-notify: the top level: healthchecks must be an http:\/\/ or https:\/\/ URL/);
    noSecrets(r.stderr, 'the error');
    const g = await fixture({ healthcheck: hc('x') });
    assert.match((await g.run()).stderr, /unknown option "healthcheck"/);
  });
});

describe('the status timer (dead man\'s switch)', () => {
  const lines: string[] = [];
  const logger: Logger = {
    debug: (m) => lines.push(`debug: ${m}`),
    info: (m) => lines.push(m),
    warn: (m) => lines.push(`warn: ${m}`),
    error: (m) => lines.push(`error: ${m}`),
    scope: () => logger,
  };
  const DAY = 86_400_000;
  const DAY_S = 86_400;
  const reportAt = async (root: string, now: Date, maxAgeSeconds: number): Promise<StatusReport> => {
    const status = await hostStatus(root, 'host1', { now, maxAgeMs: maxAgeSeconds * 1000 });
    return { root, at: now.toISOString(), hosts: [{ ...status, maxAgeSeconds }] };
  };

  test('a stale host gets one failure ping, webhook and command event per episode; fresh again: nothing sent, and the next episode is sent', async () => {
    http.clear();
    const out = join(tmp.dir, 'status-out');
    await mkdir(out, { recursive: true });
    const command = await writeScript(out, 'record', `cat >> '${out}/events.jsonl'\n`);
    const options = { healthchecks: hc('dead'), webhook: `${http.base}/dead-hook/{host}`, command: [command] };
    const f = await fixture(options);
    assert.equal((await f.run()).code, 0);
    http.clear();
    const plugin = notify(options);
    const later = new Date(Date.now() + 3 * DAY);
    const stale = await reportAt(f.root, later, DAY_S);
    assert.equal(stale.hosts[0]!.stale, true);
    await plugin.status!(stale, logger);
    await plugin.status!(await reportAt(f.root, new Date(later.getTime() + 3_600_000), DAY_S), logger); // the next hour: same episode
    const pings = http.at('/dead/');
    assert.deepEqual(pings.map((p) => p.path), [`/dead/${UUID}/host1/fail`]);
    assert.equal(pings[0]!.query.get('rid'), null);
    assert.match(pings[0]!.body, /^host1: the newest complete backup \(\S+\) is 3d old, more than --max-age 24h \(status at /);
    const hook = JSON.parse(http.at('/dead-hook/')[0]!.body) as NotifyEvent;
    assert.equal(http.at('/dead-hook/').length, 1);
    assert.equal(hook.source, 'status');
    assert.equal(hook.status, 'failure');
    assert.equal(hook.exitCode, null);
    assert.equal(hook.report?.maxAgeSeconds, 86400);
    assert.match(hook.report?.problem ?? '', /is 3d old/);
    // The command got the run's start and success, then this one status event.
    const commandEvents = (await readFile(join(out, 'events.jsonl'), 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as NotifyEvent);
    assert.deepEqual(commandEvents.map((e) => `${e.source} ${e.status}`), ['run started', 'run success', 'status failure']);
    assert.ok(lines.some((line) => /host1: still stale, already reported at /.test(line)), lines.join('\n'));
    // Fresh again (a longer max age here): nothing is sent, and the episode is over …
    await plugin.status!(await reportAt(f.root, later, 7 * DAY_S), logger);
    assert.equal(http.at('/dead/').length, 1);
    assert.equal((await readNotifyState(f.root, 'host1')).staleSent, null);
    // … so the next time it is stale, it is sent again.
    await plugin.status!(stale, logger);
    assert.deepEqual(http.at('/dead/').map((p) => p.path), [`/dead/${UUID}/host1/fail`, `/dead/${UUID}/host1/fail`]);
  });

  test('a stale report that could not be delivered is tried again by the next timer, and status fails (exit 1) meanwhile', async () => {
    http.clear();
    const options = { healthchecks: hc('dead2'), retries: 0 };
    const f = await fixture(options);
    assert.equal((await f.run()).code, 0);
    http.answer('/dead2/', 503);
    const plugin = notify(options);
    const stale = await reportAt(f.root, new Date(Date.now() + 3 * DAY), DAY_S);
    await assert.rejects(plugin.status!(stale, logger), /1 stale-host notification could not be delivered/);
    http.answer('/dead2/', 200);
    await plugin.status!(stale, logger);
    await plugin.status!(stale, logger);
    // One refused, one delivered, then nothing: the episode was reported.
    assert.equal(http.at(`/dead2/${UUID}/host1/fail`).length, 2);
    assert.equal((await readNotifyState(f.root, 'host1')).failures, 1);
  });
});

describe('the status timer\'s own command', () => {
  test('ssh-r-sync-admin status --report: a host past its max age gets one /fail; the next hour nothing more; no secret on stderr', async () => {
    http.clear();
    const f = await fixture({ healthchecks: hc('timer') });
    assert.equal((await f.run()).code, 0);
    http.clear();
    const admin = (now: Date) =>
      runNode(join(repoRoot, 'packages/cli/bin/ssh-r-sync-admin.js'), ['status', '--report', '--debug', '--config', f.config, '--max-age', '1d', '--now', now.toISOString(), f.root]);
    const later = Date.now() + 3 * 86_400_000;
    const first = await admin(new Date(later));
    assert.equal(first.code, 1, first.stderr); // stale: the timer's unit fails too
    assert.match(first.stderr, /host1: the newest complete backup \(\S+\) is 3d old, more than --max-age 24h/);
    assert.doesNotMatch(first.stderr, /could not report/);
    const second = await admin(new Date(later + 3_600_000));
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, /notify\]: host1: still stale, already reported at /);
    assert.deepEqual(http.at('/timer/').map((p) => `${p.method} ${p.path}`), [`POST /timer/${UUID}/host1/fail`]);
    assert.match(http.at('/timer/')[0]!.body, /^host1: the newest complete backup .* is 3d old/);
    noSecrets(first.stderr + second.stderr, 'status --report\'s stderr');
  });
});

describe('through sshd (reverse mode)', () => {
  test('the forced command\'s run sends /start and, after the session, the success ping', async () => {
    http.clear();
    const base = join(tmp.dir, 'reverse');
    await mkdir(base, { recursive: true });
    const config = join(base, 'recv.json');
    await writeFile(config, JSON.stringify({ plugins: ['@ssh-r-sync/plugin-link-dest', ['@ssh-r-sync/plugin-notify', { healthchecks: hc('rev') }]] }));
    const server = await startBackupServer({ recvArgs: ['--name', 'host1', '--config', config] });
    try {
      const r = await server.backup(src, ['-n', 'host1']);
      assert.equal(r.code, 0, r.stderr);
      const pings = await http.waitFor('/rev/', 2);
      assert.deepEqual(pings.map((p) => p.path), [`/rev/${UUID}/host1/start`, `/rev/${UUID}/host1`]);
      assert.match(pings[1]!.body, /^host1: success \(exit 0\)/);
      noSecrets(r.stderr, 'the client\'s output');
      // Loaded on the client by mistake: one line that says where it belongs, nothing sent, nothing
      // written into the tree being backed up.
      http.clear();
      const clientConfig = join(base, 'client.json');
      await writeFile(clientConfig, JSON.stringify({ plugins: [['@ssh-r-sync/plugin-notify', { healthchecks: hc('client') }]] }));
      const c = await server.backup(src, ['-n', 'host1', '--config', clientConfig]);
      assert.equal(c.code, 0, c.stderr);
      assert.match(c.stderr, /notify\]: warn: @ssh-r-sync\/plugin-notify belongs in the receiver's config \(ssh-r-sync-recv\): on the client it sends nothing/);
      await http.waitFor('/rev/', 2);
      assert.deepEqual(http.at('/client/'), []);
      assert.equal(existsSync(join(src, '.ssh-r-sync')), false);
    } finally {
      await server.stop();
    }
  });
});
