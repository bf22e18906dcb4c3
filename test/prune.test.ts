/**
 * Pruning old slashing-protection history: the plan (a table), the safety property over random
 * histories (whatever the pruned history allows, the full history allows), and both engines
 * (what is deleted, what stays, decisions afterwards, racing signers), and the CLI.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { VigilError } from "../src/errors.js";
import { checkAttestation, checkBlock, prunePlan, type PruneView } from "../src/slashing/rules.js";
import { openSqliteStore } from "../src/slashing/store/sqlite.js";
import type { SlashingStore } from "../src/slashing/store/store.js";
import type { Decision, Interchange } from "../src/slashing/types.js";
import { runVigil, spawnVigil, stopVigil } from "./helpers/cli.js";
import { PG_URL, PgScratch } from "./helpers/pg.js";
import { describeViolations, findSlashable } from "./helpers/slashable.js";
import { hex32, pubkey, rng, root } from "./helpers/values.js";

const scratch = new PgScratch("prune");
after(() => scratch.cleanup());
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-prune-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const sqliteFile = (): string => path.join(tmp, `db-${++n}`, "slashing-protection.sqlite");

const GVR = hex32(7);
const outcome = (d: Decision): string => (d.allowed ? (d.repeat ? "repeat" : "allow") : d.rule);

type Att = { source: number; target: number; root: number | null };
type Block = { slot: number; root: number | null };

test("prunePlan: what may go for one validator (table)", () => {
  const keep = { epochs: 10, slots: 320 };
  const view = (v: Partial<PruneView>): PruneView => ({ maxSlot: null, maxTarget: null, prunedMaxSource: null, keptMinSource: null, ...v });
  const rows: [string, PruneView, ReturnType<typeof prunePlan>][] = [
    ["no history", view({}), { blockCut: null, attestationCut: null, keptAll: false }],
    ["young history: nothing below the cut", view({ maxSlot: 300, maxTarget: 9 }), { blockCut: null, attestationCut: null, keptAll: false }],
    ["blocks only", view({ maxSlot: 1000 }), { blockCut: 680, attestationCut: null, keptAll: false }],
    ["exactly at the cut", view({ maxSlot: 320, maxTarget: 10, prunedMaxSource: 0, keptMinSource: 9 }), { blockCut: 0, attestationCut: 0, keptAll: false }],
    ["normal chain", view({ maxTarget: 100, prunedMaxSource: 89, keptMinSource: 90 }), { blockCut: null, attestationCut: 90, keptAll: false }],
    ["equal sources (non-finality)", view({ maxTarget: 100, prunedMaxSource: 40, keptMinSource: 40 }), { blockCut: null, attestationCut: 90, keptAll: false }],
    ["a kept vote surrounds a deleted one", view({ maxTarget: 100, prunedMaxSource: 41, keptMinSource: 40 }), { blockCut: null, attestationCut: null, keptAll: true }],
  ];
  for (const [name, v, want] of rows) assert.deepEqual(prunePlan(v, keep), want, name);
});

/** The decision for a probe against a list of records, through the same rules the stores use. */
function decideAttestation(atts: Att[], p: Att): Decision {
  const same = atts.filter((a) => a.target === p.target).map((a) => (a.root === null ? null : root(a.root)));
  return checkAttestation(p.source, p.target, p.root === null ? null : root(p.root), {
    sameTarget: same,
    surroundsExisting: atts.some((a) => a.source > p.source && a.target < p.target),
    surroundedByExisting: atts.some((a) => a.source < p.source && a.target > p.target),
    minSource: atts.length ? Math.min(...atts.map((a) => a.source)) : null,
    minTarget: atts.length ? Math.min(...atts.map((a) => a.target)) : null,
  });
}
function decideBlock(blocks: Block[], p: Block): Decision {
  const same = blocks.filter((b) => b.slot === p.slot).map((b) => (b.root === null ? null : root(b.root)));
  return checkBlock(p.slot, p.root === null ? null : root(p.root), { sameSlot: same, minSlot: blocks.length ? Math.min(...blocks.map((b) => b.slot)) : null });
}

