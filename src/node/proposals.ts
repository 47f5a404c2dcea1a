// Proposals: batching, forwarding and the clients waiting for them.
//
// A request on the leader is prepared (setPreparer: leader-decided values such
// as timestamps are set in one place) and queued; the proposals of one
// event-loop turn go to the core as one batch (one append, one broadcast). A
// request on a follower is forwarded to the leader over the transport's APP
// channel (forward.ts) and proposed there. Either way the proposal travels in
// an envelope naming this node and a request id, and the client is answered
// when the entry is applied here (settle), or refused (a forwarded refusal,
// BACKPRESSURE, a timeout).
//
// Bounds: at most maxPendingProposals proposals and maxPendingBytes bytes wait
// for the next batch, and at most maxPendingProposals forwarded requests wait
// for their entry; beyond either, BACKPRESSURE.

import { isRaftError, type NodeId, Role } from "../raft/index.ts";
import { CodedError, toCodedError } from "./coded-error.ts";
import type { Core } from "./core.ts";
import { decodeEnvelope, EnvelopeKind, encodeEnvelope } from "./envelope.ts";
import { decodeForward, encodeForward, type Forward, ForwardKind } from "./forward.ts";
import type { PeerTransport } from "./ports.ts";
import { RuntimeError } from "./runtime-error.ts";

export interface ProposalOptions {
  maxPendingProposals: number;
  maxPendingBytes: number;
  defaultTimeoutMs: number;
}

export interface ProposalDeps {
  core: Pick<Core, "id" | "log" | "leaderId" | "role" | "isStopped" | "act">;
  transport: Pick<PeerTransport, "sendApp">;
  /** Whether this node was removed from the cluster (it then refuses to propose). */
  removed(): boolean;
}

