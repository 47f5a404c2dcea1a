// Invariants stated where state moves: a broken one stops the node loudly
// (the runtime's drain turns a throw into exit code 70) instead of letting it
// acknowledge anything on corrupt state.

export class AssertionError extends Error {
  constructor(message: string) {
    super(`invariant violated: ${message}`);
    this.name = "AssertionError";
  }
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}