/** Apply prunePlan to in-memory records, as the stores do. */
function pruneRecords(blocks: Block[], atts: Att[], keep: { epochs: number; slots: number }): { blocks: Block[]; atts: Att[] } {
  const maxTarget = atts.length ? Math.max(...atts.map((a) => a.target)) : null;
  const cut = maxTarget === null ? null : maxTarget - keep.epochs;
  const below = cut === null ? [] : atts.filter((a) => a.target <= cut);
  const above = cut === null ? atts : atts.filter((a) => a.target > cut);
  const plan = prunePlan(
    {
      maxSlot: blocks.length ? Math.max(...blocks.map((b) => b.slot)) : null,
      maxTarget,
      prunedMaxSource: below.length ? Math.max(...below.map((a) => a.source)) : null,
      keptMinSource: above.length ? Math.min(...above.map((a) => a.source)) : null,
    },
    keep,
  );
  return {
    blocks: plan.blockCut === null ? blocks : blocks.filter((b) => b.slot > plan.blockCut!),
    atts: plan.attestationCut === null ? atts : atts.filter((a) => a.target > plan.attestationCut!),
  };
}

test("safety: over random histories (slashable ones too), whatever the pruned history allows the full one allows", () => {
  let probes = 0;
  let pruned = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const r = rng(seed);
    const span = 5 + Math.floor(r() * 40);
    const atts: Att[] = Array.from({ length: 1 + Math.floor(r() * 12) }, () => {
      const source = Math.floor(r() * span);
      return { source, target: source + Math.floor(r() * 6), root: r() < 0.3 ? null : 1 + Math.floor(r() * 2) };
    });
    const blocks: Block[] = Array.from({ length: Math.floor(r() * 6) }, () => ({ slot: Math.floor(r() * span * 4), root: r() < 0.3 ? null : 1 + Math.floor(r() * 2) }));
    const keep = { epochs: 1 + Math.floor(r() * 8), slots: 1 + Math.floor(r() * 30) };
    const after = pruneRecords(blocks, atts, keep);
    pruned += atts.length - after.atts.length + blocks.length - after.blocks.length;
    for (let i = 0; i < 200; i++) {
      const source = Math.floor(r() * (span + 8));
      const a: Att = { source, target: source + Math.floor(r() * 8), root: r() < 0.3 ? null : 1 + Math.floor(r() * 2) };
      const full = decideAttestation(atts, a);
      const cut = decideAttestation(after.atts, a);
      if (cut.allowed) assert.ok(full.allowed, `seed ${seed}: pruned allows ${JSON.stringify(a)}, full refuses (${outcome(full)}); ${JSON.stringify({ atts, keep })}`);
      const b: Block = { slot: Math.floor(r() * (span * 4 + 20)), root: r() < 0.3 ? null : 1 + Math.floor(r() * 2) };
      if (decideBlock(after.blocks, b).allowed) assert.ok(decideBlock(blocks, b).allowed, `seed ${seed}: pruned allows block ${JSON.stringify(b)}`);
      probes += 2;
    }
  }
  assert.ok(pruned > 500, `the random histories pruned something (${pruned} records)`);
  assert.ok(probes >= 100_000);
});

/** A history: validator 1 attests every epoch 1..60 and proposes every 8th slot; validator 2 holds an
 *  imported slashable pair (a kept vote surrounds an old one); validator 3 is young. */
function history(): Interchange {
  const atts1 = Array.from({ length: 60 }, (_, i) => ({ source_epoch: String(i), target_epoch: String(i + 1), signing_root: hex32(1) }));
  const blocks1 = Array.from({ length: 60 }, (_, i) => ({ slot: String(i * 8 * 4), signing_root: hex32(2) }));
  return {
    metadata: { interchange_format_version: "5", genesis_validators_root: GVR },
    data: [
      { pubkey: pubkey(1), signed_blocks: blocks1, signed_attestations: atts1 },
      {
        pubkey: pubkey(2),
        signed_blocks: [],
        signed_attestations: [
          { source_epoch: "30", target_epoch: "31" },
          { source_epoch: "10", target_epoch: "60" },
        ],
      },
      { pubkey: pubkey(3), signed_blocks: [{ slot: "5" }], signed_attestations: [{ source_epoch: "2", target_epoch: "3" }] },
    ],
  };
}

