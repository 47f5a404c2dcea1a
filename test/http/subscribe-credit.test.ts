// Credit shared by the partitions of one subscription (docs/client.md
// "Protocol extensions"): with small grants every partition that has records
// makes progress, instead of the first busy partition taking all the credit.

import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestNode, type TestNode } from "./fixture.ts";
import { createTopic, produce, SubClient, subscribeUrl } from "./subscribe-client.ts";

let node: TestNode;
beforeAll(async () => {
  node = await startTestNode();
});
afterAll(async () => {
  await node?.stop();
});

const count = (c: SubClient, p: number) => c.records.get(p)?.length ?? 0;

/** Grants one record of credit at a time, each after the previous record arrived, until `total` arrived. */
async function oneByOne(c: SubClient, total: number): Promise<void> {
  while (c.recordCount < total) {
    const want = c.recordCount + 1;
    c.send({ type: "credit", records: 1 });
    await c.waitFor(() => c.recordCount === want, `record ${want}`);
  }
}

describe("shared credit", () => {
  it("grants of 1 record serve the partitions round-robin, so every partition with records makes progress", async () => {
    await createTopic(node, "credit-rr", 3);
    await produce(node, "credit-rr", 100, { partition: 0 });
    await produce(node, "credit-rr", 100, { partition: 2 });
    const c = await SubClient.open(subscribeUrl(node, "credit-rr", { from: "earliest", credit: 1 }));
    await c.waitFor(() => c.recordCount === 1, "the first record");
    await oneByOne(c, 20);
    // Partition 1 has nothing: 0 and 2 take turns.
    expect([count(c, 0), count(c, 1), count(c, 2)]).toEqual([10, 0, 10]);

    // A partition that gets records later gets its turn too.
    await produce(node, "credit-rr", 100, { partition: 1 });
    await oneByOne(c, 50);
    expect(count(c, 1)).toBeGreaterThanOrEqual(9);
    expect(count(c, 0)).toBeGreaterThanOrEqual(19);
    expect(count(c, 2)).toBeGreaterThanOrEqual(19);
    for (let p = 0; p < 3; p++) expect(c.offsets(p)).toEqual([...Array(count(c, p)).keys()]);
    expect(c.violations).toEqual([]);
    await c.close();
  });

  it("grants of 2 with two busy partitions split evenly across grants", async () => {
    await createTopic(node, "credit-two", 2);
    await produce(node, "credit-two", 50, { partition: 0 });
    await produce(node, "credit-two", 50, { partition: 1 });
    const c = await SubClient.open(subscribeUrl(node, "credit-two", { from: "earliest", credit: 0 }));
    for (let i = 1; i <= 10; i++) {
      c.send({ type: "credit", records: 2 });
      await c.waitFor(() => c.recordCount === 2 * i, `${2 * i} records`);
    }
    expect(count(c, 0)).toBeGreaterThanOrEqual(5);
    expect(count(c, 1)).toBeGreaterThanOrEqual(5);
    expect(c.violations).toEqual([]);
    await c.close();
  });
});
