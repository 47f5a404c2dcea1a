// What the runtime needs from the layers below it: durable storage and a peer
// transport. src/storage/LmdbStorage and src/transport/TcpTransport implement these.

import type { Message, NodeId, Storage } from "../raft/index.ts";

export interface DurableStorage extends Storage {
  /** Resolves once every write issued so far is durable (committed and fsynced). */
  flush(): Promise<void>;
  close(): Promise<void>;
  /** Small runtime records (e.g. the address book), written in the current batch. */
  getMeta(key: string): Uint8Array | undefined;
  putMeta(key: string, value: Uint8Array): void;
}

export interface PeerTransport {
  /** Queues a Raft message for m.to; false when it was dropped (queue full, unknown peer). */
  send(m: Message): boolean;
  /** Queues an application payload (e.g. a forwarded client request) for a peer. */
  sendApp(to: NodeId, payload: Uint8Array): boolean;
  onMessage(handler: (m: Message) => void): void;
  onApp(handler: (from: NodeId, payload: Uint8Array) => void): void;
  onUnreachable(handler: (peer: NodeId) => void): void;
  setPeer(id: NodeId, addr: string): void;
  removePeer(id: NodeId): void;
  close(): Promise<void>;
}

/** The subset of pino's logger the runtime uses. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
