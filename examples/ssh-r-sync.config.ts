// Receiver config, found as ./ssh-r-sync.config.ts from the working directory (the backup
// account's home for a forced command) or named with --config. Checked against one schema:
// a typo is a one-line error, not a silent default.
import bandwidth from './plugin-bandwidth.ts';

export default {
  // "privileged" (rsync --super, needs root), "fake-super" (ownership and devices kept in xattrs)
  // or "plain". A client can ask for less, never for more.
  mode: 'fake-super',
  // Every hook, scripts and plugins alike, is killed (with its process group) after this long.
  hookTimeout: 600,
  // Wait up to a minute for another run of the same host to end before refusing.
  lockWait: 60,
  // Names by key fingerprint (needs `ExposeAuthInfo yes` in sshd_config); --name in the key's
  // forced command takes precedence.
  names: {
    'SHA256:2lM1Tz8N1rV1mZ0H4+qk9cP8fYb3ZP6u2tL0d1a5bKc': 'laptop',
  },
  hooks: {
    'rsync.post': ['../hooks/rsync-post-ignore-vanished'],
    done: ['../hooks/done-log'],
  },
  plugins: [bandwidth({ kbps: 20000 })],
};