interface Waiter<R> {
  resolve: (r: R) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class Proposals<R> {
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  /**
   * Request ids match applied entries to waiting clients, so they must not
   * repeat across restarts (an old entry of this node, committed after a
   * restart, must not answer a new request): start from the clock (ms × 1024,
   * plus noise), well below 2^53.
   */
  private nextRequestId = Date.now() * 1024 + Math.floor(Math.random() * 1024);
  private readonly waiters = new Map<number, Waiter<R>>();
  private prepare: (request: Uint8Array) => Uint8Array = (r) => r;

  constructor(
    private readonly d: ProposalDeps,
    private readonly o: ProposalOptions,
  ) {}

  /**
   * Turns a client request into the command that is replicated; runs on the
   * leader only, so leader-decided values (timestamps) are set in one place.
   */
  setPreparer(prepare: (request: Uint8Array) => Uint8Array): void {
    this.prepare = prepare;
  }

  /**
   * Submits a client request: on the leader it is prepared and proposed; on a
   * follower it is forwarded to the leader. Either way it resolves once the
   * command is committed and applied on this node, with the state machine's
   * result, exactly once per call (no internal retries).
   */
  submit(request: Uint8Array, timeoutMs = this.o.defaultTimeoutMs): Promise<R> {
    const { core } = this.d;
    if (core.isStopped()) return Promise.reject(new RuntimeError("STOPPED", "node is shutting down"));
    if (this.d.removed()) return Promise.reject(new RuntimeError("NO_LEADER", "this node was removed"));
    const leader = core.leaderId();
    if (leader === 0) return Promise.reject(new RuntimeError("NO_LEADER", "no leader is known"));
    if (leader === core.id) {
      let body: Uint8Array;
      try {
        body = this.prepare(request);
      } catch (e) {
        return Promise.reject(e);
      }
      return this.proposeEnvelope(EnvelopeKind.App, body, timeoutMs);
    }
    if (this.waiters.size >= this.o.maxPendingProposals) {
      return Promise.reject(new RuntimeError("BACKPRESSURE", "too many requests waiting"));
    }
    const requestId = this.nextRequestId++;
    const p = this.wait(requestId, timeoutMs);
    const sent = this.d.transport.sendApp(
      leader,
      encodeForward({ kind: ForwardKind.Request, requestId, request }),
    );
    if (!sent) {
      this.refuseWaiter(requestId, new RuntimeError("NO_LEADER", `cannot reach the leader (node ${leader})`));
    }
    return p;
  }

  /**
   * Proposes an application command; resolves with its result once it is
   * committed and applied here. Proposals of one event-loop turn go to Raft
   * as one batch.
   */
  propose(command: Uint8Array, timeoutMs = this.o.defaultTimeoutMs): Promise<R> {
    return this.proposeEnvelope(EnvelopeKind.App, command, timeoutMs);
  }

  /** Proposes a command of either kind (the runtime's own: Members). */
  proposeEnvelope(kind: EnvelopeKind, body: Uint8Array, timeoutMs = this.o.defaultTimeoutMs): Promise<R> {
    const { core } = this.d;
    if (core.isStopped()) return Promise.reject(new RuntimeError("STOPPED", "node is shutting down"));
    if (this.d.removed()) return Promise.reject(new RuntimeError("NO_LEADER", "this node was removed"));
    if (core.leaderId() === 0) return Promise.reject(new RuntimeError("NO_LEADER", "no leader is known"));
    const requestId = this.nextRequestId++;
    const data = encodeEnvelope(kind, core.id, requestId, body);
    const refused = this.enqueue(data);
    if (refused) return Promise.reject(refused);
    return this.wait(requestId, timeoutMs);
  }

  /** A forwarding frame from a peer: a follower's request, or the leader's refusal of ours. */
  onForward(from: NodeId, payload: Uint8Array): void {
    const { core } = this.d;
    let f: Forward;
    try {
      f = decodeForward(payload);
    } catch (e) {
      core.log.warn({ peer: from, err: (e as Error).message }, "malformed forwarded request");
      return;
    }
    if (f.kind === ForwardKind.Refusal) {
      this.refuseWaiter(f.requestId, f.error);
      return;
    }
    const refuse = (error: CodedError) =>
      this.d.transport.sendApp(
        from,
        encodeForward({ kind: ForwardKind.Refusal, requestId: f.requestId, error }),
      );
    if (core.role() !== Role.Leader) {
      refuse(new CodedError("NO_LEADER", "the node forwarded to is no longer the leader"));
      return;
    }
    let body: Uint8Array;
    try {
      body = this.prepare(f.request);
    } catch (e) {
      refuse(toCodedError(e));
      return;
    }
    const err = this.enqueue(encodeEnvelope(EnvelopeKind.App, from, f.requestId, body));
    if (err) refuse(err);
  }

  /** An entry proposed with (origin, requestId) was applied with `result`. */
  settle(origin: NodeId, requestId: number, result: R): void {
    if (origin !== this.d.core.id) return;
    const w = this.waiters.get(requestId);
    if (!w) return;
    this.waiters.delete(requestId);
    clearTimeout(w.timer);
    w.resolve(result);
  }

  /** Refuses every waiting client (the runtime is stopping). */
  stop(): void {
    for (const w of this.waiters.values()) {
      clearTimeout(w.timer);
      w.reject(new RuntimeError("STOPPED", "node is shutting down"));
    }
    this.waiters.clear();
  }

  // ---- internals ------------------------------------------------------------------

  private wait(requestId: number, timeoutMs: number): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.waiters.delete(requestId)) {
          reject(
            new RuntimeError("COMMIT_TIMEOUT", `not applied within ${timeoutMs} ms; it may still commit`),
          );
        }
      }, timeoutMs);
      this.waiters.set(requestId, { resolve, reject, timer });
    });
  }

  private refuseWaiter(requestId: number, error: Error): void {
    const w = this.waiters.get(requestId);
    if (!w) return;
    this.waiters.delete(requestId);
    clearTimeout(w.timer);
    w.reject(error);
  }

  /** Queues an enveloped proposal for the next batch; returns the refusal, if any. */
  private enqueue(data: Uint8Array): CodedError | undefined {
    if (
      this.pending.length >= this.o.maxPendingProposals ||
      this.pendingBytes + data.length > this.o.maxPendingBytes
    ) {
      return new RuntimeError("BACKPRESSURE", "too many proposals waiting");
    }
    this.pending.push(data);
    this.pendingBytes += data.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return undefined;
  }

  /** Hands this turn's proposals to the core as one batch. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.pending.length === 0 || this.d.core.isStopped()) return;
    const batch = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      this.d.core.act((node) => node.proposeBatch(batch));
    } catch (e) {
      const err = isRaftError(e)
        ? e.code === "UNCOMMITTED_LIMIT"
          ? new RuntimeError("BACKPRESSURE", e.message)
          : new RuntimeError("NO_LEADER", e.message)
        : (e as Error);
      for (const data of batch) {
        const env = decodeEnvelope(data);
        if (!env) continue;
        if (env.origin !== this.d.core.id) {
          // A forwarded request: tell the follower that asked.
          this.d.transport.sendApp(
            env.origin,
            encodeForward({ kind: ForwardKind.Refusal, requestId: env.requestId, error: toCodedError(err) }),
          );
          continue;
        }
        this.refuseWaiter(env.requestId, err);
      }
    }
  }
}
