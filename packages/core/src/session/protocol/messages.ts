// The messages client and receiver exchange over the ssh session, one JSON object per line.
// Every schema is strict (unknown keys are refused) and bounded, so a peer cannot make the
// other side accept or keep more than it expects. See docs/protocol.md for the conversation.
// zod/mini: the same checks as zod's chained API in a form a bundler can trim, so that both
// commands start about 60 ms sooner (full zod is most of their bundle); see zod-setup.ts.
import * as z from 'zod/mini';
import './zod-setup.js';

export const PROTOCOL_NAME = 'ssh-r-sync';
/** The envelope's "v" on every message, in every conversation version: it stays 1. */
export const PROTOCOL_VERSION = 1;
/**
 * The conversation versions this side speaks (hello's `versions`, session's `version`), oldest
 * first. 2 is 1 plus a result's exitCode 2 (a configuration error): a version-1 peer gets 1.
 * 3 is 2 plus progress (start.progress, the progress message).
 */
export const SESSION_VERSIONS: readonly number[] = [1, 2, 3];
/** The first conversation version whose result may carry exitCode 2. */
export const CONFIG_EXIT_VERSION = 2;
/** The first conversation version with `start.progress` and `progress` messages (3 is 2 plus them). */
export const PROGRESS_VERSION = 3;
// Default bound on one message line in bytes, newline excluded.
export const MAX_MESSAGE_BYTES = 65536;

const count = z.int().check(z.nonnegative());
const status = z.enum(['success', 'failure', 'skipped']);
const text = (max: number) => z.string().check(z.maxLength(max));

// The envelope fields first, so a serialized line starts with them.
function message<T extends string, S extends z.core.$ZodShape>(type: T, shape: S) {
  return z.strictObject({ v: z.literal(PROTOCOL_VERSION), type: z.literal(type), ...shape });
}

export const messageSchemas = {
  // receiver → client, first: what this receiver can speak. Its envelope stays v1 forever.
  hello: message('hello', {
    protocol: z.literal(PROTOCOL_NAME),
    versions: z.array(z.int().check(z.positive())).check(z.minLength(1), z.maxLength(16)),
  }),
  // client → receiver, answer to hello. name and options are hints; the receiver decides.
  session: message('session', {
    protocol: z.literal(PROTOCOL_NAME),
    version: z.int().check(z.positive()),
    name: text(255),
    tunnelPort: z.int().check(z.gte(1), z.lte(65535)),
    key: z.string().check(z.regex(/^[0-9a-fA-F]{64}$/, { error: 'must be 64 hex characters (a 32-byte key)' })),
    options: z.strictObject({ oneFileSystem: z.boolean(), fakeSuper: z.boolean() }),
  }),
  // receiver → client: handshake and tunnel check passed, under this name and mode.
  ready: message('ready', {
    name: z.string().check(z.minLength(1), z.maxLength(255)),
    mode: z.enum(['privileged', 'fake-super', 'plain']),
  }),
  // client → receiver: the client's own pre-work is done, pull now. progress (version 3): relay
  // rsync's progress while it pulls.
  start: message('start', { progress: z.optional(z.boolean()) }),
  // receiver → client (version 3, when start asked for it), while rsync runs, a few a second:
  // bytes so far, rsync's percentage of what it knows of, its rate, files, entries left to check,
  // whether the tree is fully listed (then the percentage is of the real total), time since rsync started.
  progress: message('progress', {
    bytes: count,
    percent: z.nullable(z.int().check(z.gte(0), z.lte(100))),
    bytesPerSecond: z.nullable(count),
    files: z.nullable(count),
    toCheck: z.nullable(z.strictObject({ remaining: count, total: count })),
    scanDone: z.boolean(),
    elapsedMs: count,
  }),
  // either direction: "not now".
  skip: message('skip', { reason: text(1024) }),
  // receiver → client: the outcome of the pull and the exit code the client should use.
  // committed: the backup passed the commit point (flushed, done mark written, latest moved)
  // before this message was sent; status "success" is only ever sent with committed true.
  // exitCode 2 (a configuration error) only in conversation version 2 (CONFIG_EXIT_VERSION).
  result: message('result', {
    status,
    committed: z.boolean(),
    exitCode: z.literal([0, 1, 2, 75]),
    rsyncExitCode: z.nullable(z.int().check(z.gte(0), z.lte(255))),
    message: z.nullable(text(4096)),
    files: z.nullable(count),
    bytes: z.nullable(count),
    durationMs: count,
    snapshot: z.nullable(text(255)),
  }),
  // receiver → client, last: sent after the receiver's done hooks ran.
  bye: message('bye', { status, message: z.nullable(text(4096)) }),
  // either direction: the sender gives up.
  error: message('error', { message: text(4096) }),
} as const;

type Schemas = typeof messageSchemas;
export type MessageType = keyof Schemas;
export type Message<T extends MessageType = MessageType> = z.infer<Schemas[T]>;
// What send() takes: a message whose "v" may be left out.
export type MessageInput<T extends MessageType = MessageType> = {
  [K in T]: Omit<Message<K>, 'v'> & { v?: typeof PROTOCOL_VERSION };
}[T];

export type HelloMessage = Message<'hello'>;
export type SessionMessage = Message<'session'>;
export type ReadyMessage = Message<'ready'>;
export type StartMessage = Message<'start'>;
export type SkipMessage = Message<'skip'>;
export type ResultMessage = Message<'result'>;
export type ProgressMessage = Message<'progress'>;
export type ByeMessage = Message<'bye'>;
export type ErrorMessage = Message<'error'>;
export type ReceiverMode = ReadyMessage['mode'];
export type OutcomeStatus = ResultMessage['status'];

export const MESSAGE_TYPES = Object.freeze(Object.keys(messageSchemas) as MessageType[]);

// True for the name of a known message type (own keys only, so "constructor" is not one).
export function isMessageType(type: unknown): type is MessageType {
  return typeof type === 'string' && Object.hasOwn(messageSchemas, type);
}

// The schema of one message type, typed as accepting any message.
export function schemaFor(type: MessageType): z.ZodMiniType<Message> {
  return messageSchemas[type] as unknown as z.ZodMiniType<Message>;
}
