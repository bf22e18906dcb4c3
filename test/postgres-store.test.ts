/**
 * PostgreSQL slashing store: schema and migrations (once, with instances starting together), watermarks,
 * group commit against the SQLite engine as a reference (same decisions, same export), three instances
 * (one in a worker thread) racing conflicting requests, database failures ('unavailable', nothing
 * recorded, reconnection), the fence hook, and a throughput measurement.
 *
 * Needs the PostgreSQL server of test/helpers/pg.ts; the tests FAIL (never skip) if it is unreachable.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { Worker } from "node:worker_threads";
import { retirementSemantics, watermarkSemantics, watermarkSettings } from "./helpers/watermarks.js";
import pg from "pg";
import { VigilError } from "../src/errors.js";
import { openPostgresStore, PG_MAX_BATCH, PG_SCHEMA_VERSION, validatorLockKey } from "../src/slashing/store/postgres.js";
import type { PostgresSlashingStore } from "../src/slashing/store/postgres.js";
import { openSqliteStore } from "../src/slashing/store/sqlite.js";
import type { SlashingStore } from "../src/slashing/store/store.js";
import type { Decision, Interchange, SlashingRule, WatermarkSetting } from "../src/slashing/types.js";
import { PG_URL, PgScratch } from "./helpers/pg.js";
import { hex32, pubkey, rng, root } from "./helpers/values.js";

const scratch = new PgScratch("pgstore");
after(() => scratch.cleanup());
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-pg-store-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let fileCount = 0;
const sqliteFile = (): string => path.join(tmp, `ref-${++fileCount}`, "slashing.sqlite");

const GVR = root(7);
type Outcome = "allow" | "repeat" | SlashingRule;
const outcome = (d: Decision): Outcome => (d.allowed ? (d.repeat ? "repeat" : "allow") : d.rule);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
function shuffle<T>(r: () => number, xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}

async function rejectsWith(p: Promise<unknown>, kind: string, code: string): Promise<VigilError> {
  let caught: VigilError | undefined;
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof VigilError, `expected a VigilError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    assert.equal(e.code, code, e.message);
    caught = e;
    return true;
  });
  return caught as VigilError;
}

/**
 * Every slashable pair in an interchange document (none may ever be found in what Vigil signed):
 * two blocks at one slot, two attestations for one target (unless both have the same known root),
 * and surrounding votes.
 */
export function slashablePairs(doc: Interchange): string[] {
  const found: string[] = [];
  const same = (a?: string, b?: string): boolean => a !== undefined && a === b;
  for (const v of doc.data) {
    const bySlot = new Map<string, (string | undefined)[]>();
    for (const b of v.signed_blocks) {
      const roots = bySlot.get(b.slot) ?? [];
      for (const r of roots) if (!same(r, b.signing_root)) found.push(`${v.pubkey}: two blocks at slot ${b.slot}`);
      roots.push(b.signing_root);
      bySlot.set(b.slot, roots);
    }
    const atts = v.signed_attestations.map((a) => ({ s: Number(a.source_epoch), t: Number(a.target_epoch), r: a.signing_root }));
    for (let i = 0; i < atts.length; i++) {
      for (let j = i + 1; j < atts.length; j++) {
        const [a, b] = [atts[i], atts[j]];
        if (a.t === b.t && !same(a.r, b.r)) found.push(`${v.pubkey}: double vote ${a.s}→${a.t} / ${b.s}→${b.t}`);
        if ((a.s < b.s && b.t < a.t) || (b.s < a.s && a.t < b.t)) found.push(`${v.pubkey}: surround ${a.s}→${a.t} / ${b.s}→${b.t}`);
      }
    }
  }
  return found;
}

test("the PostgreSQL test server is reachable", async () => {
  await scratch.ping();
});

test("slashable-pair checker finds each kind of pair", () => {
  const doc: Interchange = {
    metadata: { interchange_format_version: "5", genesis_validators_root: hex32(7) },
    data: [
      {
        pubkey: pubkey(1),
        signed_blocks: [{ slot: "1", signing_root: hex32(1) }, { slot: "1", signing_root: hex32(1) }, { slot: "2" }, { slot: "2" }],
        signed_attestations: [
          { source_epoch: "1", target_epoch: "5", signing_root: hex32(1) },
          { source_epoch: "2", target_epoch: "4" },
          { source_epoch: "0", target_epoch: "5", signing_root: hex32(1) },
          { source_epoch: "6", target_epoch: "7", signing_root: hex32(1) },
          { source_epoch: "6", target_epoch: "7", signing_root: hex32(2) },
        ],
      },
    ],
  };
  assert.deepEqual(slashablePairs(doc).map((s) => s.split(": ")[1]), [
    "two blocks at slot 2",
    "surround 1→5 / 2→4",
    "surround 2→4 / 0→5",
    "double vote 6→7 / 6→7",
  ]);
});

// ───────────────────────────── schema and migrations ─────────────────────────────

