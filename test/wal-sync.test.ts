/**
 * SQLite durability off the event loop: commits run with synchronous=NORMAL and the store fdatasyncs
 * the WAL itself. No decision (nor a watermark, nor an import) resolves before a sync that began after
 * its COMMIT has finished; commits made while a sync runs share the next one; a failed sync refuses
 * everything from then on.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { VigilError } from "../src/errors.js";
import { openSqliteStore, type SqliteSlashingStore } from "../src/slashing/store/sqlite.js";
import { pubkey, root } from "./helpers/values.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-walsync-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const dbFile = (): string => path.join(tmp, `case-${++n}`, "slashing.sqlite");
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Holds every WAL sync until released; counts them and checks they sync the store's own WAL file. */
function heldSyncs(store: SqliteSlashingStore, file: string) {
  const held: (() => void)[] = [];
  const state = { started: 0, held };
  const walIno = fs.statSync(`${file}-wal`).ino;
  store.syncWal = (fd, cb) => {
    state.started++;
    assert.equal(fs.fstatSync(fd).ino, walIno, "the sync is of the database's WAL file");
    held.push(() => fs.fdatasync(fd, cb));
  };
  return state;
}

/** Resolution state of a promise, without awaiting it. */
function watch<T>(p: Promise<T>): { settled: () => boolean; p: Promise<T> } {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return { settled: () => done, p };
}

test("a decision resolves only after a WAL sync that began after its commit; groups committed meanwhile share the next sync", async () => {
  const file = dbFile();
  const store = openSqliteStore(file);
  await store.bindGenesisValidatorsRoot(root(9));
  const syncs = heldSyncs(store, file);

  const first = watch(store.checkAndRecordAttestation(pubkey(1), 0, 1, root(1)));
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(syncs.started, 1, "the first group's commit starts a sync");
  assert.equal(first.settled(), false, "committed, but not resolved before its sync finished");

  // Two more groups commit (in two turns of the event loop) while that sync is held.
  const second = watch(store.checkAndRecordAttestation(pubkey(2), 0, 1, root(2)));
  await tick();
  await tick();
  const third = watch(store.checkAndRecordAttestation(pubkey(3), 0, 1, root(3)));
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(syncs.started, 1, "one sync in flight at a time");
  // Their records are committed already (another connection sees them), yet neither has resolved.
  const other = openSqliteStore(file);
  assert.equal((await other.exportInterchange()).data.length, 3);
  await other.close();
  assert.equal(second.settled() || third.settled(), false);

  syncs.held.shift()!();
  assert.equal((await first.p).allowed, true);
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(syncs.started, 2, "the second and third groups share one sync");
  assert.equal(second.settled() || third.settled(), false, "a sync begun before their commits does not cover them");
  syncs.held.shift()!();
  assert.equal((await second.p).allowed, true);
  assert.equal((await third.p).allowed, true);
  assert.equal(syncs.started, 2);

  // A refusal signs nothing: it resolves without a sync once everything it read is durable...
  const refused = await store.checkAndRecordAttestation(pubkey(1), 0, 1, root(5));
  assert.equal(refused.allowed, false);
  assert.equal(syncs.started, 2);
  // ...but a repeat is answered with a signature: it may repeat a record that another process sharing
  // the file committed and has not synced yet, so it waits for a sync of its own.
  const repeat = watch(store.checkAndRecordAttestation(pubkey(1), 0, 1, root(1)));
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(syncs.started, 3);
  assert.equal(repeat.settled(), false);
  syncs.held.shift()!();
  const r0 = await repeat.p;
  assert.equal(r0.allowed && r0.repeat, true);
  // A repeat of a record whose commit is not yet durable waits for it too.
  const fresh = watch(store.checkAndRecordAttestation(pubkey(1), 1, 2, root(4)));
  for (let i = 0; i < 5; i++) await tick();
  const repeatOfFresh = watch(store.checkAndRecordAttestation(pubkey(1), 1, 2, root(4)));
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(fresh.settled() || repeatOfFresh.settled(), false);
  syncs.held.shift()!();
  assert.equal((await fresh.p).allowed, true);
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(repeatOfFresh.settled(), false, "the repeat's group committed after that sync began");
  syncs.held.shift()!();
  const r = await repeatOfFresh.p;
  assert.equal(r.allowed && r.repeat, true);
  await store.close();
});

