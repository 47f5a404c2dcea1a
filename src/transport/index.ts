// Node-to-node transport: binary codec, framing, handshake and the TCP transport.

export { formatHostPort, type HostPort, parseHostPort } from "./addr.ts";
export { CodecError, decodeMessage, encodedSize, encodeMessage } from "./codec.ts";
export { FrameKind } from "./frame.ts";
export { PROTOCOL_VERSION } from "./handshake.ts";
export { type Logger, silentLogger } from "./logger.ts";
export { type PeerStats, TcpTransport, type TcpTransportOptions, type TransportStats } from "./transport.ts";