test("schema: created in its own schema name, versioned, same tables and indexes as SQLite; reopening migrates nothing", async () => {
  const schema = scratch.schema();
  const store = await scratch.open({ schema });
  const admin = scratch.admin();
  const tables = await admin.query("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name", [schema]);
  assert.deepEqual(
    tables.rows.map((r) => r.table_name),
    ["metadata", "retired_validators", "schema_version", "signed_attestations", "signed_blocks", "validators", "watermarks"],
  );
  const indexes = await admin.query("SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND indexname LIKE 'signed_%'", [schema]);
  assert.deepEqual(
    new Set(indexes.rows.map((r) => r.indexname)),
    new Set(["signed_blocks_validator_slot", "signed_attestations_validator_target", "signed_attestations_validator_source", "signed_blocks_pkey", "signed_attestations_pkey"]),
  );
  const types = await admin.query(
    `SELECT table_name, column_name, data_type FROM information_schema.columns
       WHERE table_schema = $1 AND column_name IN ('slot', 'source_epoch', 'target_epoch', 'epoch', 'signing_root') ORDER BY 1, 2`,
    [schema],
  );
  for (const r of types.rows) assert.equal(r.data_type, r.column_name === "signing_root" ? "bytea" : "bigint", `${r.table_name}.${r.column_name}`);
  const versions = async (): Promise<number[]> =>
    (await admin.query(`SELECT version FROM "${schema}".schema_version ORDER BY version`)).rows.map((r) => r.version as number);
  assert.deepEqual(await versions(), [1, 2, 3]);
  assert.equal(PG_SCHEMA_VERSION, 3);
  await store.close();
  const again = await scratch.open({ schema });
  await again.close();
  assert.deepEqual(await versions(), [1, 2, 3]);
  await assert.rejects(openPostgresStore(PG_URL, { schema: "Bad-Name" }), (e: unknown) => e instanceof VigilError && e.code === "INVALID_SCHEMA");
});

test("migrations run exactly once when three instances open a new schema at once (five rounds)", async () => {
  for (let round = 0; round < 5; round++) {
    const schema = scratch.schema();
    const stores = await Promise.all([0, 1, 2].map(() => scratch.open({ schema })));
    const rows = (await scratch.admin().query(`SELECT version FROM "${schema}".schema_version ORDER BY version`)).rows;
    assert.deepEqual(rows.map((r) => r.version), [1, 2, 3], `round ${round}`);
    // All three work on the one schema.
    const ds = await Promise.all(stores.map((s, i) => s.checkAndRecordBlock(pubkey(1), 5, root(i + 1))));
    assert.equal(ds.filter((d) => d.allowed).length, 1);
    await Promise.all(stores.map((s) => s.close()));
  }
});

test("an older schema is migrated forward keeping its history; a newer one is refused", async () => {
  const schema = scratch.schema();
  const store = await scratch.open({ schema });
  await store.checkAndRecordBlock(pubkey(1), 10, root(1));
  await store.close();
  const admin = scratch.admin();
  await admin.query(`DROP TABLE "${schema}".watermarks; DROP TABLE "${schema}".retired_validators; DELETE FROM "${schema}".schema_version WHERE version >= 2`);
  const migrated = await scratch.open({ schema });
  assert.equal(outcome(await migrated.checkAndRecordBlock(pubkey(1), 10, root(2))), "DOUBLE_BLOCK_PROPOSAL");
  await migrated.setWatermark({ kind: "high", slot: 11 });
  assert.equal(outcome(await migrated.checkAndRecordBlock(pubkey(1), 11, root(2))), "AT_OR_ABOVE_HIGH_WATERMARK");
  await migrated.retire([pubkey(1)]);
  assert.equal(outcome(await migrated.checkAndRecordBlock(pubkey(1), 9, root(2))), "VALIDATOR_RETIRED");
  await migrated.close();
  await admin.query(`INSERT INTO "${schema}".schema_version (version) VALUES (99)`);
  await rejectsWith(openPostgresStore(PG_URL, { schema }), "unavailable", "SLASHING_DB_TOO_NEW");
});

// ───────────────────────────── API basics ─────────────────────────────

test("genesis validators root: binding, mismatch, and three instances racing to bind different roots", async () => {
  const schema = scratch.schema();
  const [a, b, c] = await Promise.all([0, 1, 2].map(() => scratch.open({ schema })));
  assert.equal(await a.getGenesisValidatorsRoot(), null);
  const results = await Promise.allSettled([a, b, c].map((s, i) => s.bindGenesisValidatorsRoot(root(10 + i))));
  assert.equal(results.filter((r) => r.status === "fulfilled").length, 1, "exactly one root is bound");
  for (const r of results) {
    if (r.status === "rejected") assert.ok(r.reason instanceof VigilError && r.reason.code === "GENESIS_VALIDATORS_ROOT_MISMATCH", String(r.reason));
  }
  const bound = await b.getGenesisValidatorsRoot();
  assert.ok(bound !== null);
  await c.bindGenesisValidatorsRoot(bound); // same root: no-op
  const other = bound[0] === 10 ? root(11) : root(10);
  await rejectsWith(a.bindGenesisValidatorsRoot(other), "bad_request", "GENESIS_VALIDATORS_ROOT_MISMATCH");
  const doc: Interchange = { metadata: { interchange_format_version: "5", genesis_validators_root: "0x" + Buffer.from(other).toString("hex") }, data: [] };
  await rejectsWith(a.importInterchange(doc), "bad_request", "GENESIS_VALIDATORS_ROOT_MISMATCH");
  await rejectsWith(a.bindGenesisValidatorsRoot(new Uint8Array(31)), "bad_request", "INVALID_ROOT");
});

