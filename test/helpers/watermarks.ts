/**
 * The watermark scenarios every slashing-store engine must pass (test/slashing-store.test.ts runs
 * them on SQLite, test/postgres-store.test.ts on PostgreSQL): written once, run per engine.
 */
import assert from "node:assert/strict";
import { VigilError } from "../../src/errors.js";
import type { SlashingStore } from "../../src/slashing/store/store.js";
import type { Decision, SlashingRule } from "../../src/slashing/types.js";
import { pubkey, root } from "./values.js";

const outcome = (d: Decision): "allow" | "repeat" | SlashingRule => (d.allowed ? (d.repeat ? "repeat" : "allow") : d.rule);

async function refused(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof VigilError && e.kind === "bad_request" && e.code === code);
}

/** Set, replace, clear and display watermarks; invalid settings are refused. Needs an empty store. */
export async function watermarkSettings(store: SlashingStore): Promise<void> {
  const [p1, p2] = [pubkey(1), pubkey(2)];
  assert.deepEqual(await store.getWatermarks(), []);
  await store.setWatermark({ kind: "low", slot: 100, epoch: 3 });
  await store.setWatermark({ kind: "high", pubkey: p2.toUpperCase().replace("0X", "0x"), epoch: 50 });
  await store.setWatermark({ kind: "low", pubkey: p1, slot: 5 });
  await store.setWatermark({ kind: "low", pubkey: p1, epoch: 7 }); // adds an epoch, keeps slot 5
  await store.setWatermark({ kind: "low", pubkey: p1, epoch: 8 }); // replaces the epoch, keeps slot 5
  assert.deepEqual(await store.getWatermarks(), [
    { kind: "low", pubkey: null, slot: 100, epoch: 3 },
    { kind: "low", pubkey: p1, slot: 5, epoch: 8 },
    { kind: "high", pubkey: p2, slot: null, epoch: 50 },
  ]);
  assert.deepEqual(await store.getWatermarks(p2), [
    { kind: "low", pubkey: null, slot: 100, epoch: 3 },
    { kind: "high", pubkey: p2, slot: null, epoch: 50 },
  ]);
  await store.setWatermark({ kind: "low", pubkey: p1 }); // neither slot nor epoch: cleared
  await store.setWatermark({ kind: "high" }); // clearing what does not exist is fine
  assert.deepEqual(await store.getWatermarks(p1), [{ kind: "low", pubkey: null, slot: 100, epoch: 3 }]);
  await refused(store.setWatermark({ kind: "mid" as "low", slot: 1 }), "INVALID_WATERMARK");
  await refused(store.setWatermark({ kind: "low", pubkey: "0x12", slot: 1 }), "INVALID_PUBKEY");
  await refused(store.setWatermark({ kind: "low", slot: -1 }), "INVALID_NUMBER");
  await refused(store.setWatermark({ kind: "low", slot: 1.5 }), "INVALID_NUMBER");
  await refused(store.setWatermark({ kind: "high", epoch: 2 ** 53 }), "INVALID_NUMBER");
  await refused(store.getWatermarks("0x12"), "INVALID_PUBKEY");
}

/**
 * The watermark semantics through two handles on one database (two connections, or two instances):
 * LOW refuses at/below (repeats allowed), HIGH at/beyond (repeats too); each handle sees the other's
 * settings at once. Needs an empty, unbound store; leaves three watermarks set.
 */
