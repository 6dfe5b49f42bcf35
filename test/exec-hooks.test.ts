// Exec hooks through real runs of `ssh-r-sync-recv --local`: argv, stdin, stdout and exit-code
// contracts of every point, ordering, skip vs failure vs timeout, and isolation.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { processesMatching, runRecv, tempDir, writeScript } from './helpers/cli.js';

let dir: string;
let cleanup: () => Promise<void>;
let run = 0;

before(async () => {
  ({ dir, cleanup } = await tempDir('srs-hooks-'));
});
after(() => cleanup());

// A fresh source tree and backup root for one run.
async function fixture() {
  run += 1;
  const base = join(dir, `run${run}`);
  const src = join(base, 'src');
  const root = join(base, 'root');
  await mkdir(join(src, 'sub'), { recursive: true });
  await mkdir(root, { mode: 0o700 }); // a privileged receiver refuses a ROOT others can read
  await writeFile(join(src, 'a.txt'), 'alpha\n');
  await writeFile(join(src, 'sub', 'b.txt'), 'beta\n');
  return { base, src, root, host: join(root, 'host1') };
}

const recv = (f: { src: string; root: string }, ...args: string[]) => runRecv(['--local', f.src, '--name', 'host1', ...args, f.root]);

// A script that records its argv (one per line), stdin and SSH_R_SYNC_* variables into `out`.
function recorder(out: string, extra = ''): string {
  return `printf '%s\\n' "$@" > ${out}.argv\ncat > ${out}.stdin\nenv | grep -E '^(SSH_R_SYNC_|RSYNC_PASSWORD|MY_SECRET_TOKEN)' | sort > ${out}.env\n${extra}`;
}

describe('argv, stdin and environment per point', () => {
  test('each point gets the original argv, context variables and no secrets', async () => {
    const f = await fixture();
    const points = ['connect', 'handshake', 'rsync.pre', 'rsync.post', 'done'];
    const args: string[] = [];
    for (const point of points) args.push('-x', `${point}:${await writeScript(f.base, `${point}.sh`, recorder(join(f.base, point)))}`);
    const result = await runRecv(['--local', f.src, '--name', 'host1', ...args, f.root], {
      env: { RSYNC_PASSWORD: 'hunter2', MY_SECRET_TOKEN: 'xyz' },
    });
    assert.equal(result.code, 0, result.stderr);
    const argv = async (point: string) => (await readFile(join(f.base, `${point}.argv`), 'utf8')).trimEnd().split('\n');
    assert.deepEqual(await argv('connect'), [f.root]);
    assert.deepEqual(await argv('handshake'), [f.root, f.host, 'host1']);
    assert.deepEqual(await argv('rsync.pre'), [f.root, f.host, 'host1', '1']);
    assert.deepEqual(await argv('rsync.post'), [f.root, f.host, 'host1', '0']);
    assert.deepEqual(await argv('done'), [f.root, f.host, 'host1', 'success']);
    const env = await readFile(join(f.base, 'rsync.post.env'), 'utf8');
    assert.match(env, /^SSH_R_SYNC_POINT=rsync\.post$/m);
    assert.match(env, new RegExp(`^SSH_R_SYNC_DIR=${f.host}$`, 'm'));
    assert.match(env, /^SSH_R_SYNC_NAME=host1$/m);
    assert.match(env, /^SSH_R_SYNC_EXIT_CODE=0$/m);
    assert.doesNotMatch(env, /RSYNC_PASSWORD|MY_SECRET_TOKEN/);
    assert.match(await readFile(join(f.base, 'done.env'), 'utf8'), /^SSH_R_SYNC_STATUS=success$/m);
    // connect, handshake and done read /dev/null; rsync.pre reads the options; rsync.post rsync's output.
    assert.equal(await readFile(join(f.base, 'connect.stdin'), 'utf8'), '');
    assert.equal(await readFile(join(f.base, 'done.stdin'), 'utf8'), '');
    const pre = await readFile(join(f.base, 'rsync.pre.stdin'), 'utf8');
    assert.ok(pre.endsWith('\0'), 'rsync.pre stdin is \\0-terminated');
    assert.deepEqual(pre.split('\0').slice(0, -1), ['-HaAXS', '--super', '--numeric-ids', '--modify-window=-1', '--delete', '--delete-excluded', '--stats']);
    assert.match(await readFile(join(f.base, 'rsync.post.stdin'), 'utf8'), /Number of regular files transferred: 2/);
    assert.equal(await readFile(join(f.host, 'sub', 'b.txt'), 'utf8'), 'beta\n');
  });

  test("the original names are aliases: script.start, script.handshake, rsync.done, script.done", async () => {
    const f = await fixture();
    const args: string[] = [];
    for (const alias of ['script.start', 'script.handshake', 'rsync.done', 'script.done']) {
      args.push('-x', `${alias}:${await writeScript(f.base, `${alias}.sh`, `echo ${alias} >> ${f.base}/order`)}`);
    }
    const result = await recv(f, ...args);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await readFile(join(f.base, 'order'), 'utf8'), 'script.start\nscript.handshake\nrsync.done\nscript.done\n');
  });

  test('a bare script name is looked up in PATH', async () => {
    const f = await fixture();
    const bin = join(f.base, 'bin');
    await mkdir(bin);
    await writeScript(bin, 'my-connect-hook', `echo ran > ${f.base}/ran`);
    const result = await runRecv(['--local', f.src, '--name', 'host1', '-x', 'connect:my-connect-hook', f.root], {
      env: { PATH: `${bin}:${process.env.PATH}` },
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await readFile(join(f.base, 'ran'), 'utf8'), 'ran\n');
  });
});