test("import: binds, merges duplicate entries, skips exact duplicates, keeps slashable records; a refused import changes nothing", async () => {
  const store = await scratch.open();
  await rejectsWith(store.exportInterchange(), "bad_request", "GENESIS_VALIDATORS_ROOT_UNSET");
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
  assert.deepEqual(await store.getGenesisValidatorsRoot(), GVR);
  assert.equal(outcome(await store.checkAndRecordBlock(pubkey(1), 10, root(1))), "DOUBLE_BLOCK_PROPOSAL");
  const only2 = await store.exportInterchange([pubkey(2).toUpperCase().replace("0X", "0x"), pubkey(9)]);
  assert.deepEqual(only2.data, [{ pubkey: pubkey(2), signed_blocks: [{ slot: "10" }], signed_attestations: [] }]);
  const all = await store.exportInterchange();
  assert.deepEqual(all.data[0].signed_attestations, [
    { source_epoch: "1", target_epoch: "2" },
    { source_epoch: "0", target_epoch: "3" },
  ]);
  // Re-import: everything skipped. A bad document: nothing changes.
  const again = await store.importInterchange(all);
  assert.equal(again.blocksImported + again.attestationsImported + again.validatorsAdded, 0);
  const bad = { metadata: doc.metadata, data: [{ pubkey: pubkey(3), signed_blocks: [{ slot: "1" }, { slot: "9007199254740992" }], signed_attestations: [] }] };
  await rejectsWith(store.importInterchange(bad as Interchange), "bad_request", "INVALID_INTERCHANGE");
  assert.deepEqual(await store.exportInterchange(), all);
});

test("bad inputs are refused before touching the database; the largest safe numbers round-trip", async () => {
  const store = await scratch.open();
  await rejectsWith(store.checkAndRecordBlock("0x1234", 1, null), "bad_request", "INVALID_PUBKEY");
  await rejectsWith(store.checkAndRecordBlock(pubkey(1), -1, null), "bad_request", "INVALID_NUMBER");
  await rejectsWith(store.checkAndRecordBlock(pubkey(1), 2 ** 53, null), "bad_request", "INVALID_NUMBER");
  await rejectsWith(store.checkAndRecordAttestation(pubkey(1), 1, 2, new Uint8Array(31)), "bad_request", "INVALID_ROOT");
  assert.deepEqual(await store.checkAndRecordBlock(pubkey(1), 5, new Uint8Array(32)), { allowed: true, repeat: false });
  assert.equal(outcome(await store.checkAndRecordBlock(pubkey(1), 5, new Uint8Array(32))), "DOUBLE_BLOCK_PROPOSAL", "an all-zero root is unknown");
  const MAX = Number.MAX_SAFE_INTEGER;
  assert.equal(outcome(await store.checkAndRecordBlock(pubkey(1), MAX, root(1))), "allow");
  assert.equal(outcome(await store.checkAndRecordAttestation(pubkey(1), MAX - 1, MAX, root(1))), "allow");
  assert.equal(outcome(await store.checkAndRecordAttestation(pubkey(1), MAX, MAX, root(2))), "DOUBLE_VOTE");
  await store.setWatermark({ kind: "low", slot: MAX, epoch: MAX });
  assert.deepEqual(await store.getWatermarks(), [{ kind: "low", pubkey: null, slot: MAX, epoch: MAX }]);
  await store.bindGenesisValidatorsRoot(GVR);
  const [v] = (await store.exportInterchange()).data;
  assert.deepEqual(v.signed_blocks.map((b) => b.slot), ["5", String(MAX)]);
  assert.deepEqual(v.signed_attestations, [{ source_epoch: String(MAX - 1), target_epoch: String(MAX), signing_root: hex32(1) }]);
});

// ───────────────────────────── watermarks ─────────────────────────────

test("watermarks: set, replace, clear, display; invalid settings refused", async () => {
  await watermarkSettings(await scratch.open());
});

test("watermarks: semantics through the PostgreSQL store, across two instances", async () => {
  const schema = scratch.schema();
  await watermarkSemantics(await scratch.open({ schema }), await scratch.open({ schema }));
});

test("retirement: semantics through the PostgreSQL store, across two instances", async () => {
  const schema = scratch.schema();
  await retirementSemantics(await scratch.open({ schema }), await scratch.open({ schema }));
});

// ───────────────────────────── group commit vs the SQLite reference ─────────────────────────────

type Req = { t: "b"; pk: number; slot: number; root: number | null } | { t: "a"; pk: number; s: number; tg: number; root: number | null };
const rootOrNull = (r: number | null): Uint8Array | null => (r === null ? null : root(r));
const send = (store: SlashingStore, q: Req): Promise<Decision> =>
  q.t === "b" ? store.checkAndRecordBlock(pubkey(q.pk), q.slot, rootOrNull(q.root)) : store.checkAndRecordAttestation(pubkey(q.pk), q.s, q.tg, rootOrNull(q.root));

function randomRequests(r: () => number, n: number, validators: number): Req[] {
  return Array.from({ length: n }, (): Req => {
    const pk = 1 + Math.floor(r() * validators);
    const rt = pick(r, [1, 2, 3, null]);
    if (r() < 0.4) return { t: "b", pk, slot: Math.floor(r() * 40), root: rt };
    const s = Math.floor(r() * 30);
    return { t: "a", pk, s, tg: Math.max(0, s + Math.floor(r() * 8) - (r() < 0.05 ? 3 : 0)), root: rt };
  });
}