test("two processes on one file: a repeat of the other's record, committed but not yet synced there, is answered only after a sync of its own", async () => {
  const file = dbFile();
  const a = openSqliteStore(file);
  await a.bindGenesisValidatorsRoot(root(9));
  const b = openSqliteStore(file);
  await b.getGenesisValidatorsRoot();
  const aSyncs = heldSyncs(a, file); // a's fdatasync never finishes (the power is about to fail)
  const bSyncs = heldSyncs(b, file);
  const first = watch(a.checkAndRecordBlock(pubkey(1), 100, root(1)));
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(aSyncs.started, 1);
  const again = watch(b.checkAndRecordBlock(pubkey(1), 100, root(1)));
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(bSyncs.started, 1, "the repeat syncs the WAL (which holds a's frames too)");
  assert.equal(again.settled(), false);
  bSyncs.held.shift()!();
  const d = await again.p;
  assert.equal(d.allowed && d.repeat, true);
  assert.equal(first.settled(), false);
  aSyncs.held.shift()!();
  assert.equal((await first.p).allowed, true);
  await a.close();
  await b.close();
});

test("a watermark and an interchange import resolve only after their WAL sync", async () => {
  const file = dbFile();
  const store = openSqliteStore(file);
  await store.bindGenesisValidatorsRoot(root(9));
  const syncs = heldSyncs(store, file);
  const mark = watch(store.setWatermark({ kind: "high", epoch: 100 }));
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(mark.settled(), false);
  syncs.held.shift()!();
  await mark.p;
  const imp = watch(
    store.importInterchange({
      metadata: { interchange_format_version: "5", genesis_validators_root: "0x" + "09".repeat(32) },
      data: [{ pubkey: pubkey(5), signed_blocks: [{ slot: "3" }], signed_attestations: [] }],
    }),
  );
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(imp.settled(), false);
  syncs.held.shift()!();
  assert.equal((await imp.p).blocksImported, 1);
  assert.equal(syncs.started, 2);
  await store.close();
});

test("a failed WAL sync refuses the decisions waiting for it and every later one (503), until the store is reopened", async () => {
  const file = dbFile();
  const store = openSqliteStore(file);
  await store.bindGenesisValidatorsRoot(root(9));
  let told = 0;
  store.syncWal = (_fd, cb) => setImmediate(() => cb(Object.assign(new Error("EIO: i/o error"), { code: "EIO" })));
  const refused = (e: unknown): boolean => {
    assert.ok(e instanceof VigilError, String(e));
    assert.equal(e.kind, "unavailable");
    assert.equal(e.code, "SLASHING_DB_ERROR");
    assert.match(e.message, /EIO/);
    return true;
  };
  await assert.rejects(store.checkAndRecordAttestation(pubkey(1), 0, 1, root(1), () => told++), refused);
  assert.equal(told, 1, "the tentative decision was told, the durable one never came");
  // Fail closed: later requests are refused without deciding, even with a working disk again.
  store.syncWal = fs.fdatasync;
  await assert.rejects(store.checkAndRecordAttestation(pubkey(2), 0, 1, root(2), () => told++), refused);
  await assert.rejects(store.checkAndRecordBlock(pubkey(2), 5, root(2)), refused);
  await assert.rejects(store.setWatermark({ kind: "low", epoch: 1 }), refused);
  assert.equal(told, 1);
  await store.close();

  // Reopened, the store decides again. Only the sync was made to fail here, so the first commit
  // reached the WAL and still counts (after a real failure it may be lost: it was never signed).
  const again = openSqliteStore(file);
  assert.equal((await again.checkAndRecordAttestation(pubkey(2), 0, 1, root(2))).allowed, true);
  assert.equal((await again.checkAndRecordAttestation(pubkey(1), 0, 1, root(8))).allowed, false);
  await again.close();
});
