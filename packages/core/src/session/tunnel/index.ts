// The tunnel between receiver and client: a loopback listener on the client whose every
// connection is proven both ways before rsync runs on it (protocol in docs/protocol.md).
export { startTunnelListener, type TunnelListener, type TunnelListenerOptions } from './listener.js';
export type { TunnelEvent } from './events.js';
export { checkTunnel, connectTunnel, openTunnel, proveTunnel, relayArgv, tunnelRsyncArgs, type OpenTunnelOptions, type TunnelConnection } from './connect.js';
export { KEY_BYTES, type TunnelCommand } from './proof.js';
