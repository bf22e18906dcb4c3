/**
 * SQLite slashing store: concurrency (two connections, and truly parallel worker threads),
 * durability across reopen, GVR binding, interchange validation and export.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import { VigilError } from "../src/errors.js";
import { parseInterchange, serializeInterchange } from "../src/slashing/interchange.js";
import { openSqliteStore } from "../src/slashing/store/sqlite.js";
import { retirementSemantics, watermarkSemantics, watermarkSettings } from "./helpers/watermarks.js";
import type { Decision, Interchange, SlashingRule } from "../src/slashing/types.js";
import { hex32, pubkey, root } from "./helpers/values.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-slashing-store-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const dbFile = (): string => path.join(tmp, `case-${++n}`, "nested", "slashing.sqlite");

const GVR = root(7);
const allowedCount = (ds: Decision[]): number => ds.filter((d) => d.allowed).length;

async function rejectsWith(p: Promise<unknown>, kind: string, code: string | RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof VigilError, String(e));
    assert.equal(e.kind, kind);
    if (typeof code === "string") assert.equal(e.code, code);
    else assert.match(e.message, code);
    return true;
  });
}

test("two connections racing conflicting messages: exactly one of each pair is allowed", async () => {
  const file = dbFile();
  const [s1, s2] = [openSqliteStore(file), openSqliteStore(file)];
  try {
    for (let r = 0; r < 50; r++) {
      const pk = pubkey(r);
      const blocks = await Promise.all([s1.checkAndRecordBlock(pk, 100, root(1)), s2.checkAndRecordBlock(pk, 100, root(2))]);
      assert.equal(allowedCount(blocks), 1, `round ${r} blocks`);
      const surround = await Promise.all([s2.checkAndRecordAttestation(pk, 10, 20, root(3)), s1.checkAndRecordAttestation(pk, 11, 19, root(4))]);
      assert.equal(allowedCount(surround), 1, `round ${r} surround`);
      const votes = await Promise.all([s1.checkAndRecordAttestation(pk, 30, 31, root(1)), s2.checkAndRecordAttestation(pk, 30, 31, root(2))]);
      assert.equal(allowedCount(votes), 1, `round ${r} double vote`);
      // The loser's view agrees with the winner's: the same message again is a repeat on either connection.
      const winner = blocks[0].allowed ? root(1) : root(2);
      assert.deepEqual(await s2.checkAndRecordBlock(pk, 100, winner), { allowed: true, repeat: true });
      assert.deepEqual(await s1.checkAndRecordBlock(pk, 100, winner), { allowed: true, repeat: true });
    }
  } finally {
    await s1.close();
    await s2.close();
  }
});

test("parallel worker threads (separate connections) never both sign a conflicting message", async () => {
  const file = dbFile();
  const init = openSqliteStore(file); // create the schema once, so the workers only race on signing
  await init.close();
  const WORKERS = 4;
  const ROUNDS = 150;
  const barrier = new Int32Array(new SharedArrayBuffer(4));
  const code = `
    const { workerData, parentPort } = require("node:worker_threads");
    import(workerData.mod).then(async ({ openSqliteStore }) => {
      const store = openSqliteStore(workerData.file);
      const root = new Uint8Array(32).fill(workerData.id + 1);
      Atomics.add(workerData.barrier, 0, 1);
      while (Atomics.load(workerData.barrier, 0) < workerData.workers) {}
      const out = [];
      for (let i = 0; i < workerData.rounds; i++) {
        const b = await store.checkAndRecordBlock(workerData.pubkey, i, root);
        const a = await store.checkAndRecordAttestation(workerData.pubkey, i, i + 1, root);
        out.push([b.allowed, a.allowed]);
      }
      await store.close();
      parentPort.postMessage(out);
    }).catch((e) => { throw e; });`;
  const mod = new URL("../src/slashing/store/sqlite.js", import.meta.url).href;
  const results = await Promise.all(
    Array.from(
      { length: WORKERS },
      (_, id) =>
        new Promise<[boolean, boolean][]>((resolve, reject) => {
          const w = new Worker(code, { eval: true, workerData: { mod, file, id, barrier, workers: WORKERS, rounds: ROUNDS, pubkey: pubkey(1) } });
          w.once("message", resolve);
          w.once("error", reject);
        }),
    ),
  );
  for (let i = 0; i < ROUNDS; i++) {
    assert.equal(results.filter((r) => r[i][0]).length, 1, `slot ${i}: exactly one block signed`);
    assert.equal(results.filter((r) => r[i][1]).length, 1, `target ${i + 1}: exactly one attestation signed`);
  }
  const store = openSqliteStore(file);
  try {
    const doc = await store.exportInterchange().catch(() => null); // GVR unbound: export refused
    assert.equal(doc, null);
    await store.bindGenesisValidatorsRoot(GVR);
    const [v] = (await store.exportInterchange()).data;
    assert.equal(v.signed_blocks.length, ROUNDS);
    assert.equal(v.signed_attestations.length, ROUNDS);
  } finally {
    await store.close();
  }
});

test("a closed and reopened store still refuses what it recorded (and allows exact repeats)", async () => {
  const file = dbFile();
  let store = openSqliteStore(file);
  const pk = pubkey(9);
  assert.deepEqual(await store.checkAndRecordBlock(pk, 64, root(1)), { allowed: true, repeat: false });
  assert.deepEqual(await store.checkAndRecordAttestation(pk, 5, 6, root(2)), { allowed: true, repeat: false });
  await store.close();
  await store.close(); // idempotent
  await rejectsWith(store.checkAndRecordBlock(pk, 65, root(1)), "unavailable", "SLASHING_DB_ERROR");

  store = openSqliteStore(file);
  try {
    const d = await store.checkAndRecordBlock(pk, 64, root(3));
    assert.equal(d.allowed, false);
    if (!d.allowed) assert.equal(d.rule, "DOUBLE_BLOCK_PROPOSAL");
    const low = await store.checkAndRecordBlock(pk, 63, root(3));
    assert.equal(!low.allowed && low.rule, "BLOCK_BELOW_LOW_WATERMARK");
    const vote = await store.checkAndRecordAttestation(pk, 4, 6, root(3));
    assert.equal(!vote.allowed && vote.rule, "DOUBLE_VOTE");
    const surrounding = await store.checkAndRecordAttestation(pk, 5, 7, root(3));
    assert.deepEqual(surrounding, { allowed: true, repeat: false });
    const surrounds = await store.checkAndRecordAttestation(pk, 4, 8, root(3));
    assert.equal(!surrounds.allowed && surrounds.rule, "SURROUNDING_VOTE");
    assert.deepEqual(await store.checkAndRecordBlock(pk, 64, root(1)), { allowed: true, repeat: true });
    assert.deepEqual(await store.checkAndRecordAttestation(pk, 5, 6, root(2)), { allowed: true, repeat: true });
  } finally {
    await store.close();
  }
});

test("database file: parent directory created, mode 0600, WAL, versioned schema", async () => {
  const file = dbFile();
  const store = openSqliteStore(file);
  await store.close();
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  const db = new Database(file, { readonly: true });
  try {
    assert.equal(db.pragma("journal_mode", { simple: true }), "wal");
    assert.equal(db.prepare("SELECT MAX(version) FROM schema_version").pluck().get(), 3);
    assert.deepEqual(db.prepare("SELECT version FROM schema_version ORDER BY version").pluck().all(), [1, 2, 3]);
    const indexes = db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'signed_%'").pluck().all();
    assert.deepEqual(new Set(indexes), new Set(["signed_blocks_validator_slot", "signed_attestations_validator_target", "signed_attestations_validator_source"]));
  } finally {
    db.close();
  }
  // Reopening applies no migration twice.
  const again = openSqliteStore(file);
  await again.close();
});

test("genesis validators root binding", async () => {
  const file = dbFile();
  const store = openSqliteStore(file);
  const other = openSqliteStore(file);
  try {
    assert.equal(await store.getGenesisValidatorsRoot(), null);
    await store.bindGenesisValidatorsRoot(GVR);
    await store.bindGenesisValidatorsRoot(GVR); // same root: no-op
    assert.deepEqual(await other.getGenesisValidatorsRoot(), GVR);
    await rejectsWith(other.bindGenesisValidatorsRoot(root(8)), "bad_request", "GENESIS_VALIDATORS_ROOT_MISMATCH");
    const doc: Interchange = { metadata: { interchange_format_version: "5", genesis_validators_root: hex32(8) }, data: [] };
    await rejectsWith(store.importInterchange(doc), "bad_request", "GENESIS_VALIDATORS_ROOT_MISMATCH");
    await rejectsWith(store.bindGenesisValidatorsRoot(new Uint8Array(31)), "bad_request", "INVALID_ROOT");
  } finally {
    await store.close();
    await other.close();
  }
});

test("import binds an unbound database; a refused import changes nothing", async () => {
  const store = openSqliteStore(dbFile());
  try {
    await rejectsWith(store.exportInterchange(), "bad_request", "GENESIS_VALIDATORS_ROOT_UNSET");
    const good = { metadata: { interchange_format_version: "5", genesis_validators_root: hex32(7) }, data: [] };
    await store.importInterchange(good as Interchange);
    assert.deepEqual(await store.getGenesisValidatorsRoot(), GVR);
    const bad = {
      metadata: good.metadata,
      data: [{ pubkey: pubkey(1), signed_blocks: [{ slot: "1" }, { slot: "9007199254740992" }], signed_attestations: [] }],
    };
    await rejectsWith(store.importInterchange(bad as Interchange), "bad_request", "INVALID_INTERCHANGE");
    assert.deepEqual((await store.exportInterchange()).data, []);
  } finally {
    await store.close();
  }
});

test("interchange validation is strict", () => {
  const base = () => ({
    metadata: { interchange_format_version: "5", genesis_validators_root: hex32(7) },
    data: [{ pubkey: pubkey(1), signed_blocks: [{ slot: "1" }], signed_attestations: [{ source_epoch: "0", target_epoch: "1" }] }],
  });
  type Doc = ReturnType<typeof base>;
  const bad: [string, (d: Doc) => void, string][] = [
    ["version 4", (d) => void (d.metadata.interchange_format_version = "4"), "INTERCHANGE_VERSION_UNSUPPORTED"],
    ["version as a number", (d) => void ((d.metadata as Record<string, unknown>).interchange_format_version = 5), "INVALID_INTERCHANGE"],
    ["no metadata", (d) => void delete (d as Partial<Doc>).metadata, "INVALID_INTERCHANGE"],
    ["short GVR", (d) => void (d.metadata.genesis_validators_root = "0x1234"), "INVALID_INTERCHANGE"],
    ["data not an array", (d) => void ((d as Record<string, unknown>).data = {}), "INVALID_INTERCHANGE"],
    ["pubkey without 0x", (d) => void (d.data[0].pubkey = d.data[0].pubkey.slice(2)), "INVALID_INTERCHANGE"],
    ["pubkey 47 bytes", (d) => void (d.data[0].pubkey = d.data[0].pubkey.slice(0, -2)), "INVALID_INTERCHANGE"],
    ["missing signed_blocks", (d) => void delete (d.data[0] as Partial<Doc["data"][0]>).signed_blocks, "INVALID_INTERCHANGE"],
    ["slot as a number", (d) => void ((d.data[0].signed_blocks[0] as Record<string, unknown>).slot = 1), "INVALID_INTERCHANGE"],
    ["negative slot", (d) => void (d.data[0].signed_blocks[0].slot = "-1"), "INVALID_INTERCHANGE"],
    ["hex slot", (d) => void (d.data[0].signed_blocks[0].slot = "0x10"), "INVALID_INTERCHANGE"],
    ["exponent slot", (d) => void (d.data[0].signed_blocks[0].slot = "1e3"), "INVALID_INTERCHANGE"],
    ["slot above 2^53-1", (d) => void (d.data[0].signed_blocks[0].slot = "9007199254740992"), "INVALID_INTERCHANGE"],
    ["epoch above 2^64", (d) => void (d.data[0].signed_attestations[0].target_epoch = "18446744073709551616"), "INVALID_INTERCHANGE"],
    ["missing source_epoch", (d) => void delete (d.data[0].signed_attestations[0] as Record<string, unknown>).source_epoch, "INVALID_INTERCHANGE"],
    ["31-byte signing root", (d) => void ((d.data[0].signed_blocks[0] as Record<string, unknown>).signing_root = "0x" + "ab".repeat(31)), "INVALID_INTERCHANGE"],
  ];
  for (const [name, mutate, code] of bad) {
    const doc = base();
    mutate(doc);
    assert.throws(() => parseInterchange(doc), (e: unknown) => e instanceof VigilError && e.kind === "bad_request" && e.code === code, name);
  }
  assert.throws(() => parseInterchange("{not json"), (e: unknown) => e instanceof VigilError && e.code === "INVALID_INTERCHANGE");

  // Normalisation: lower-case hex, canonical decimals, all-zero roots omitted, unknown fields dropped; max safe value accepted.
  const doc = base() as Record<string, unknown> & Doc;
  doc.data[0].pubkey = doc.data[0].pubkey.toUpperCase().replace("0X", "0x");
  doc.data[0].signed_blocks = [
    { slot: "0007", signing_root: "0x" + "AB".repeat(32) } as Doc["data"][0]["signed_blocks"][0],
    { slot: "9007199254740991", signing_root: "0x" + "00".repeat(32) } as Doc["data"][0]["signed_blocks"][0],
  ];
  doc.extra = true;
  const parsed = parseInterchange(JSON.stringify(doc));
  assert.deepEqual(parsed.data[0].signed_blocks, [{ slot: "7", signing_root: "0x" + "ab".repeat(32) }, { slot: "9007199254740991" }]);
  assert.equal(parsed.data[0].pubkey, pubkey(1));
  assert.equal("extra" in parsed, false);
  assert.deepEqual(JSON.parse(serializeInterchange(parsed)), parsed);
});

test("duplicate pubkey entries are merged; exact duplicates skipped; slashable records kept; export filters", async () => {
  const store = openSqliteStore(dbFile());
  try {
    const doc: Interchange = {
      metadata: { interchange_format_version: "5", genesis_validators_root: hex32(7) },
      data: [
        { pubkey: pubkey(1), signed_blocks: [{ slot: "10", signing_root: hex32(1) }], signed_attestations: [{ source_epoch: "1", target_epoch: "2" }] },
        { pubkey: pubkey(2), signed_blocks: [{ slot: "10" }], signed_attestations: [] },
        {
          pubkey: pubkey(1),
          signed_blocks: [{ slot: "10", signing_root: hex32(1) }, { slot: "10", signing_root: hex32(2) }],
          signed_attestations: [{ source_epoch: "1", target_epoch: "2" }, { source_epoch: "0", target_epoch: "3" }],
        },
      ],
    };
    assert.deepEqual(await store.importInterchange(doc), {
      validators: 2,
      validatorsAdded: 2,
      blocksImported: 3,
      blocksSkipped: 1,
      attestationsImported: 2,
      attestationsSkipped: 1,
    });
    // Slashable history (two roots at slot 10; 0→3 surrounds 1→2) is kept and makes checks stricter.
    const d = await store.checkAndRecordBlock(pubkey(1), 10, root(1));
    assert.equal(!d.allowed && d.rule, "DOUBLE_BLOCK_PROPOSAL");
    const only2 = await store.exportInterchange([pubkey(2).toUpperCase().replace("0X", "0x")]);
    assert.deepEqual(only2.data, [{ pubkey: pubkey(2), signed_blocks: [{ slot: "10" }], signed_attestations: [] }]);
    const all = await store.exportInterchange();
    assert.equal(all.data.length, 2);
    assert.deepEqual(all.data[0].signed_attestations, [
      { source_epoch: "1", target_epoch: "2" },
      { source_epoch: "0", target_epoch: "3" },
    ]);
  } finally {
    await store.close();
  }
});

test("records repeated inside the entry of a validator new to the database are imported once (NULL roots included)", async () => {
  const store = openSqliteStore(dbFile());
  try {
    const zero = "0x" + "00".repeat(32);
    const doc: Interchange = {
      metadata: { interchange_format_version: "5", genesis_validators_root: hex32(7) },
      data: [
        {
          pubkey: pubkey(3),
          signed_blocks: [{ slot: "5", signing_root: hex32(1) }, { slot: "5", signing_root: hex32(1).toUpperCase().replace("0X", "0x") }, { slot: "5", signing_root: hex32(2) }, { slot: "6" }, { slot: "6", signing_root: zero }],
          signed_attestations: [
            { source_epoch: "1", target_epoch: "2", signing_root: hex32(3) },
            { source_epoch: "01", target_epoch: "2", signing_root: hex32(3) },
            { source_epoch: "2", target_epoch: "1", signing_root: hex32(3) },
            { source_epoch: "1", target_epoch: "3" },
            { source_epoch: "1", target_epoch: "3", signing_root: zero },
          ],
        },
      ],
    };
    const expected = { validators: 1, validatorsAdded: 1, blocksImported: 3, blocksSkipped: 2, attestationsImported: 3, attestationsSkipped: 2 };
    assert.deepEqual(await store.importInterchange(doc), expected);
    // The same entry again goes through the database's records: everything is a repeat.
    assert.deepEqual(await store.importInterchange(doc), { ...expected, validatorsAdded: 0, blocksImported: 0, blocksSkipped: 5, attestationsImported: 0, attestationsSkipped: 5 });
    const out = await store.exportInterchange();
    assert.deepEqual(out.data[0].signed_blocks, [{ slot: "5", signing_root: hex32(1) }, { slot: "5", signing_root: hex32(2) }, { slot: "6" }]);
    assert.deepEqual(out.data[0].signed_attestations, [
      { source_epoch: "2", target_epoch: "1", signing_root: hex32(3) },
      { source_epoch: "1", target_epoch: "2", signing_root: hex32(3) },
      { source_epoch: "1", target_epoch: "3" },
    ]);
  } finally {
    await store.close();
  }
});

test("bad inputs to check-and-record are refused before touching the database", async () => {
  const store = openSqliteStore(dbFile());
  try {
    await rejectsWith(store.checkAndRecordBlock("0x1234", 1, null), "bad_request", "INVALID_PUBKEY");
    await rejectsWith(store.checkAndRecordBlock(pubkey(1), -1, null), "bad_request", "INVALID_NUMBER");
    await rejectsWith(store.checkAndRecordBlock(pubkey(1), 1.5, null), "bad_request", "INVALID_NUMBER");
    await rejectsWith(store.checkAndRecordBlock(pubkey(1), 2 ** 53, null), "bad_request", "INVALID_NUMBER");
    await rejectsWith(store.checkAndRecordAttestation(pubkey(1), 1, 2, new Uint8Array(31)), "bad_request", "INVALID_ROOT");
    // An all-zero root is stored as unknown: never a repeat.
    assert.deepEqual(await store.checkAndRecordBlock(pubkey(1), 5, new Uint8Array(32)), { allowed: true, repeat: false });
    assert.equal((await store.checkAndRecordBlock(pubkey(1), 5, new Uint8Array(32))).allowed, false);
    const sourceGtTarget = await store.checkAndRecordAttestation(pubkey(1), 3, 2, root(1));
    assert.equal(!sourceGtTarget.allowed && sourceGtTarget.rule, "SOURCE_GREATER_THAN_TARGET");
  } finally {
    await store.close();
  }
});

/** What a decision says: "allow", "repeat" or the refusing rule. */
const outcome = (d: Decision): "allow" | "repeat" | SlashingRule => (d.allowed ? (d.repeat ? "repeat" : "allow") : d.rule);

