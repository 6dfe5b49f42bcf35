// The client half of the tunnel proof (the gate's side), over exact synchronous reads and writes.
import {
  MAC_BYTES,
  NONCE_BYTES,
  REPLY_BYTES,
  TUNNEL_MAGIC,
  clientMac,
  commandFromByte,
  macMatches,
  newNonce,
  proofFailed,
  receiverMac,
  type TunnelCommand,
} from './proof.js';

export interface SyncChannel {
  read(size: number): Buffer;
  write(data: Buffer): void;
}

// Proves this end to the receiver and checks the receiver's proof; returns its command.
// On a wrong proof it throws before writing anything else.
export function proveAsClient(channel: SyncChannel, key: Buffer): TunnelCommand {
  const clientNonce = newNonce();
  channel.write(Buffer.concat([TUNNEL_MAGIC, clientNonce]));
  const reply = channel.read(REPLY_BYTES);
  const receiverNonce = reply.subarray(0, NONCE_BYTES);
  const expected = receiverMac(key, clientNonce, receiverNonce);
  if (!macMatches(expected, reply.subarray(NONCE_BYTES, NONCE_BYTES + MAC_BYTES))) {
    throw proofFailed("receiver's proof is wrong");
  }
  channel.write(clientMac(key, receiverNonce, clientNonce));
  return commandFromByte(channel.read(1)[0] ?? -1);
}
