import { describe, expect, it } from "vitest";
import { Cluster } from "./harness.ts";

describe("smoke", () => {
  it("elects, replicates, commits", () => {
    const c = new Cluster([1, 2, 3]);
    c.campaign(1);
    expect(c.leader()).toBe(1);
    c.propose(1, "a");
    c.propose(2, "b");
    c.tickAll(3);
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["a", "b"]);
  });
  it("elects by timeout", () => {
    const c = new Cluster([1, 2, 3]);
    c.tickAll(30);
    expect(c.leaders().length).toBe(1);
    const l = c.leader();
    c.propose(l, "x");
    c.tickAll(2);
    for (const id of [1, 2, 3]) expect(c.appliedData(id)).toEqual(["x"]);
  });
});