test("watermarks: set, replace, clear, display; invalid settings refused", async () => {
  const store = openSqliteStore(dbFile());
  try {
    await watermarkSettings(store);
  } finally {
    await store.close();
  }
});

test("watermarks: semantics through the SQLite store, seen by another connection, kept across reopen", async () => {
  const file = dbFile();
  const store = openSqliteStore(file);
  const other = openSqliteStore(file);
  try {
    await watermarkSemantics(store, other);
    await store.setWatermark({ kind: "high", pubkey: pubkey(5), slot: 10 });
    const d = await other.checkAndRecordBlock(pubkey(5), 10, root(1));
    assert.equal(outcome(d), "AT_OR_ABOVE_HIGH_WATERMARK", "another connection sees it at once");
  } finally {
    await store.close();
    await other.close();
  }
  const again = openSqliteStore(file);
  try {
    assert.equal(outcome(await again.checkAndRecordBlock(pubkey(5), 11, root(1))), "AT_OR_ABOVE_HIGH_WATERMARK");
    assert.equal((await again.getWatermarks()).length, 4);
  } finally {
    await again.close();
  }
});

test("retirement: semantics through the SQLite store, seen by another connection, kept across reopen", async () => {
  const file = dbFile();
  const store = openSqliteStore(file);
  const other = openSqliteStore(file);
  try {
    await retirementSemantics(store, other);
  } finally {
    await store.close();
    await other.close();
  }
  const again = openSqliteStore(file);
  try {
    assert.deepEqual((await again.getRetired()).map((r) => r.pubkey), [pubkey(22)]);
    assert.equal(outcome(await again.checkAndRecordBlock(pubkey(22), 1, root(1))), "VALIDATOR_RETIRED");
  } finally {
    await again.close();
  }
});

