// Named points where a test can have this process killed (SIGKILL, as a
// power cut or kill -9 would): `RAFTBUS_FAULT_KILL_AT=<point>` in the node's
// environment. The crash tests use them to stop a node at an exact step of a
// snapshot install or of a sweep, which timing alone cannot hit. Without the
// variable a fault point costs one comparison.

export type FaultPoint =
  | "install-state" // the first small-state chunk is staged
  | "install-batches" // some batch chunks are staged (the third)
  | "install-before-commit" // the whole stream is staged, restore() not yet called
  | "install-after-commit" // restore()'s commit point is on disk
  | "sweep"; // a sweep turn's deletions are queued, some committed

const armed = process.env.RAFTBUS_FAULT_KILL_AT as FaultPoint | undefined;

/** Kills this process at once when `point` is the armed one. */
export function faultPoint(point: FaultPoint): void {
  if (armed !== point) return;
  process.kill(process.pid, "SIGKILL");
}

/** Whether a point is armed (to arm one that waits for a write first). */
export function faultArmed(point: FaultPoint): boolean {
  return armed === point;
}