describe('rsync.pre stdout', () => {
  test("an original rsync.pre script that prints --bwlimit=100\\0 adds the option", async () => {
    const f = await fixture();
    const pre = await writeScript(f.base, 'pre.sh', `printf -- '--bwlimit=100\\0'`);
    const result = await recv(f, '--debug', '-x', `rsync.pre:${pre}`);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /"--stats" "--bwlimit=100" "/);
    assert.ok(existsSync(join(f.host, 'a.txt')));
  });

  test('a leading \\0 replaces the defaults, a trailing \\0 adds no empty argument', async () => {
    const f = await fixture();
    // Without -a/-r the defaults are gone: only -d copies the top level without recursing.
    const pre = await writeScript(f.base, 'pre.sh', `printf -- '\\0-d\\0--times\\0'`);
    const result = await recv(f, '--debug', '-x', `rsync.pre:${pre}`);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /running rsync "-d" "--times" "\//);
    assert.ok(existsSync(join(f.host, 'a.txt')));
    assert.deepEqual(await readdir(join(f.host, 'sub')), [], 'sub/ was not recursed into');
  });

  test('several scripts on one point run in the order given, each seeing the previous output', async () => {
    const f = await fixture();
    const one = await writeScript(f.base, 'one.sh', `cat > ${f.base}/one.in; printf -- '--bwlimit=1000\\0'`);
    const two = await writeScript(f.base, 'two.sh', `cat > ${f.base}/two.in; printf -- '--exclude=sub\\0'`);
    const result = await recv(f, '-x', `rsync.pre:${one}`, '-x', `rsync.pre:${two}`);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(await readFile(join(f.base, 'one.in'), 'utf8'), /bwlimit/);
    assert.match(await readFile(join(f.base, 'two.in'), 'utf8'), /--bwlimit=1000\0$/);
    assert.ok(!existsSync(join(f.host, 'sub')), 'the second script excluded sub/');
  });

  test('output without any \\0 is a clear error and nothing is pulled', async () => {
    const f = await fixture();
    const pre = await writeScript(f.base, 'pre.sh', `echo --bwlimit=100`);
    const result = await recv(f, '-x', `rsync.pre:${pre}`);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`error: rsync\\.pre hook "${pre}" failed: stdout must be \\\\0-terminated rsync options, got "--bwlimit=100`));
    assert.ok(!existsSync(join(f.host, 'a.txt')));
  });
});

