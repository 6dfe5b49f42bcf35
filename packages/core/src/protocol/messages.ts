// The messages client and receiver exchange over the ssh session, one JSON object per line.
// Every schema is strict (unknown keys are refused) and bounded, so a peer cannot make the
// other side accept or keep more than it expects. See docs/protocol.md for the conversation.
import { z } from 'zod';

export const PROTOCOL_NAME = 'ssh-r-sync';
export const PROTOCOL_VERSION = 1;
// Default bound on one message line in bytes, newline excluded.
export const MAX_MESSAGE_BYTES = 65536;

const count = z.int().nonnegative();
const status = z.enum(['success', 'failure', 'skipped']);
const text = (max: number) => z.string().max(max);

// The envelope fields first, so a serialized line starts with them.
function message<T extends string, S extends z.ZodRawShape>(type: T, shape: S) {
  return z.strictObject({ v: z.literal(PROTOCOL_VERSION), type: z.literal(type), ...shape });
}

export const messageSchemas = {
  // receiver → client, first: what this receiver can speak. Its envelope stays v1 forever.
  hello: message('hello', {
    protocol: z.literal(PROTOCOL_NAME),
    versions: z.array(z.int().positive()).min(1).max(16),
  }),
  // client → receiver, answer to hello. name and options are hints; the receiver decides.
  session: message('session', {
    protocol: z.literal(PROTOCOL_NAME),
    version: z.int().positive(),
    name: text(255),
    tunnelPort: z.int().min(1).max(65535),
    key: z.string().regex(/^[0-9a-fA-F]{64}$/, { error: 'must be 64 hex characters (a 32-byte key)' }),
    options: z.strictObject({ oneFileSystem: z.boolean(), fakeSuper: z.boolean() }),
  }),
  // receiver → client: handshake and tunnel check passed, under this name and mode.
  ready: message('ready', {
    name: z.string().min(1).max(255),
    mode: z.enum(['privileged', 'fake-super', 'plain']),
  }),
  // client → receiver: the client's own pre-work is done, pull now.
  start: message('start', {}),
  // either direction: "not now".
  skip: message('skip', { reason: text(1024) }),
  // receiver → client: the outcome of the pull and the exit code the client should use.
  result: message('result', {
    status,
    exitCode: z.literal([0, 1, 75]),
    rsyncExitCode: z.int().min(0).max(255).nullable(),
    message: text(4096).nullable(),
    files: count.nullable(),
    bytes: count.nullable(),
    durationMs: count,
    snapshot: text(255).nullable(),
  }),
  // receiver → client, last: sent after the receiver's done hooks ran.
  bye: message('bye', { status, message: text(4096).nullable() }),
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
export function schemaFor(type: MessageType): z.ZodType<Message> {
  return messageSchemas[type] as z.ZodType<Message>;
}