test("migration v1 → v3 adds the watermarks and retirement tables and keeps the history", async () => {
  const file = dbFile();
  const store = openSqliteStore(file);
  await store.checkAndRecordBlock(pubkey(1), 10, root(1));
  await store.close();
  // Turn it back into a v1 database (as an older Vigil left it).
  const db = new Database(file);
  db.exec("DROP TABLE watermarks; DROP TABLE retired_validators; DELETE FROM schema_version WHERE version >= 2;");
  db.close();
  const migrated = openSqliteStore(file);
  try {
    assert.equal(outcome(await migrated.checkAndRecordBlock(pubkey(1), 10, root(2))), "DOUBLE_BLOCK_PROPOSAL");
    await migrated.setWatermark({ kind: "high", slot: 11 });
    assert.equal(outcome(await migrated.checkAndRecordBlock(pubkey(1), 11, root(2))), "AT_OR_ABOVE_HIGH_WATERMARK");
    await migrated.retire([pubkey(1)]);
    assert.equal(outcome(await migrated.checkAndRecordBlock(pubkey(1), 9, root(2))), "VALIDATOR_RETIRED");
  } finally {
    await migrated.close();
  }
  const check = new Database(file, { readonly: true });
  try {
    assert.deepEqual(check.prepare("SELECT version FROM schema_version ORDER BY version").pluck().all(), [1, 2, 3]);
  } finally {
    check.close();
  }
});

test("a watermark set during a burst of group-committed decisions applies to every decision queued after it", async () => {
  const store = openSqliteStore(dbFile());
  try {
    const pk = pubkey(1);
    const before = [1, 2, 3].map((s) => store.checkAndRecordBlock(pk, s, root(1)));
    const set = store.setWatermark({ kind: "high", slot: 0 });
    await set;
    const after = [4, 5].map((s) => store.checkAndRecordBlock(pk, s, root(1)));
    assert.deepEqual((await Promise.all(after)).map(outcome), ["AT_OR_ABOVE_HIGH_WATERMARK", "AT_OR_ABOVE_HIGH_WATERMARK"]);
    // The decisions queued before the watermark were decided by then or after it: never allowed after it was set.
    for (const d of await Promise.all(before)) assert.ok(["allow", "AT_OR_ABOVE_HIGH_WATERMARK"].includes(outcome(d)));
  } finally {
    await store.close();
  }
});
