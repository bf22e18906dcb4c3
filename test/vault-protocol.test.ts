// The IPC batcher between the HTTP process and the vault: messages queued in one turn travel
// together; a message that cannot be serialized fails alone instead of taking the process down.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Batcher } from "../src/vault/protocol.js";

test("one turn's messages go as one batch; an unserializable one fails alone, the others still go", async () => {
  const sent: number[][] = [];
  const failed: number[] = [];
  const deep: unknown[] = [];
  let cur = deep;
  for (let i = 0; i < 100_000; i++) cur = (cur[0] = []) as unknown[];
  const b = new Batcher<{ id: number; body: unknown }>(
    (batch) => sent.push(JSON.parse(JSON.stringify(batch)).map((m: { id: number }) => m.id)), // JSON, as the IPC channel serializes
    (m, e) => {
      assert.ok(e instanceof RangeError);
      failed.push(m.id);
    },
  );
  b.push({ id: 1, body: "ok" });
  b.push({ id: 2, body: "ok" });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(sent, [[1, 2]]);
  b.push({ id: 3, body: "ok" });
  b.push({ id: 4, body: deep });
  b.push({ id: 5, body: "ok" });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(sent, [[1, 2], [3], [5]]);
  assert.deepEqual(failed, [4]);
});
