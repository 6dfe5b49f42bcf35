// What the pipeline needs from a way of reaching the data: a local directory, the reverse
// tunnel, or a pull through rrsync. The pipeline calls these in stage order.
import type { Outcome, RsyncConnection, RunContext, Skip } from '../pipeline/context.js';
import type { RsyncProgress } from '../rsync/progress.js';

/** Who the peer turned out to be. The receiver decides the name; the rest are hints. */
export interface Peer {
  name: string;
  oneFileSystem: boolean;
  /** The client asked for fake-super; it may lower privileges, never raise them. */
  fakeSuper: boolean;
}

/** Where rsync pulls from, and what it needs to get there. */
export interface Endpoint {
  source: string;
  transportArgs: string[];
  env: Record<string, string>;
  /** Over a network: worth compressing. */
  compress: boolean;
  /** What rsync's --rsh program expects as its fd 3, if anything (see RsyncCommand). */
  connection?: RsyncConnection;
  /** Where rsync's progress goes when the peer follows it (the client asked); absent: nobody does. */
  progress?: (event: RsyncProgress) => void;
}

export interface Transport {
  readonly kind: string;
  /** After `connect`: greet the peer, prove the tunnel, learn who it is. */
  handshake(ctx: RunContext): Promise<Peer>;
  /** After `handshake`: wait until the peer's own pre-work is done; a Skip means "not now". */
  start(ctx: RunContext): Promise<Skip | undefined>;
  /** Before `rsync.pre`: the rsync source. */
  endpoint(ctx: RunContext): Promise<Endpoint>;
  /** The outcome is known: tell the peer, before `done` hooks run. */
  report(outcome: Outcome, ctx: RunContext): Promise<void>;
  /** After `done`: the final word to the peer, and cleanup. */
  finish(outcome: Outcome, ctx: RunContext): Promise<void>;
}
