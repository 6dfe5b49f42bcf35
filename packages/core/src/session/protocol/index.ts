// The client ⇄ receiver protocol: message schemas, line codec and the message channel.
export {
  CONFIG_EXIT_VERSION,
  PROGRESS_VERSION,
  MAX_MESSAGE_BYTES,
  MESSAGE_TYPES,
  PROTOCOL_NAME,
  PROTOCOL_VERSION,
  SESSION_VERSIONS,
  isMessageType,
  messageSchemas,
  type ByeMessage,
  type ErrorMessage,
  type HelloMessage,
  type Message,
  type MessageInput,
  type MessageType,
  type OutcomeStatus,
  type ProgressMessage,
  type ReadyMessage,
  type ReceiverMode,
  type ResultMessage,
  type SessionMessage,
  type SkipMessage,
  type StartMessage,
} from './messages.js';
export { GarbageError, decodeMessage, encodeMessage } from './codec.js';
export { MessageChannel, openChannel, type ChannelOptions, type ReceiveOptions, type SendOptions } from './channel.js';
export { escapeText, quote } from './text.js';
export { receiveHello } from './hello.js';
export { claimStdout } from './stdout-guard.js';