function randomHistory(r: () => number, validators: number): Interchange {
  return {
    metadata: { interchange_format_version: "5", genesis_validators_root: hex32(7) },
    data: Array.from({ length: validators }, (_, i) => ({
      pubkey: pubkey(i + 1),
      signed_blocks: Array.from({ length: Math.floor(r() * 4) }, () => {
        const rt = pick(r, [1, 2, null]);
        return rt === null ? { slot: String(5 + Math.floor(r() * 30)) } : { slot: String(5 + Math.floor(r() * 30)), signing_root: hex32(rt) };
      }),
      signed_attestations: Array.from({ length: Math.floor(r() * 4) }, () => {
        const s = 3 + Math.floor(r() * 20);
        const rt = pick(r, [1, 2, null]);
        const a = { source_epoch: String(s), target_epoch: String(s + 1 + Math.floor(r() * 5)) };
        return rt === null ? a : { ...a, signing_root: hex32(rt) };
      }),
    })),
  };
}

test("group commit: a burst decided in one PostgreSQL batch gets exactly the SQLite engine's decisions (random, seeded)", async () => {
  for (let seed = 1; seed <= 8; seed++) {
    const r = rng(seed);
    const maxBatch = [undefined, 7, 100][seed % 3];
    const pgStore = await scratch.open({ maxBatch });
    const lite = openSqliteStore(sqliteFile());
    try {
      const validators = 2 + (seed % 4);
      if (seed % 2 === 0) {
        const history = randomHistory(r, validators);
        assert.deepEqual(await pgStore.importInterchange(history), await lite.importInterchange(history), `seed ${seed}: import`);
      } else {
        await pgStore.bindGenesisValidatorsRoot(GVR);
        await lite.bindGenesisValidatorsRoot(GVR);
      }
      if (seed % 3 === 0) {
        const marks: WatermarkSetting[] = [
          { kind: "low", slot: 8, epoch: 4 },
          { kind: "low", pubkey: pubkey(1), slot: 12 },
          { kind: "high", pubkey: pubkey(2), slot: 30, epoch: 25 },
          { kind: "high", epoch: 33 },
        ];
        for (const w of marks) {
          await pgStore.setWatermark(w);
          await lite.setWatermark(w);
        }
      }
      // Three waves, each fired in one turn (batches of up to maxBatch), so later requests meet earlier records both
      // in the database (earlier batches) and in the batch (the in-transaction view of what it recorded so far).
      const waves = [300, 1500, 300];
      for (const [wave, n] of waves.entries()) {
        const reqs = randomRequests(r, n, validators);
        const [a, b] = await Promise.all([Promise.all(reqs.map((q) => send(pgStore, q))), Promise.all(reqs.map((q) => send(lite, q)))]);
        const diff = a.map((d, i) => [i, outcome(d), outcome(b[i])]).filter(([, x, y]) => x !== y);
        assert.deepEqual(diff.slice(0, 5), [], `seed ${seed} wave ${wave}: ${diff.length} decisions differ, e.g. ${JSON.stringify(diff.slice(0, 3).map(([i]) => reqs[i as number]))}`);
        assert.ok(a.some((d) => d.allowed) && a.some((d) => !d.allowed), "the burst mixes allowed and refused");
      }
      assert.deepEqual(await pgStore.exportInterchange(), await lite.exportInterchange(), `seed ${seed}: same history`);
      // the store's counters (metrics): every decision, and one transaction per batch of up to maxBatch
      const groups = waves.reduce((sum, n) => sum + Math.ceil(n / (maxBatch ?? PG_MAX_BATCH)), 0);
      assert.deepEqual(pgStore.stats, { decisions: 2100, groupCommits: groups, walSyncs: 0 }, `seed ${seed}`);
      assert.equal(lite.stats.decisions, 2100);
    } finally {
      await pgStore.close();
      await lite.close();
    }
  }
});

// ───────────────────────────── three instances racing ─────────────────────────────

/**
 * Fire `reqs` at `store` in chunks (each chunk in one turn, so batches of varied size form), without
 * waiting in between; resolve with each request's outcome. Self-contained: it also runs in a worker.
 */
