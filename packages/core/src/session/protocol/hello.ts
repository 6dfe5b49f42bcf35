// The receiver's first message. The real receiver writes nothing but messages on its stdout, so a
// line before its hello that is not a message comes from whatever ran before it: almost always the
// backup user's login shell (sshd runs the forced command with `$SHELL -c`, and a ~/.bashrc that
// prints when not interactive puts its text on the channel).
import { SshRSyncError } from '../../errors.js';
import type { MessageChannel } from './channel.js';
import { GarbageError } from './codec.js';
import type { HelloMessage, ResultMessage } from './messages.js';
import { quote } from './text.js';

// Where the hello starts when shell text without a newline ran into it.
const HELLO_START = '{"v":';

// Awaits the hello (or the result of a receiver that refused before greeting: its connect hook
// failed or skipped); text instead of it gets an error that names the server's shell and the fix.
export async function receiveHello(channel: MessageChannel, timeoutMs: number): Promise<HelloMessage | ResultMessage> {
  try {
    return await channel.receive(['hello', 'result'], { timeoutMs, waitingFor: "the receiver's hello" });
  } catch (error) {
    if (!(error instanceof GarbageError)) throw error;
    const cut = error.text.indexOf(HELLO_START);
    const printed = cut > 0 ? error.text.slice(0, cut) : error.text;
    throw new SshRSyncError(
      'EPROTOCOL',
      `the server's shell printed ${quote(printed)} before ssh-r-sync-recv started: make non-interactive logins quiet (e.g. ~/.bashrc of the backup user)`,
      { cause: error },
    );
  }
}