describe('rsync.post', () => {
  test('an original rsync.done script maps a real exit 24 (vanished file) to 0', async () => {
    const f = await fixture();
    await writeFile(join(f.src, 'a-big'), Buffer.alloc(150 * 1024, 7));
    await writeFile(join(f.src, 'z-vanishes'), 'gone soon\n');
    // The file list is built first; once a-big's slow transfer has begun (its temp file is in DIR,
    // the hook's $2), z-vanishes goes.
    const pre = await writeScript(
      f.base,
      'pre.sh',
      `setsid sh -c 'i=0; while [ $i -lt 400 ] && ! ls -A "$1" | grep -q "^\\.a-big\\."; do i=$((i+1)); sleep 0.05; done; rm -f "$2"' sh "$2" '${f.src}/z-vanishes' </dev/null >/dev/null 2>&1 &\nprintf -- '--bwlimit=100\\0'`,
    );
    const post = await writeScript(f.base, 'post.sh', `cat > ${f.base}/post.in\n[ "$4" = 24 ] && echo 0\nexit 0`);
    const result = await recv(f, '--json', '-x', `rsync.pre:${pre}`, '-x', `rsync.done:${post}`);
    assert.match(await readFile(join(f.base, 'post.in'), 'utf8'), /vanished/);
    assert.equal(result.code, 0, result.stderr);
    const json = JSON.parse(result.stdout);
    assert.equal(json.status, 'success');
    assert.equal(json.rsyncExitCode, 0);
  });

  test('without the mapping the same rsync failure fails the run and shows rsync\'s words', async () => {
    const f = await fixture();
    const pre = await writeScript(f.base, 'pre.sh', `printf -- '${f.base}/does-not-exist\\0'`);
    const result = await recv(f, '-x', `rsync.pre:${pre}`);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^ssh-r-sync-recv: error: some files or attributes were not transferred \(rsync exit 23\): rsync: \[sender\] link_stat ".*\/does-not-exist" failed: No such file or directory \(2\)$/m);
  });

  test('a non-integer stdout is a clear error', async () => {
    const f = await fixture();
    const post = await writeScript(f.base, 'post.sh', 'echo fine');
    const result = await recv(f, '-x', `rsync.post:${post}`);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /rsync\.post hook ".*post\.sh" failed: stdout must be an integer exit code \(0-255\), got "fine/);
  });

  test('rsync.post sees a failed rsync and may turn success into failure', async () => {
    const f = await fixture();
    const post = await writeScript(f.base, 'post.sh', 'echo 5');
    const result = await recv(f, '-x', `rsync.post:${post}`);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /rsync exited with code 5 \(rsync\.post changed 0 to 5\)/);
  });
});

