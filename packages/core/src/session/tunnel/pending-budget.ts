// A bounded set of unproven tunnel connections from one kind of peer. When it is full, a new
// connection drops the oldest one instead of being refused: the receiver answers our opener
// within one round trip, so a stranger who wants to push its connection out must open more than
// the whole budget in that time (and after it: connections are admitted in batches, and those of
// the receiver's own batch cannot push it out), while idle strangers could otherwise fill it and
// lock it out.
import type { Socket } from 'node:net';

export interface PendingConnection {
  readonly socket: Socket;
  readonly connection: number;
  /** Ends the connection with this reason (reported as 'rejected'). */
  drop(why: string): void;
}

// Unproven connections of one kind of peer, oldest first, at most `limit`.
export class PendingBudget {
  private readonly members = new Map<Socket, PendingConnection>();

  constructor(
    readonly limit: number,
    /** Who these peers are, for messages: "this user", "other local users". */
    readonly peers: string,
  ) {}

  get size(): number {
    return this.members.size;
  }

  // Takes in a connection, first dropping the oldest ones while the budget is full.
  admit(member: PendingConnection): void {
    while (this.members.size >= this.limit) {
      const [, oldest] = this.members.entries().next().value as [Socket, PendingConnection];
      this.members.delete(oldest.socket);
      oldest.drop(`dropped for a newer connection: at most ${this.limit} unproven tunnel connections from ${this.peers} at a time, and this was the oldest`);
    }
    this.members.set(member.socket, member);
  }

  // Forgets a connection (proven, or closed); harmless if it is not here.
  delete(socket: Socket): void {
    this.members.delete(socket);
  }

  // Every member, for the listener's close().
  all(): PendingConnection[] {
    return [...this.members.values()];
  }
}
