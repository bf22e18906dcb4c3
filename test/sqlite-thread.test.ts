/**
 * The SQLite store on its own thread (what the vault uses): errors keep their kind and code
 * across the thread, many concurrent calls share group commits yet stay exact, decisions are
 * durable before they resolve, and a dead thread fails every call closed.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import type { Worker } from "node:worker_threads";
import { VigilError } from "../src/errors.js";
import { openSqliteStore } from "../src/slashing/store/sqlite.js";
import { ThreadedSqliteStore } from "../src/slashing/store/sqlite-thread.js";
import type { Decision } from "../src/slashing/types.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-sqlite-thread-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const dbFile = (): string => path.join(tmp, `case-${++n}`, "slashing.sqlite");
const pubkey = (i: number): string => "0x" + i.toString(16).padStart(96, "0");
const root = (b: number): Uint8Array => new Uint8Array(32).fill(b);

function isVigilError(kind: string, code: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof VigilError, String(e));
    assert.equal(e.kind, kind);
    assert.equal(e.code, code);
    return true;
  };
}

test("bad input and slashing refusals cross the thread with their kind and code", async () => {
  const store = await ThreadedSqliteStore.open(dbFile());
  try {
    await store.bindGenesisValidatorsRoot(root(7));
    await assert.rejects(store.bindGenesisValidatorsRoot(root(8)), isVigilError("bad_request", "GENESIS_VALIDATORS_ROOT_MISMATCH"));
    await assert.rejects(store.checkAndRecordAttestation("0x1234", 1, 2, root(1)), isVigilError("bad_request", "INVALID_PUBKEY"));
    assert.equal((await store.checkAndRecordAttestation(pubkey(1), 1, 2, root(1))).allowed, true);
    const double = await store.checkAndRecordAttestation(pubkey(1), 1, 2, root(2));
    assert.equal(double.allowed, false);
    assert.equal(!double.allowed && double.rule, "DOUBLE_VOTE");
    assert.deepEqual(await store.getGenesisValidatorsRoot(), root(7));
  } finally {
    await store.close();
  }
});

test("a root that views a larger buffer is recorded as its own 32 bytes", async () => {
  const file = dbFile();
  const store = await ThreadedSqliteStore.open(file);
  let doc;
  try {
    await store.bindGenesisValidatorsRoot(root(7));
    const big = new Uint8Array(4096).fill(9);
    big.set(root(3), 64);
    assert.equal((await store.checkAndRecordBlock(pubkey(2), 5, big.subarray(64, 96))).allowed, true);
    doc = await store.exportInterchange();
  } finally {
    await store.close();
  }
  assert.deepEqual(doc.data[0].signed_blocks, [{ slot: "5", signing_root: "0x" + "03".repeat(32) }]);
});

test("hundreds of concurrent calls: exactly one vote per target allowed, all durable once resolved", async () => {
  const file = dbFile();
  const store = await ThreadedSqliteStore.open(file);
  await store.bindGenesisValidatorsRoot(root(7));
  // Per validator and target, two different roots race: one must win, the other be a double vote.
  const calls = [];
  for (let v = 0; v < 20; v++) {
    for (let t = 1; t <= 10; t++) {
      calls.push(store.checkAndRecordAttestation(pubkey(v), t - 1, t, root(1)));
      calls.push(store.checkAndRecordAttestation(pubkey(v), t - 1, t, root(2)));
    }
  }
  const decisions = await Promise.all(calls);
  assert.equal(decisions.filter((d) => d.allowed).length, 200);
  for (let i = 0; i < decisions.length; i += 2) assert.notEqual(decisions[i].allowed, decisions[i + 1].allowed);
  // Read back through a separate connection before closing: every allowed vote is committed.
  const other = openSqliteStore(file);
  const doc = await other.exportInterchange();
  await other.close();
  await store.close();
  assert.equal(doc.data.length, 20);
  for (const v of doc.data) assert.equal(v.signed_attestations.length, 10);
});

test("a dead store thread fails every pending and later call closed (503 SLASHING_DB_ERROR)", async () => {
  const store = await ThreadedSqliteStore.open(dbFile());
  const worker = (store as unknown as { worker: Worker }).worker;
  await worker.terminate();
  await assert.rejects(store.checkAndRecordAttestation(pubkey(1), 1, 2, root(1)), isVigilError("unavailable", "SLASHING_DB_ERROR"));
  await assert.rejects(store.getGenesisValidatorsRoot(), isVigilError("unavailable", "SLASHING_DB_ERROR"));
  await store.close();
});

test("a database that cannot be opened fails open() with a clear error", async () => {
  const dir = path.join(tmp, "not-a-db");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, "slashing.sqlite");
  fs.writeFileSync(file, "this is not an SQLite database, it is long enough to have a header".repeat(20), { mode: 0o600 });
  await assert.rejects(ThreadedSqliteStore.open(file), isVigilError("unavailable", "SLASHING_DB_ERROR"));
});

test("tentative decisions: told before the commit, identical to the durable one; a failed commit rejects them all and records nothing", async () => {
  const file = dbFile();
  const told: Decision[] = [];
  let resolvedEarly = false;
  const ok = openSqliteStore(file);
  await ok.bindGenesisValidatorsRoot(root(7));
  const p = ok.checkAndRecordAttestation(pubkey(1), 1, 2, root(1), (d) => told.push(d));
  void p.then(() => (resolvedEarly = told.length === 0));
  const d = await p;
  assert.equal(resolvedEarly, false);
  assert.deepEqual(told, [d]);
  await ok.close();

  // The same database behind a COMMIT that fails (fault injected just before it): the tentative
  // "allowed" was told, yet the promise rejects 'unavailable' and the database has no record of it.
  let tentative: Decision | null = null;
  const failing = openSqliteStore(file, () => {
    throw new Error("injected: the disk is full");
  });
  await assert.rejects(
    failing.checkAndRecordAttestation(pubkey(1), 2, 3, root(2), (t) => (tentative = t)),
    isVigilError("unavailable", "SLASHING_DB_ERROR"),
  );
  assert.equal((tentative as Decision | null)?.allowed, true);
  await failing.close();
  const again = openSqliteStore(file);
  const doc = await again.exportInterchange();
  await again.close();
  assert.deepEqual(
    doc.data[0].signed_attestations.map((a) => a.target_epoch),
    ["2"],
  );
});

test("tentative decisions cross the store thread before the durable answer", async () => {
  const store = await ThreadedSqliteStore.open(dbFile());
  try {
    await store.bindGenesisValidatorsRoot(root(7));
    const order: string[] = [];
    const calls = [1, 2, 3].map((t) =>
      store.checkAndRecordAttestation(pubkey(1), t - 1, t, root(t), (d) => order.push(`tentative ${t} ${d.allowed}`)).then((d) => order.push(`durable ${t} ${d.allowed}`)),
    );
    // A double vote in the same group: refused tentatively and durably.
    calls.push(store.checkAndRecordAttestation(pubkey(1), 0, 1, root(9), (d) => order.push(`tentative x ${d.allowed}`)).then((d) => order.push(`durable x ${d.allowed}`)));
    await Promise.all(calls);
    for (const t of ["1", "2", "3", "x"]) assert.ok(order.indexOf(`tentative ${t} ${t !== "x"}`) < order.indexOf(`durable ${t} ${t !== "x"}`), order.join(", "));
  } finally {
    await store.close();
  }
});
