// How a run fails: an invariant named after its behaviour (B66...), with the seed
// and the exact command that replays it.

export class InvariantViolation extends Error {
  readonly behaviour: string;
  constructor(behaviour: string, detail: string) {
    super(`${behaviour}: ${detail}`);
    this.name = "InvariantViolation";
    this.behaviour = behaviour;
  }
}

export function replayCommand(seed: number): string {
  return `npm run sim -- --seed ${seed}`;
}

export class SimFailure extends Error {
  readonly seed: number;
  readonly behaviour: string;
  readonly tick: number;
  constructor(seed: number, behaviour: string, tick: number, detail: string, cause?: unknown) {
    super(`seed ${seed}, tick ${tick}: ${detail}\n  replay: ${replayCommand(seed)}`, { cause });
    this.name = "SimFailure";
    this.seed = seed;
    this.behaviour = behaviour;
    this.tick = tick;
  }
}
