// One message ⇄ one line. Decoding checks, in order: UTF-8, JSON, an object with a string
// "type", the protocol version, a known type, then the type's schema; each failure is a
// one-line EPROTOCOL error that names the peer and quotes at most 80 characters of input.
import type { core } from 'zod/mini';
import { SshRSyncError } from '../../errors.js';
import { PROTOCOL_VERSION, isMessageType, schemaFor, type Message, type MessageInput } from './messages.js';
import { escapeText, quote } from './text.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

// A line that is not a message at all (not JSON, or no object with a "type"): someone other
// than the peer program may be talking, e.g. the server's login shell (see hello.ts).
export class GarbageError extends SshRSyncError {
  // The start of the line, for a caller that can say more about where it came from.
  readonly text: string;

  constructor(peer: string, text: string) {
    super('EPROTOCOL', `garbage from ${peer}: ${quote(text)}`);
    this.text = text.slice(0, 1024);
  }
}

function describeVersion(v: unknown): string {
  if (v === undefined) return 'none';
  if (typeof v === 'number') return String(v);
  return quote(JSON.stringify(v) ?? String(v));
}

// The first zod issue as "path: message", safe to print (keys from the peer are quoted).
export function formatIssue(issue: core.$ZodIssue | undefined): string {
  if (issue === undefined) return 'invalid';
  const path = issue.path.map((key, i) => (typeof key === 'number' ? `[${key}]` : `${i ? '.' : ''}${String(key)}`));
  const where = path.length > 0 ? `${path.join('')}: ` : '';
  if (issue.code === 'unrecognized_keys') {
    const more = issue.keys.length > 1 ? ` and ${issue.keys.length - 1} more` : '';
    return `${where}unknown key ${quote(issue.keys[0] ?? '', 40)}${more}`;
  }
  return `${where}${escapeText(issue.message).slice(0, 200)}`;
}

// Parses one line (without its newline) into a checked message, or throws EPROTOCOL.
export function decodeMessage(line: Uint8Array, peer: string): Message {
  let text: string;
  try {
    text = utf8.decode(line);
  } catch {
    throw new GarbageError(peer, Buffer.from(line.subarray(0, 320)).toString('utf8'));
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new GarbageError(peer, text);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new GarbageError(peer, text);
  const { v, type } = value as { v?: unknown; type?: unknown };
  if (typeof type !== 'string') throw new GarbageError(peer, text);
  if (v !== PROTOCOL_VERSION) {
    const message = `unsupported protocol version ${describeVersion(v)} from ${peer} (this side speaks ${PROTOCOL_VERSION})`;
    throw new SshRSyncError('EPROTOCOL', message);
  }
  if (!isMessageType(type)) throw new SshRSyncError('EPROTOCOL', `unknown message type ${quote(type)} from ${peer}`);
  const parsed = schemaFor(type).safeParse(value);
  if (!parsed.success) {
    throw new SshRSyncError('EPROTOCOL', `invalid ${type} message from ${peer}: ${formatIssue(parsed.error.issues[0])}`);
  }
  return parsed.data;
}

// Checks and serializes a message as one line with its newline; a bad message is our bug.
export function encodeMessage(message: MessageInput, maxBytes: number): string {
  const type: unknown = message.type;
  if (!isMessageType(type)) throw new SshRSyncError('EINTERNAL', `cannot send unknown message type ${quote(String(type))}`);
  const parsed = schemaFor(type).safeParse({ v: PROTOCOL_VERSION, ...message });
  if (!parsed.success) {
    throw new SshRSyncError('EINTERNAL', `refusing to send an invalid ${type} message: ${formatIssue(parsed.error.issues[0])}`);
  }
  const line = JSON.stringify(parsed.data);
  const size = Buffer.byteLength(line);
  if (size > maxBytes) throw new SshRSyncError('EINTERNAL', `${type} message is ${size} bytes, over the limit of ${maxBytes}`);
  return `${line}\n`;
}