export async function watermarkSemantics(store: SlashingStore, other: SlashingStore): Promise<void> {
  const [p1, p2] = [pubkey(1), pubkey(2)];
  const block = async (pk: string, slot: number, r: number, s = store) => outcome(await s.checkAndRecordBlock(pk, slot, root(r)));
  const att = async (pk: string, so: number, t: number, r: number, s = store) => outcome(await s.checkAndRecordAttestation(pk, so, t, root(r)));
  assert.equal(await block(p2, 120, 1), "allow");
  assert.equal(await att(p2, 12, 13, 1), "allow");

  // LOW: global slot 130, per-validator (p1) slot 200: the tighter applies.
  await store.setWatermark({ kind: "low", slot: 130 });
  await store.setWatermark({ kind: "low", pubkey: p1, slot: 200, epoch: 10 });
  assert.equal(await block(p1, 200, 1), "BLOCK_BELOW_LOW_WATERMARK");
  assert.equal(await block(p1, 150, 1, other), "BLOCK_BELOW_LOW_WATERMARK", "the other handle sees it");
  assert.equal(await block(p2, 130, 1), "BLOCK_BELOW_LOW_WATERMARK");
  assert.equal(await block(p2, 131, 1), "allow");
  assert.equal(await block(p1, 201, 1), "allow");
  assert.equal(await block(p2, 120, 1, other), "repeat", "a repeat below a LOW watermark is still allowed");
  assert.equal(await block(p2, 120, 2), "DOUBLE_BLOCK_PROPOSAL");
  assert.equal(await att(p1, 9, 11, 1), "SOURCE_BELOW_LOW_WATERMARK");
  assert.equal(await att(p1, 10, 10, 1), "TARGET_BELOW_LOW_WATERMARK");
  assert.equal(await att(p1, 10, 11, 1), "allow");
  assert.equal(await att(p2, 5, 6, 1), "SOURCE_BELOW_LOW_WATERMARK", "p2 has no LOW epoch, but its history's lowest source is 12");
  assert.equal(await att(p2, 12, 13, 1), "repeat");

  // HIGH: per-validator slot 300; a repeat at or beyond it is refused too.
  assert.equal(await block(p1, 299, 3), "allow");
  await store.setWatermark({ kind: "high", pubkey: p1, slot: 300 });
  assert.equal(await block(p1, 300, 3, other), "AT_OR_ABOVE_HIGH_WATERMARK");
  assert.equal(await block(p1, 299, 3), "repeat");
  await other.setWatermark({ kind: "high", pubkey: p1, slot: 299 });
  assert.equal(await block(p1, 299, 3), "AT_OR_ABOVE_HIGH_WATERMARK", "a retired validator signs nothing, not even a repeat");
  assert.equal(await block(p2, 400, 3), "allow", "p1's watermark does not bind p2");

  // A global HIGH epoch 0 retires every attestation of every validator, known or not; clearing it restores signing.
  await store.setWatermark({ kind: "high", epoch: 0 });
  assert.equal(await att(p2, 12, 13, 1, other), "AT_OR_ABOVE_HIGH_WATERMARK");
  assert.equal(await att(pubkey(3), 0, 1, 1), "AT_OR_ABOVE_HIGH_WATERMARK");
  assert.equal(await block(pubkey(3), 131, 1), "allow", "an epoch watermark does not bound blocks");
  await store.setWatermark({ kind: "high" });
  assert.equal(await att(p2, 12, 13, 1), "repeat");
  assert.equal(await att(p2, 13, 14, 1), "allow");

  // Refused messages were not recorded; the export holds exactly what was allowed.
  await store.bindGenesisValidatorsRoot(root(7));
  const doc = await store.exportInterchange([p1]);
  assert.deepEqual(doc.data[0].signed_blocks.map((b) => b.slot), ["201", "299"]);
  assert.deepEqual(doc.data[0].signed_attestations.map((a) => [a.source_epoch, a.target_epoch]), [["10", "11"]]);
  assert.equal((await other.getWatermarks()).length, 3);
}

/**
 * Retirement (a Keymanager DELETE) through `store`, seen by `other` (another connection or
 * instance on the same database): everything refused for the retired validators, repeats too,
 * their watermarks untouched, nothing exported for it; lifting it restores the history's own rules.
 */
export async function retirementSemantics(store: SlashingStore, other: SlashingStore): Promise<void> {
  const [p1, p2, p3] = [pubkey(21), pubkey(22), pubkey(23)];
  if ((await store.getGenesisValidatorsRoot()) === null) await store.bindGenesisValidatorsRoot(root(99)); // for the export
  assert.equal(outcome(await store.checkAndRecordBlock(p1, 10, root(1))), "allow");
  assert.equal(outcome(await store.checkAndRecordAttestation(p1, 1, 2, root(2))), "allow");
  await store.setWatermark({ kind: "high", pubkey: p1, slot: 100, epoch: 12 });
  assert.deepEqual(await store.getRetired(), []);
  await store.retire([p1, p2.toUpperCase().replace("0X", "0x")]);
  await store.retire([p1]); // again: no change, no error
  assert.deepEqual((await other.getRetired()).map((r) => r.pubkey), [p1, p2]);
  for (const r of await other.getRetired()) assert.ok(Number.isFinite(Date.parse(r.retiredAt)), r.retiredAt);
  // Refused by the other connection at once, the repeats included; others unaffected.
  assert.equal(outcome(await other.checkAndRecordBlock(p1, 11, root(3))), "VALIDATOR_RETIRED");
  assert.equal(outcome(await other.checkAndRecordBlock(p1, 10, root(1))), "VALIDATOR_RETIRED");
  assert.equal(outcome(await other.checkAndRecordAttestation(p1, 2, 3, root(4))), "VALIDATOR_RETIRED");
  assert.equal(outcome(await other.checkAndRecordAttestation(p2, 0, 1, root(4))), "VALIDATOR_RETIRED");
  assert.equal(outcome(await other.checkAndRecordBlock(p3, 1, root(5))), "allow");
  assert.deepEqual(await store.getWatermarks(p1), [{ kind: "high", pubkey: p1, slot: 100, epoch: 12 }]);
  // A refused decision recorded nothing; the history export knows nothing of retirement.
  const [v] = (await store.exportInterchange([p1])).data;
  assert.deepEqual(v.signed_blocks.map((b) => b.slot), ["10"]);
  // Lifted: the validator's own history and watermarks apply again.
  assert.deepEqual(await other.unretire([p1, p3]), [p1]);
  assert.deepEqual((await store.getRetired()).map((r) => r.pubkey), [p2]);
  assert.equal(outcome(await store.checkAndRecordBlock(p1, 10, root(6))), "DOUBLE_BLOCK_PROPOSAL");
  assert.equal(outcome(await store.checkAndRecordBlock(p1, 11, root(6))), "allow");
  assert.equal(outcome(await store.checkAndRecordBlock(p1, 100, root(6))), "AT_OR_ABOVE_HIGH_WATERMARK");
  await refused(store.retire(["0x1234"]), "INVALID_PUBKEY");
  await refused(store.unretire(["nope"]), "INVALID_PUBKEY");
}