async function pruneScenario(store: SlashingStore, other: SlashingStore): Promise<void> {
  await store.importInterchange(history());
  const keep = { epochs: 10, slots: 10 * 32 };
  await assert.rejects(store.prune({ epochs: 0, slots: 1 }), (e: unknown) => e instanceof VigilError && e.code === "INVALID_PRUNE");
  await assert.rejects(store.prune({ epochs: 1.5, slots: 1 }), (e: unknown) => e instanceof VigilError && e.code === "INVALID_PRUNE");
  await assert.rejects(store.prune(keep, ["0x12"]), (e: unknown) => e instanceof VigilError && e.code === "INVALID_PUBKEY");

  // Only validator 3 asked for: it is young, nothing goes.
  assert.deepEqual(await store.prune(keep, [pubkey(3)]), { validators: 1, blocksDeleted: 0, attestationsDeleted: 0, kept: [] });

  const summary = await store.prune(keep);
  // Validator 1: targets 1..60, keep > 50: 50 deleted; slots 0..1888 step 32, keep > 1888 - 320 = 1568: slots 0..1568 = 50 deleted.
  assert.deepEqual(summary, { validators: 3, blocksDeleted: 50, attestationsDeleted: 50, kept: [pubkey(2)] });
  assert.deepEqual(await store.prune(keep), { validators: 3, blocksDeleted: 0, attestationsDeleted: 0, kept: [pubkey(2)] }, "idempotent");

  const doc = await other.exportInterchange(); // another connection / instance sees the same history
  const v1 = doc.data.find((v) => v.pubkey === pubkey(1))!;
  assert.deepEqual(v1.signed_attestations.map((a) => Number(a.target_epoch)), Array.from({ length: 10 }, (_, i) => 51 + i));
  assert.deepEqual(v1.signed_blocks.map((b) => Number(b.slot)), Array.from({ length: 10 }, (_, i) => (50 + i) * 32));
  assert.equal(doc.data.find((v) => v.pubkey === pubkey(2))!.signed_attestations.length, 2, "the slashable history is kept whole");
  assert.deepEqual(findSlashable({ data: [v1] }), []);

  // What the deleted records refused is still refused; the next duty signs.
  const cases: [string, Promise<Decision>, string][] = [
    ["double vote on a deleted target", store.checkAndRecordAttestation(pubkey(1), 50, 50, root(9)), "TARGET_BELOW_LOW_WATERMARK"],
    ["repeat of a deleted vote", store.checkAndRecordAttestation(pubkey(1), 19, 20, root(1)), "SOURCE_BELOW_LOW_WATERMARK"],
    ["surrounding deleted (and kept) votes", store.checkAndRecordAttestation(pubkey(1), 5, 61, root(3)), "SURROUNDING_VOTE"],
    ["block at a deleted slot", store.checkAndRecordBlock(pubkey(1), 640, root(5)), "BLOCK_BELOW_LOW_WATERMARK"],
    ["surrounding the kept old vote of validator 2", store.checkAndRecordAttestation(pubkey(2), 20, 61, root(3)), "SURROUNDING_VOTE"],
    ["next attestation", store.checkAndRecordAttestation(pubkey(1), 60, 61, root(3)), "allow"],
    ["next block", store.checkAndRecordBlock(pubkey(1), 1920, root(5)), "allow"],
  ];
  for (const [name, d, want] of cases) assert.equal(outcome(await d), want, name);

  // Pruning while validators sign: every signature given is in the history afterwards unless pruning may take it, and nothing slashable.
  const signed: { pk: string; target: number }[] = [];
  const validator = async (pk: string): Promise<void> => {
    for (let t = 100; t < 160; t++) if ((await store.checkAndRecordAttestation(pk, t - 1, t, root(4))).allowed) signed.push({ pk, target: t });
  };
  const pruning = async (): Promise<void> => {
    for (let i = 0; i < 6; i++) await other.prune({ epochs: 5, slots: 1 });
  };
  await Promise.all([...[10, 11, 12, 13, 14].map((i) => validator(pubkey(i))), pruning(), pruning()]);
  assert.equal(signed.length, 300, "every duty signed while pruning ran");
  const end = await store.exportInterchange();
  const violations = findSlashable(end).filter((v) => v.pubkey !== pubkey(2));
  assert.deepEqual(violations, [], describeViolations(violations));
  for (const s of signed.filter((x) => x.target >= 160 - 5)) {
    const v = end.data.find((d) => d.pubkey === s.pk)!;
    assert.ok(v.signed_attestations.some((a) => Number(a.target_epoch) === s.target), `${s.pk} target ${s.target} is recorded`);
  }
}