describe('skip, failure and timeout', () => {
  for (const point of ['connect', 'handshake', 'rsync.pre']) {
    test(`exit 75 on ${point} skips the run: exit 75, nothing pulled, done sees "skipped"`, async () => {
      const f = await fixture();
      const hook = await writeScript(f.base, 'skip.sh', 'exit 75');
      const done = await writeScript(f.base, 'done.sh', `echo "$4" > ${f.base}/status`);
      const result = await recv(f, '-x', `${point}:${hook}`, '-x', `done:${done}`);
      assert.equal(result.code, 75, result.stderr);
      assert.match(result.stderr, new RegExp(`skipped: ${point.replace('.', '\\.')} hook ".*skip\\.sh" exited with 75 \\(not now\\)`));
      assert.equal(await readFile(join(f.base, 'status'), 'utf8'), 'skipped\n');
      assert.ok(!existsSync(join(f.host, 'a.txt')));
    });
  }

  test('exit 75 on rsync.post is a failure, not a skip', async () => {
    const f = await fixture();
    const hook = await writeScript(f.base, 'post.sh', 'exit 75');
    const result = await recv(f, '-x', `rsync.post:${hook}`);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /rsync\.post hook ".*post\.sh" failed: exited with code 75/);
  });

  test('a failing script names the point, the script and the exit code; done still runs with "failure"', async () => {
    const f = await fixture();
    const hook = await writeScript(f.base, 'bad.sh', 'echo oops >&2; exit 3');
    const done = await writeScript(f.base, 'done.sh', `echo "$4" > ${f.base}/status`);
    const result = await recv(f, '-x', `handshake:${hook}`, '-x', `done:${done}`);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`error: handshake hook "${hook}" failed: exited with code 3`));
    assert.match(result.stderr, /oops/, "the script's stderr is shown");
    assert.equal(await readFile(join(f.base, 'status'), 'utf8'), 'failure\n');
    assert.ok(!existsSync(join(f.host, 'a.txt')));
  });

  test('a script killed by a signal is reported with the signal', async () => {
    const f = await fixture();
    const hook = await writeScript(f.base, 'die.sh', 'kill -9 $$');
    const result = await recv(f, '-x', `connect:${hook}`);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /connect hook ".*die\.sh" failed: was killed by SIGKILL/);
  });

  test('a missing script is a one-line error naming it', async () => {
    const f = await fixture();
    const result = await recv(f, '-x', `rsync.pre:${f.base}/nope.sh`);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /rsync\.pre hook ".*nope\.sh" failed: cannot run .*nope\.sh: no such file/);
  });

  test('--hook-timeout kills the whole process group and fails the run as a timeout', async () => {
    const f = await fixture();
    const marker = `${(Math.random() * 1000 + 1000).toFixed(3)}`;
    const hook = await writeScript(f.base, 'hang.sh', `sleep ${marker} &\nsleep ${marker}`);
    const started = Date.now();
    const result = await recv(f, '--hook-timeout', '1', '-x', `rsync.pre:${hook}`);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`error: rsync\\.pre hook "${hook}" timed out after 1 s`));
    assert.ok(Date.now() - started < 30_000, 'killed long before the hook would have ended (in 1000+ s)');
    assert.deepEqual(await processesMatching(`sleep ${marker}`), [], 'no sleep left running');
    assert.ok(!existsSync(join(f.host, 'a.txt')));
  });

  test('a background job that still holds the script\'s output is stopped after it exits; one that let go survives', async () => {
    const f = await fixture();
    const held = `${(Math.random() * 1000 + 2000).toFixed(3)}`;
    const detached = `${(Math.random() * 1000 + 4000).toFixed(3)}`;
    const hook = await writeScript(f.base, 'bg.sh', `sleep ${held} &\nsetsid sleep ${detached} </dev/null >/dev/null 2>&1 &\nexit 0`);
    const result = await recv(f, '-x', `connect:${hook}`);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await processesMatching(`sleep ${held}`), []);
    const survivors = await processesMatching(`sleep ${detached}`);
    for (const line of survivors) process.kill(Number(line.split(':')[0]), 'SIGKILL');
    assert.equal(survivors.length, 1, 'the job that redirected its output outlives the hook');
  });

  test('an unknown point is a usage error listing the valid ones', async () => {
    const f = await fixture();
    const result = await recv(f, '-x', 'rsync.prr:/bin/true');
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr.trim(),
      'ssh-r-sync-recv: error: unknown hook point "rsync.prr": valid points are connect, handshake, rsync.pre, rsync, rsync.post, done (aliases: script.start, script.handshake, rsync.done, script.done)',
    );
  });
});

describe("hooks never touch the process's own stdin and stdout", () => {
  test('a hook reading stdin gets nothing of ours; a hook printing does not reach our stdout', async () => {
    const f = await fixture();
    const connect = await writeScript(f.base, 'connect.sh', `cat > ${f.base}/stdin.seen; echo from-connect-hook`);
    const done = await writeScript(f.base, 'done.sh', 'echo from-done-hook');
    const result = await runRecv(['--local', f.src, '--name', 'host1', '--json', '-x', `connect:${connect}`, '-x', `done:${done}`, f.root], {
      input: 'PROTOCOL BYTES THAT BELONG TO THE PEER\n',
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await readFile(join(f.base, 'stdin.seen'), 'utf8'), '');
    assert.equal(result.stdout.trim().split('\n').length, 1, 'stdout holds only the JSON result');
    assert.equal(JSON.parse(result.stdout).status, 'success');
    assert.match(result.stderr, /from-connect-hook/, 'hook stdout is logged on stderr');
    assert.match(result.stderr, /from-done-hook/);
  });
});
