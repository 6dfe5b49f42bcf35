// The tunnel proof shared by both halves (see docs/protocol.md). Each connection starts with:
//   client → receiver  MAGIC "SRT1" ‖ Nc                      (4 + 32 bytes)
//   receiver → client  Nr ‖ HMAC(K, RECEIVER_LABEL ‖ Nc ‖ Nr)  (32 + 32 bytes)
//   client → receiver  HMAC(K, CLIENT_LABEL ‖ Nr ‖ Nc)         (32 bytes)
//   receiver → client  one command byte: 0x00 check, 0x01 rsync
// The receiver proves first, so a stranger who connects learns nothing but two random values.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { SshRSyncError } from '../../errors.js';

export const TUNNEL_MAGIC = Buffer.from('SRT1', 'ascii');
export const KEY_BYTES = 32;
export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
export const OPENER_BYTES = TUNNEL_MAGIC.length + NONCE_BYTES;
export const REPLY_BYTES = NONCE_BYTES + MAC_BYTES;

const RECEIVER_LABEL = Buffer.from('ssh-r-sync tunnel receiver', 'ascii');
const CLIENT_LABEL = Buffer.from('ssh-r-sync tunnel client', 'ascii');

export type TunnelCommand = 'check' | 'rsync';
const COMMAND_BYTES: Record<TunnelCommand, number> = { check: 0x00, rsync: 0x01 };

// A fresh nonce for one side of one connection.
export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

// The receiver's proof: it knows K and saw this client's nonce.
export function receiverMac(key: Buffer, clientNonce: Buffer, receiverNonce: Buffer): Buffer {
  return createHmac('sha256', key).update(RECEIVER_LABEL).update(clientNonce).update(receiverNonce).digest();
}

// The client's proof: it knows K and saw this receiver's nonce.
export function clientMac(key: Buffer, receiverNonce: Buffer, clientNonce: Buffer): Buffer {
  return createHmac('sha256', key).update(CLIENT_LABEL).update(receiverNonce).update(clientNonce).digest();
}

// Constant-time comparison of a received MAC with the expected one.
export function macMatches(expected: Buffer, received: Buffer): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received);
}

// The byte that carries a command after the proof.
export function commandByte(command: TunnelCommand): Buffer {
  return Buffer.from([COMMAND_BYTES[command]]);
}

// The command a received byte stands for; throws on anything else.
export function commandFromByte(byte: number): TunnelCommand {
  if (byte === COMMAND_BYTES.check) return 'check';
  if (byte === COMMAND_BYTES.rsync) return 'rsync';
  throw proofFailed(`unknown command 0x${byte.toString(16).padStart(2, '0')}`);
}

// Refuses a key of the wrong size before any byte is exchanged.
export function assertTunnelKey(key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
    throw new SshRSyncError('ETUNNEL', `tunnel key must be ${KEY_BYTES} bytes`);
  }
}

// "tunnel proof failed: <why>", the one error shape of a failed proof.
export function proofFailed(why: string): SshRSyncError {
  return new SshRSyncError('ETUNNEL', `tunnel proof failed: ${why}`);
}

// The peer closed (or reset) the connection in the middle of a read.
export function closedEarly(got: number, wanted: number, hint = ''): SshRSyncError {
  return proofFailed(`connection closed after ${got} of ${wanted} bytes${hint}`);
}