describe("pruning on each engine", () => {
  test("SQLite (two connections)", async () => {
    const file = sqliteFile();
    const a = openSqliteStore(file);
    const b = openSqliteStore(file);
    try {
      await pruneScenario(a, b);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("PostgreSQL (two instances)", async () => {
    const schema = scratch.schema();
    await pruneScenario(await scratch.open({ schema }), await scratch.open({ schema }));
  });
});

test("vigil slashing prune: the CLI on a data dir; no database is NO_DATABASE", async () => {
  const dataDir = path.join(tmp, "cli");
  const file = path.join(tmp, "history.json");
  fs.writeFileSync(file, JSON.stringify(history()));
  const imported = await runVigil(["slashing", "import", file, "--data-dir", dataDir]);
  assert.equal(imported.code, 0, imported.stderr);
  const res = await runVigil(["slashing", "prune", "--keep-epochs", "10", "--data-dir", dataDir]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /pruned 3 validators \(kept each one's newest 10 epochs\): 50 blocks and 50 attestations deleted/);
  assert.match(res.stdout, new RegExp(`kept every attestation of ${pubkey(2)}`));
  const bad = await runVigil(["slashing", "prune", "--keep-epochs", "0", "--data-dir", dataDir]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /INVALID_PRUNE/);
  const none = await runVigil(["slashing", "prune", "--keep-epochs", "10", "--data-dir", path.join(tmp, "nothing")]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /NO_DATABASE/);
});

test("vigil start --prune-keep-epochs prunes once started (and every 12 hours)", async () => {
  const dataDir = path.join(tmp, "start");
  const file = path.join(tmp, "history-start.json");
  fs.writeFileSync(file, JSON.stringify(history()));
  assert.equal((await runVigil(["slashing", "import", file, "--data-dir", dataDir])).code, 0);
  await assert.rejects(spawnVigil(["--network", "minimal", "--data-dir", dataDir, "--prune-keep-epochs", "0"]), /prune-keep-epochs must be a whole number >= 1/);
  const vigil = await spawnVigil(["--network", "minimal", "--data-dir", dataDir, "--prune-keep-epochs", "10"]);
  try {
    for (let i = 0; i < 100 && !/pruned the slashing-protection history/.test(vigil.output()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(vigil.output(), /pruned the slashing-protection history/);
    assert.match(vigil.output(), new RegExp(`"pubkey":"${pubkey(2)}".*kept every attestation`));
    // the vault process reports it on /metrics, with the counts it logged
    const logged = JSON.parse(vigil.output().split("\n").find((l) => l.includes("pruned the slashing-protection history"))!) as { blocksDeleted: number; attestationsDeleted: number };
    assert.ok(logged.blocksDeleted > 0 && logged.attestationsDeleted > 0);
    const metrics = await (await fetch(`${vigil.url}/metrics`)).text();
    assert.match(metrics, /^vigil_prune_runs_succeeded_total 1$/m);
    assert.match(metrics, /^vigil_prune_runs_failed_total 0$/m);
    assert.match(metrics, new RegExp(`^vigil_prune_records_deleted_total ${logged.blocksDeleted + logged.attestationsDeleted}$`, "m"));
    const at = Number(/^vigil_prune_last_success_timestamp_seconds (\S+)$/m.exec(metrics)?.[1]);
    assert.ok(Math.abs(at - Date.now() / 1000) < 60, `last prune at ${at}`);
  } finally {
    await stopVigil(vigil.proc);
  }
  const out = path.join(tmp, "after-start.json");
  assert.equal((await runVigil(["slashing", "export", out, "--data-dir", dataDir])).code, 0);
  const v1 = (JSON.parse(fs.readFileSync(out, "utf8")) as Interchange).data.find((v) => v.pubkey === pubkey(1))!;
  assert.equal(v1.signed_attestations.length, 10);
  assert.equal(v1.signed_blocks.length, 3, "minimal preset: 10 epochs are 80 slots");
});

test("in an HA group only the active instance prunes the shared history; the standby leaves it alone", { timeout: 60_000 }, async () => {
  const db = ["--db-url", PG_URL, "--db-schema", scratch.schema()];
  const file = path.join(tmp, "history-ha.json");
  fs.writeFileSync(file, JSON.stringify(history()));
  assert.equal((await runVigil(["slashing", "import", file, ...db])).code, 0);
  const args = (name: string): string[] => ["--network", "minimal", "--data-dir", path.join(tmp, name), ...db, "--ha-group", "g", "--prune-keep-epochs", "10"];
  const active = await spawnVigil(args("ha-active"));
  try {
    for (let i = 0; i < 100 && !/pruned the slashing-protection history/.test(active.output()); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(active.output(), /pruned the slashing-protection history/);
    const standby = await spawnVigil(args("ha-standby"));
    try {
      for (let i = 0; i < 100 && !/pruning the shared slashing-protection history is left to the active instance/.test(standby.output()); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(standby.output(), /standby: pruning the shared slashing-protection history is left to the active instance/);
      assert.doesNotMatch(standby.output(), /pruned the slashing-protection history/);
    } finally {
      await stopVigil(standby.proc);
    }
  } finally {
    await stopVigil(active.proc);
  }
});