async function fireRequests(store: SlashingStore, reqs: Req[], chunks: number[]): Promise<string[]> {
  const pk = (i: number): string => "0x" + i.toString(16).padStart(96, "0");
  const rt = (b: number | null): Uint8Array | null => (b === null ? null : new Uint8Array(32).fill(b));
  const all: Promise<string>[] = [];
  let at = 0;
  for (const n of chunks) {
    for (const q of reqs.slice(at, at + n)) {
      const p = q.t === "b" ? store.checkAndRecordBlock(pk(q.pk), q.slot, rt(q.root)) : store.checkAndRecordAttestation(pk(q.pk), q.s, q.tg, rt(q.root));
      all.push(p.then((d) => (d.allowed ? (d.repeat ? "repeat" : "allow") : d.rule)));
    }
    at += n;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return Promise.all(all);
}

test("three instances (one in a worker thread) racing conflicting requests: exactly one of each conflicting set is signed", async (t) => {
  const schema = scratch.schema();
  const VALIDATORS = 16;
  const r = rng(42);
  // Seed every validator so that no request falls below the lowest recorded slot/epochs.
  const seeder = await scratch.open({ schema });
  await seeder.bindGenesisValidatorsRoot(GVR);
  for (let v = 1; v <= VALIDATORS; v++) {
    assert.equal(outcome(await seeder.checkAndRecordBlock(pubkey(v), 0, root(0xee))), "allow");
    assert.equal(outcome(await seeder.checkAndRecordAttestation(pubkey(v), 0, 0, root(0xee))), "allow");
  }
  await seeder.close();

  // Conflicting sets: any two members are slashable together, so exactly one may be signed. Each set lives
  // in its own slot or 12-epoch window, so sets never interact. "same" sets are identical messages: all allowed.
  type Group = { kind: "slot" | "vote" | "surround" | "same"; members: Req[] };
  const groups: Group[] = [];
  for (let v = 1; v <= VALIDATORS; v++) {
    for (let s = 1; s <= 10; s++) {
      groups.push({ kind: "slot", members: [1, 2, 3, 4, 5, null].map((rt): Req => ({ t: "b", pk: v, slot: s, root: rt })) });
    }
    groups.push({ kind: "same", members: [0, 1, 2].map((): Req => ({ t: "b", pk: v, slot: 50, root: 0x55 })) });
    for (let g = 0; g < 16; g++) {
      const base = 2 + 12 * g;
      if (g % 2 === 0) {
        groups.push({ kind: "vote", members: [1, 2, 3, 4, null].map((rt, i): Req => ({ t: "a", pk: v, s: base + 4 - (i % 3), tg: base + 5, root: rt })) });
      } else {
        groups.push({ kind: "surround", members: [0, 1, 2, 3, 4].map((j): Req => ({ t: "a", pk: v, s: base + j, tg: base + 10 - j, root: 10 + j })) });
      }
    }
  }
  // Deal each set's members out to the three instances (the "same" set: one copy each), then shuffle each instance's list.
  const lists: Req[][] = [[], [], []];
  const where = new Map<Req, [number, number]>(); // request → [instance, index]
  for (const g of groups) {
    g.members.forEach((m, i) => lists[g.kind === "same" ? i : Math.floor(r() * 3)].push(m));
  }
  lists.forEach((l) => shuffle(r, l));
  lists.forEach((l, inst) => l.forEach((q, i) => where.set(q, [inst, i])));
  const chunks = lists.map((l) => {
    const out: number[] = [];
    for (let left = l.length; left > 0; ) {
      const n = Math.min(left, 1 + Math.floor(r() * 60));
      out.push(n);
      left -= n;
    }
    return out;
  });

  // Instance 0 in a worker thread (its own event loop and pool), instances 1 and 2 here (separate pools).
  const mod = new URL("../src/slashing/store/postgres.js", import.meta.url).href;
  const code = `
    const { workerData, parentPort } = require("node:worker_threads");
    const fireRequests = ${fireRequests.toString()};
    import(workerData.mod).then(async ({ openPostgresStore }) => {
      const store = await openPostgresStore(workerData.url, { schema: workerData.schema });
      parentPort.postMessage({ ready: true });
      await new Promise((resolve) => parentPort.once("message", resolve));
      const out = await fireRequests(store, workerData.reqs, workerData.chunks);
      await store.close();
      parentPort.postMessage({ out });
    }).catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));`;
  const worker = new Worker(code, { eval: true, workerData: { mod, url: PG_URL, schema, reqs: lists[0], chunks: chunks[0] } });
  const workerDone = new Promise<string[]>((resolve, reject) => {
    worker.on("message", (m: { ready?: boolean; out?: string[]; error?: string }) => {
      if (m.error) reject(new Error(m.error));
      else if (m.out) resolve(m.out);
    });
    worker.once("error", reject);
  });
  await new Promise<void>((resolve) => worker.once("message", () => resolve()));
  const [s1, s2] = await Promise.all([scratch.open({ schema }), scratch.open({ schema })]);
  const started = performance.now();
  worker.postMessage("go");
  const results = await Promise.all([workerDone, fireRequests(s1, lists[1], chunks[1]), fireRequests(s2, lists[2], chunks[2])]);
  const elapsed = performance.now() - started;
  await worker.terminate();

  const outcomeOf = (q: Req): string => {
    const [inst, i] = where.get(q) as [number, number];
    return results[inst][i];
  };
  const total = lists.reduce((n, l) => n + l.length, 0);
  const slashingRules = new Set(["DOUBLE_BLOCK_PROPOSAL", "DOUBLE_VOTE", "SURROUNDING_VOTE", "SURROUNDED_VOTE"]);
  for (const [gi, g] of groups.entries()) {
    const outs = g.members.map(outcomeOf);
    if (g.kind === "same") {
      assert.deepEqual(outs.filter((o) => o === "allow").length, 1, `set ${gi}: ${outs}`);
      assert.deepEqual(outs.filter((o) => o === "repeat").length, 2, `set ${gi}: ${outs}`);
      continue;
    }
    assert.equal(outs.filter((o) => o === "allow").length, 1, `set ${gi} (${g.kind}): exactly one signed: ${outs}`);
    for (const o of outs) if (o !== "allow") assert.ok(slashingRules.has(o), `set ${gi}: refused by a slashing rule, not ${o}`);
  }
  const verify = await scratch.open({ schema });
  const doc = await verify.exportInterchange();
  assert.deepEqual(slashablePairs(doc), []);
  const records = doc.data.reduce((n, v) => n + v.signed_blocks.length + v.signed_attestations.length, 0);
  assert.equal(records, groups.length + 2 * VALIDATORS, "one record per set, plus the seeds");
  t.diagnostic(`${total} requests in ${groups.length} conflicting sets from 3 instances: ${elapsed.toFixed(0)} ms`);
});

// ───────────────────────────── failures ─────────────────────────────

async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test("a database that cannot be reached: opening rejects 'unavailable'", async () => {
  const port = await closedPort();
  const started = performance.now();
  await rejectsWith(openPostgresStore(`postgres://postgres@127.0.0.1:${port}/test`, { schema: "never_created" }), "unavailable", "SLASHING_DB_UNAVAILABLE");
  assert.ok(performance.now() - started < 6000);
});

/** A TCP proxy to the test server that can be cut (every connection reset, port closed) and restored on the same port. */
class CuttableProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  constructor(private readonly target: { host: string; port: number }) {}
  async start(): Promise<void> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on("error", () => undefined);
        s.on("close", () => this.sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }
  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

test("the database goes away and comes back: 'unavailable' meanwhile (never allowed, never a crash), then the pool reconnects", async () => {
  const u = new URL(PG_URL);
  const proxy = new CuttableProxy({ host: u.hostname, port: Number(u.port || 5432) });
  await proxy.start();
  const viaProxy = new URL(PG_URL);
  viaProxy.port = String(proxy.port);
  const errors: Error[] = [];
  const store = await scratch.open({ onError: (e) => errors.push(e) }, viaProxy.href);
  try {
    assert.equal(outcome(await store.checkAndRecordBlock(pubkey(1), 1, root(1))), "allow");
    await Promise.all([1, 2, 3].map((i) => store.getWatermarks(pubkey(i)))); // several idle connections in the pool
    await proxy.cut();
    await sleep(100); // idle connections notice the reset: handled, no crash
    const down = await Promise.allSettled([store.checkAndRecordBlock(pubkey(1), 2, root(1)), store.checkAndRecordAttestation(pubkey(2), 1, 2, root(1))]);
    for (const d of down) {
      assert.equal(d.status, "rejected");
      if (d.status === "rejected") assert.ok(d.reason instanceof VigilError && d.reason.kind === "unavailable", String(d.reason));
    }
    await rejectsWith(store.exportInterchange(), "unavailable", "SLASHING_DB_UNAVAILABLE");
    await rejectsWith(store.getGenesisValidatorsRoot(), "unavailable", "SLASHING_DB_UNAVAILABLE");
    await rejectsWith(store.setWatermark({ kind: "high", slot: 1 }), "unavailable", "SLASHING_DB_UNAVAILABLE");
    await proxy.start(); // same port
    assert.equal(outcome(await store.checkAndRecordBlock(pubkey(1), 2, root(1))), "allow", "nothing was recorded while down");
    assert.equal(outcome(await store.checkAndRecordAttestation(pubkey(2), 1, 2, root(1))), "allow");
    assert.ok(errors.length > 0, "the lost idle connections were reported to onError");
  } finally {
    await store.close();
    await proxy.cut();
  }
});

/** Hold `pk`'s validator lock from another session; returns the holder's client (ROLLBACK to release) and its pid. */
async function holdValidatorLock(schema: string, pk: string): Promise<{ client: pg.PoolClient; pid: number }> {
  const client = await scratch.admin().connect();
  await client.query("BEGIN");
  await client.query("SELECT pg_advisory_xact_lock($1::int8)", [validatorLockKey(schema, pk).toString()]);
  const pid = (await client.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
  return { client, pid };
}

/** The backends blocked by session `pid` (polls until there are some). */
async function blockedBy(pid: number): Promise<number[]> {
  for (let i = 0; i < 200; i++) {
    const r = await scratch.admin().query("SELECT pid FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))", [pid]);
    if (r.rowCount) return r.rows.map((x) => x.pid as number);
    await sleep(10);
  }
  throw new Error("nothing got blocked");
}

test("connection killed mid-batch: every decision of the batch rejects 'unavailable', nothing is recorded, the next batch works", async () => {
  const schema = scratch.schema();
  const store = await scratch.open({ schema });
  await store.bindGenesisValidatorsRoot(GVR);
  const holder = await holdValidatorLock(schema, pubkey(1));
  const batch = [
    store.checkAndRecordBlock(pubkey(2), 10, root(1)),
    store.checkAndRecordBlock(pubkey(1), 10, root(1)),
    store.checkAndRecordAttestation(pubkey(3), 1, 2, root(1)),
  ];
  const settled = Promise.allSettled(batch);
  const [victim] = await blockedBy(holder.pid); // the batch waits for pubkey(1)'s lock, holding pubkey(2)'s and pubkey(3)'s
  await scratch.admin().query("SELECT pg_terminate_backend($1)", [victim]);
  for (const d of await settled) {
    assert.equal(d.status, "rejected");
    if (d.status === "rejected") assert.ok(d.reason instanceof VigilError && d.reason.kind === "unavailable", String(d.reason));
  }
  await holder.client.query("ROLLBACK");
  holder.client.release();
  assert.deepEqual((await store.exportInterchange()).data, [], "nothing recorded");
  const again = await Promise.all(batch.map((_, i) => (i === 2 ? store.checkAndRecordAttestation(pubkey(3), 1, 2, root(1)) : store.checkAndRecordBlock(pubkey(i === 0 ? 2 : 1), 10, root(1)))));
  assert.deepEqual(again.map(outcome), ["allow", "allow", "allow"]);
});

test("COMMIT fails: no decision of the batch resolves, nothing is recorded", async () => {
  const schema = scratch.schema();
  const store = await scratch.open({ schema });
  await store.bindGenesisValidatorsRoot(GVR);
  // A deferred constraint trigger: the error surfaces only at COMMIT.
  await scratch.admin().query(`
    CREATE FUNCTION "${schema}".refuse_666() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.slot = 666 THEN RAISE EXCEPTION 'commit refused by the test'; END IF; RETURN NULL; END $$;
    CREATE CONSTRAINT TRIGGER refuse_666 AFTER INSERT ON "${schema}".signed_blocks
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION "${schema}".refuse_666();`);
  const batch = await Promise.allSettled([
    store.checkAndRecordBlock(pubkey(1), 665, root(1)),
    store.checkAndRecordBlock(pubkey(2), 666, root(1)),
    store.checkAndRecordAttestation(pubkey(3), 1, 2, root(1)),
  ]);
  for (const d of batch) {
    assert.equal(d.status, "rejected");
    if (d.status === "rejected") {
      assert.ok(d.reason instanceof VigilError && d.reason.kind === "unavailable" && d.reason.code === "SLASHING_DB_UNAVAILABLE", String(d.reason));
      assert.match(d.reason.message, /commit refused by the test/);
    }
  }
  assert.deepEqual((await store.exportInterchange()).data, []);
  const next = await Promise.all([store.checkAndRecordBlock(pubkey(1), 665, root(1)), store.checkAndRecordAttestation(pubkey(3), 1, 2, root(1))]);
  assert.deepEqual(next.map(outcome), ["allow", "allow"]);
});

test("close mid-batch decides what is queued, then refuses; a pool ended under the store gives 'unavailable'", async () => {
  const store = await scratch.open();
  const burst = Array.from({ length: 50 }, (_, i) => store.checkAndRecordBlock(pubkey(1 + (i % 5)), 100 + i, root(1)));
  const closing = store.close();
  assert.deepEqual((await Promise.all(burst)).map(outcome), Array(50).fill("allow"));
  await closing;
  await store.close(); // idempotent
  await rejectsWith(store.checkAndRecordBlock(pubkey(1), 1, root(1)), "unavailable", "SLASHING_DB_ERROR");
  await rejectsWith(store.exportInterchange(), "unavailable", "SLASHING_DB_ERROR");

  const other = await scratch.open();
  const pending = other.checkAndRecordBlock(pubkey(1), 1, root(1));
  void other.pool.end();
  await rejectsWith(pending, "unavailable", "SLASHING_DB_UNAVAILABLE");
});

test("a watermark change waits for the batch in flight (in any instance) and binds every later batch", async () => {
  const schema = scratch.schema();
  const [a, b] = await Promise.all([scratch.open({ schema }), scratch.open({ schema })]);
  const holder = await holdValidatorLock(schema, pubkey(1));
  const inFlight = a.checkAndRecordBlock(pubkey(1), 10, root(1)); // holds the shared global lock, waits for pubkey(1)
  await blockedBy(holder.pid);
  let set = false;
  const setting = b.setWatermark({ kind: "high", slot: 0 }).then(() => (set = true));
  await sleep(300);
  assert.equal(set, false, "the watermark waits for the batch in flight");
  await holder.client.query("ROLLBACK");
  holder.client.release();
  assert.equal(outcome(await inFlight), "allow");
  await setting;
  assert.equal(outcome(await a.checkAndRecordBlock(pubkey(1), 11, root(1))), "AT_OR_ABOVE_HIGH_WATERMARK");
  assert.equal(outcome(await b.checkAndRecordBlock(pubkey(2), 1, root(1))), "AT_OR_ABOVE_HIGH_WATERMARK");
});

// ───────────────────────────── fence hook ─────────────────────────────

test("fence: its statement runs inside the batch transaction after the locks, in the first round trip; a refusal rejects the whole batch and records nothing", async () => {
  const store = await scratch.open({ poolSize: 1 });
  await store.bindGenesisValidatorsRoot(GVR);
  const seen: number[] = [];
  const standby = new VigilError("unavailable", "STANDBY", "this instance is a standby (test fence)");
  // Transaction-scoped advisory locks are held when it runs: it is inside the batch transaction, after its locks.
  const countLocks = "SELECT count(*)::int AS locks FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory' AND granted";
  store.setFence({
    statement: () => countLocks,
    verify: (r) => {
      seen.push(r.rows[0].locks as number);
      throw standby;
    },
  });
  const batch = await Promise.allSettled([
    store.checkAndRecordBlock(pubkey(1), 1, root(1)),
    store.checkAndRecordBlock(pubkey(2), 1, root(1)),
    store.checkAndRecordAttestation(pubkey(1), 0, 1, root(1)),
  ]);
  assert.deepEqual(batch.map((d) => d.status === "rejected" && d.reason), [standby, standby, standby], "rejected with the fence's own error");
  assert.deepEqual(seen, [3], "one check per batch, holding the global lock and both validators' locks");

  // Refused before the transaction (no fencing number): the fence's error.
  store.setFence({
    statement: () => {
      throw standby;
    },
    verify: () => undefined,
  });
  await rejectsWith(store.checkAndRecordBlock(pubkey(1), 1, root(1)), "unavailable", "STANDBY");
  // The lease table gone: the database's error, as unavailable.
  store.setFence({ statement: () => "SELECT 1 FROM no_such_lease_table", verify: () => undefined });
  await rejectsWith(store.checkAndRecordBlock(pubkey(1), 1, root(1)), "unavailable", "SLASHING_DB_UNAVAILABLE");

  let calls = 0;
  store.setFence({ statement: () => "SELECT 1", verify: (r) => void (calls += r.rowCount ?? 0) });
  // Two round trips, as without a fence: BEGIN + locks + fence + history, then the inserts + COMMIT.
  const query = pg.Client.prototype.query;
  let roundTrips = 0;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    roundTrips++;
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof query;
  try {
    assert.equal(outcome(await store.checkAndRecordBlock(pubkey(1), 1, root(1))), "allow");
  } finally {
    pg.Client.prototype.query = query;
  }
  assert.equal(roundTrips, 2);
  assert.equal(calls, 1);
  store.setFence(null);
  assert.equal(outcome(await store.checkAndRecordBlock(pubkey(2), 1, root(1))), "allow");
  assert.equal(calls, 1);
  const doc = await store.exportInterchange();
  assert.deepEqual(doc.data.map((v) => [v.pubkey, v.signed_blocks.length, v.signed_attestations.length]), [
    [pubkey(1), 1, 0],
    [pubkey(2), 1, 0],
  ]);
});

// ───────────────────────────── throughput ─────────────────────────────

test("throughput: 10k check-and-record decisions over 100 validators from one instance", async (t) => {
  const store: PostgresSlashingStore = await scratch.open({ poolSize: 2 });
  const V = 100;
  const PER = 100;
  // (a) every request at once: group commit takes up to PG_MAX_BATCH (512) per transaction.
  let started = performance.now();
  const all: Promise<Decision>[] = [];
  for (let e = 1; e <= PER; e++) for (let v = 1; v <= V; v++) all.push(store.checkAndRecordAttestation(pubkey(v), e - 1, e, root(e % 250)));
  const burst = await Promise.all(all);
  const burstMs = performance.now() - started;
  assert.ok(burst.every((d) => d.allowed && !d.repeat));
  // (b) 100 validators, each a sequential stream (await each decision): the batches form by themselves.
  started = performance.now();
  await Promise.all(
    Array.from({ length: V }, async (_, i) => {
      for (let s = 1; s <= PER; s++) assert.equal((await store.checkAndRecordBlock(pubkey(i + 1), s, root(1))).allowed, true);
    }),
  );
  const streamsMs = performance.now() - started;
  // (c) one request at a time: the latency of one transaction.
  started = performance.now();
  for (let s = 1; s <= 200; s++) await store.checkAndRecordAttestation(pubkey(V + 1), s - 1, s, root(1));
  const serialMs = performance.now() - started;
  const rate = (n: number, ms: number): string => `${Math.round((n * 1000) / ms)}/s`;
  t.diagnostic(`burst: ${V * PER} attestations in ${burstMs.toFixed(0)} ms (${rate(V * PER, burstMs)})`);
  t.diagnostic(`${V} sequential streams: ${V * PER} blocks in ${streamsMs.toFixed(0)} ms (${rate(V * PER, streamsMs)})`);
  t.diagnostic(`serial: 200 attestations in ${serialMs.toFixed(0)} ms (${(serialMs / 200).toFixed(2)} ms each)`);
});

test("batch statements: prepared once per connection, one generic plan each, index lookups even when first planned on an empty database", async () => {
  const store = await scratch.open({ poolSize: 1 }); // one connection: the queries below run on the batches' session
  await store.bindGenesisValidatorsRoot(GVR);
  // The first batch runs on a new, empty schema: its plans are made now and kept.
  for (let round = 0; round < 3; round++) {
    const ds = await Promise.all([
      store.checkAndRecordBlock(pubkey(1), 10 + round, root(1)),
      store.checkAndRecordAttestation(pubkey(2), round, round + 1, root(2)),
      store.checkAndRecordAttestation(pubkey(3), round, round + 1, root(3)),
    ]);
    assert.deepEqual(ds.map(outcome), ["allow", "allow", "allow"]);
  }
  const c = await store.pool.connect();
  try {
    const rows = (await c.query("SELECT name, generic_plans, custom_plans FROM pg_prepared_statements WHERE name LIKE 'vigil_%' ORDER BY name")).rows as {
      name: string;
      generic_plans: string;
      custom_plans: string;
    }[];
    const names = rows.map((r) => r.name);
    for (const n of ["vigil_attestation_history", "vigil_block_history", "vigil_insert_attestations", "vigil_insert_blocks", "vigil_lock_validators", "vigil_watermarks"]) {
      assert.ok(names.includes(n), `${n} is prepared (${names.join(", ")})`);
    }
    const history = rows.find((r) => r.name === "vigil_attestation_history")!;
    assert.equal(Number(history.custom_plans), 0, "never planned per batch");
    assert.ok(Number(history.generic_plans) >= 3, `one cached generic plan, used by every batch (${history.generic_plans})`);
    // The cached plans (made on an empty database) look rows up through the indexes.
    await c.query("BEGIN");
    try {
      await c.query("SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off");
      const pk = `'{${pubkey(2)}}'::text[]`;
      for (const stmt of [
        `vigil_attestation_history(${pk}, ${pk}, '{7}'::int8[], '{8}'::int8[])`,
        `vigil_block_history(${pk}, ${pk}, '{7}'::int8[])`,
        `vigil_insert_attestations(${pk}, '{7}'::int8[], '{8}'::int8[], ARRAY[NULL]::bytea[])`,
      ]) {
        const plan = ((await c.query(`EXPLAIN EXECUTE ${stmt}`)).rows as { "QUERY PLAN": string }[]).map((r) => r["QUERY PLAN"]).join("\n");
        assert.doesNotMatch(plan, /Seq Scan on (validators|signed_)/, `${stmt}:\n${plan}`);
        assert.match(plan, /Index/, `${stmt}:\n${plan}`);
      }
    } finally {
      await c.query("ROLLBACK");
    }
  } finally {
    c.release();
  }
});
