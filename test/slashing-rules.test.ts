import assert from "node:assert/strict";
import { test } from "node:test";
import { applicableWatermarks, checkAttestation, checkBlock, NO_WATERMARKS, normaliseSigningRoot, sameSigningRoot } from "../src/slashing/rules.js";
import type { AttestationHistory, BlockHistory, Watermarks } from "../src/slashing/rules.js";
import type { Decision, SigningRoot, SlashingRule } from "../src/slashing/types.js";

const root = (b: number): Uint8Array => {
  const r = new Uint8Array(32);
  r[31] = b;
  return r;
};
const ZERO = new Uint8Array(32);
const A = root(0xaa);
const B = root(0xbb);

/** Expected outcome: "allow", "repeat", or the rule that refuses. */
type Want = "allow" | "repeat" | SlashingRule;
const outcome = (d: Decision): Want => (d.allowed ? (d.repeat ? "repeat" : "allow") : d.rule);

const noBlocks: BlockHistory = { sameSlot: [], minSlot: null };
const blockCases: [string, number, SigningRoot, BlockHistory, Want][] = [
  ["empty history", 5, A, noBlocks, "allow"],
  ["empty history, unknown root", 0, null, noBlocks, "allow"],
  ["above all recorded", 11, A, { sameSlot: [], minSlot: 10 }, "allow"],
  ["gap above the low watermark (complete history)", 15, A, { sameSlot: [], minSlot: 10 }, "allow"],
  ["repeat: same known root", 10, A, { sameSlot: [A], minSlot: 10 }, "repeat"],
  ["repeat above the watermark", 12, A, { sameSlot: [A], minSlot: 3 }, "repeat"],
  ["same slot, different root", 10, B, { sameSlot: [A], minSlot: 10 }, "DOUBLE_BLOCK_PROPOSAL"],
  ["same slot, new root unknown", 10, null, { sameSlot: [A], minSlot: 10 }, "DOUBLE_BLOCK_PROPOSAL"],
  ["same slot, new root all-zero", 10, ZERO, { sameSlot: [A], minSlot: 10 }, "DOUBLE_BLOCK_PROPOSAL"],
  ["same slot, recorded root unknown", 10, A, { sameSlot: [null], minSlot: 10 }, "DOUBLE_BLOCK_PROPOSAL"],
  ["same slot, both unknown", 10, null, { sameSlot: [null], minSlot: 10 }, "DOUBLE_BLOCK_PROPOSAL"],
  ["same slot, both all-zero", 10, ZERO, { sameSlot: [ZERO], minSlot: 10 }, "DOUBLE_BLOCK_PROPOSAL"],
  ["same slot, recorded twice (one differs)", 10, A, { sameSlot: [A, B], minSlot: 10 }, "DOUBLE_BLOCK_PROPOSAL"],
  ["same slot, recorded twice (identical)", 10, A, { sameSlot: [A, A], minSlot: 10 }, "repeat"],
  ["below the low watermark", 9, A, { sameSlot: [], minSlot: 10 }, "BLOCK_BELOW_LOW_WATERMARK"],
  ["slot 0 below watermark 1", 0, null, { sameSlot: [], minSlot: 1 }, "BLOCK_BELOW_LOW_WATERMARK"],
];

test("checkBlock table", () => {
  for (const [name, slot, r, history, want] of blockCases) {
    assert.equal(outcome(checkBlock(slot, r, history)), want, name);
  }
});

const h = (over: Partial<AttestationHistory>): AttestationHistory => ({
  sameTarget: [],
  surroundsExisting: false,
  surroundedByExisting: false,
  minSource: null,
  minTarget: null,
  ...over,
});
const attCases: [string, number, number, SigningRoot, AttestationHistory, Want][] = [
  ["empty history", 0, 1, A, h({}), "allow"],
  ["genesis source = target", 0, 0, null, h({}), "allow"],
  ["above all recorded", 5, 6, A, h({ minSource: 4, minTarget: 5 }), "allow"],
  ["gap above the watermarks (complete history)", 4, 9, A, h({ minSource: 2, minTarget: 5 }), "allow"],
  ["source equal to min source", 2, 9, A, h({ minSource: 2, minTarget: 5 }), "allow"],
  ["source greater than target", 6, 5, A, h({}), "SOURCE_GREATER_THAN_TARGET"],
  ["repeat: same known root", 5, 6, A, h({ sameTarget: [A], minSource: 5, minTarget: 6 }), "repeat"],
  ["same target, different root", 5, 6, B, h({ sameTarget: [A], minSource: 5, minTarget: 6 }), "DOUBLE_VOTE"],
  ["same target and root, other source (the signature covers only the root)", 4, 6, A, h({ sameTarget: [A], minSource: 4, minTarget: 6 }), "repeat"],
  ["same target, unknown new root", 5, 6, null, h({ sameTarget: [A] }), "DOUBLE_VOTE"],
  ["same target, all-zero new root", 5, 6, ZERO, h({ sameTarget: [A] }), "DOUBLE_VOTE"],
  ["same target, unknown recorded root", 5, 6, A, h({ sameTarget: [null] }), "DOUBLE_VOTE"],
  ["same target, two recorded (one differs)", 5, 6, A, h({ sameTarget: [A, B] }), "DOUBLE_VOTE"],
  ["surrounds a recorded vote", 1, 10, A, h({ surroundsExisting: true, minSource: 1, minTarget: 5 }), "SURROUNDING_VOTE"],
  ["surrounded by a recorded vote", 3, 4, A, h({ surroundedByExisting: true, minSource: 1, minTarget: 2 }), "SURROUNDED_VOTE"],
  ["source below the low watermark", 1, 20, A, h({ minSource: 2, minTarget: 5 }), "SOURCE_BELOW_LOW_WATERMARK"],
  ["target below the low watermark", 3, 4, A, h({ minSource: 2, minTarget: 5 }), "TARGET_BELOW_LOW_WATERMARK"],
  ["target at the low watermark, different root", 3, 5, A, h({ sameTarget: [B], minSource: 2, minTarget: 5 }), "DOUBLE_VOTE"],
];

test("checkAttestation table", () => {
  for (const [name, source, target, r, history, want] of attCases) {
    assert.equal(outcome(checkAttestation(source, target, r, history)), want, name);
  }
});

const wm = (over: Partial<Watermarks>): Watermarks => ({ ...NO_WATERMARKS, ...over });
const blockWatermarkCases: [string, number, SigningRoot, BlockHistory, Partial<Watermarks>, Want][] = [
  ["no watermark", 5, A, noBlocks, {}, "allow"],
  ["LOW slot: above it", 11, A, noBlocks, { lowSlot: 10 }, "allow"],
  ["LOW slot: at it", 10, A, noBlocks, { lowSlot: 10 }, "BLOCK_BELOW_LOW_WATERMARK"],
  ["LOW slot: below it", 3, A, noBlocks, { lowSlot: 10 }, "BLOCK_BELOW_LOW_WATERMARK"],
  ["LOW slot: repeat at it still allowed", 10, A, { sameSlot: [A], minSlot: 10 }, { lowSlot: 10 }, "repeat"],
  ["LOW slot: repeat below it still allowed", 7, A, { sameSlot: [A], minSlot: 7 }, { lowSlot: 10 }, "repeat"],
  ["LOW slot: a different block at a signed slot is a double proposal", 7, B, { sameSlot: [A], minSlot: 7 }, { lowSlot: 10 }, "DOUBLE_BLOCK_PROPOSAL"],
  ["LOW slot: above history's minimum but at the watermark", 10, A, { sameSlot: [], minSlot: 2 }, { lowSlot: 10 }, "BLOCK_BELOW_LOW_WATERMARK"],
  ["LOW slot: above the watermark but at history's minimum", 10, A, { sameSlot: [], minSlot: 10 }, { lowSlot: 4 }, "BLOCK_BELOW_LOW_WATERMARK"],
  ["LOW epoch only: blocks unbounded", 0, A, noBlocks, { lowEpoch: 100 }, "allow"],
  ["HIGH slot: below it", 19, A, noBlocks, { highSlot: 20 }, "allow"],
  ["HIGH slot: at it", 20, A, noBlocks, { highSlot: 20 }, "AT_OR_ABOVE_HIGH_WATERMARK"],
  ["HIGH slot: above it", 21, null, noBlocks, { highSlot: 20 }, "AT_OR_ABOVE_HIGH_WATERMARK"],
  ["HIGH slot: a repeat at it is refused too", 20, A, { sameSlot: [A], minSlot: 20 }, { highSlot: 20 }, "AT_OR_ABOVE_HIGH_WATERMARK"],
  ["HIGH slot: a double proposal beyond it reports the watermark", 25, B, { sameSlot: [A], minSlot: 25 }, { highSlot: 20 }, "AT_OR_ABOVE_HIGH_WATERMARK"],
  ["HIGH slot 0 retires everything", 0, A, noBlocks, { highSlot: 0 }, "AT_OR_ABOVE_HIGH_WATERMARK"],
  ["HIGH epoch only: blocks unbounded", 1000, A, noBlocks, { highEpoch: 1 }, "allow"],
  ["LOW and HIGH: inside the window", 15, A, noBlocks, { lowSlot: 10, highSlot: 20 }, "allow"],
  ["LOW and HIGH: crossed (LOW >= HIGH) refuses everything", 15, A, noBlocks, { lowSlot: 20, highSlot: 10 }, "AT_OR_ABOVE_HIGH_WATERMARK"],
  ["retired: a new block refused", 50, A, noBlocks, { retired: true }, "VALIDATOR_RETIRED"],
  ["retired: a repeat refused too", 7, A, { sameSlot: [A], minSlot: 7 }, { retired: true }, "VALIDATOR_RETIRED"],
  ["retired: before the watermarks are looked at", 25, A, noBlocks, { retired: true, highSlot: 20 }, "VALIDATOR_RETIRED"],
];

test("checkBlock with watermarks table", () => {
  for (const [name, slot, r, history, w, want] of blockWatermarkCases) {
    assert.equal(outcome(checkBlock(slot, r, history, wm(w))), want, name);
  }
});

const attWatermarkCases: [string, number, number, SigningRoot, AttestationHistory, Partial<Watermarks>, Want][] = [
  ["no watermark", 4, 5, A, h({}), {}, "allow"],
  ["LOW epoch: source and target above it", 11, 12, A, h({}), { lowEpoch: 10 }, "allow"],
  ["LOW epoch: source at it, target above (allowed: source < E refused, not <=)", 10, 11, A, h({}), { lowEpoch: 10 }, "allow"],
  ["LOW epoch: source below it", 9, 11, A, h({}), { lowEpoch: 10 }, "SOURCE_BELOW_LOW_WATERMARK"],
  ["LOW epoch: target at it", 10, 10, A, h({}), { lowEpoch: 10 }, "TARGET_BELOW_LOW_WATERMARK"],
  ["LOW epoch: source and target below it (source reported first)", 3, 4, A, h({}), { lowEpoch: 10 }, "SOURCE_BELOW_LOW_WATERMARK"],
  ["LOW epoch: repeat at it still allowed", 9, 10, A, h({ sameTarget: [A], minSource: 9, minTarget: 10 }), { lowEpoch: 10 }, "repeat"],
  ["LOW epoch: a different vote at a signed target is a double vote", 9, 10, B, h({ sameTarget: [A] }), { lowEpoch: 10 }, "DOUBLE_VOTE"],
  ["LOW epoch: history's minimum lower, watermark binds", 10, 10, A, h({ minSource: 1, minTarget: 2 }), { lowEpoch: 10 }, "TARGET_BELOW_LOW_WATERMARK"],
  ["LOW epoch: watermark lower, history's minimum binds", 5, 8, A, h({ minSource: 6, minTarget: 7 }), { lowEpoch: 2 }, "SOURCE_BELOW_LOW_WATERMARK"],
  ["LOW epoch: surround reported before the watermark", 1, 20, A, h({ surroundsExisting: true }), { lowEpoch: 10 }, "SURROUNDING_VOTE"],
  ["LOW slot only: attestations unbounded", 0, 1, A, h({}), { lowSlot: 100 }, "allow"],
  ["HIGH epoch: target below it", 18, 19, A, h({}), { highEpoch: 20 }, "allow"],
  ["HIGH epoch: target at it", 19, 20, A, h({}), { highEpoch: 20 }, "AT_OR_ABOVE_HIGH_WATERMARK"],
  ["HIGH epoch: target above it, source below", 5, 30, A, h({}), { highEpoch: 20 }, "AT_OR_ABOVE_HIGH_WATERMARK"],
  ["HIGH epoch: a repeat at it is refused too", 19, 20, A, h({ sameTarget: [A], minSource: 19, minTarget: 20 }), { highEpoch: 20 }, "AT_OR_ABOVE_HIGH_WATERMARK"],
  ["HIGH epoch: source > target is still reported as invalid", 25, 21, A, h({}), { highEpoch: 20 }, "SOURCE_GREATER_THAN_TARGET"],
  ["HIGH slot only: attestations unbounded", 100, 101, A, h({}), { highSlot: 1 }, "allow"],
  ["LOW and HIGH: inside the window", 11, 12, A, h({}), { lowEpoch: 10, highEpoch: 20 }, "allow"],
  ["retired: a new vote refused", 11, 12, A, h({}), { retired: true }, "VALIDATOR_RETIRED"],
  ["retired: a repeat refused too", 9, 10, A, h({ sameTarget: [A], minSource: 9, minTarget: 10 }), { retired: true }, "VALIDATOR_RETIRED"],
  ["retired: source > target is still reported as invalid", 25, 21, A, h({}), { retired: true }, "SOURCE_GREATER_THAN_TARGET"],
];

test("checkAttestation with watermarks table", () => {
  for (const [name, source, target, r, history, w, want] of attWatermarkCases) {
    assert.equal(outcome(checkAttestation(source, target, r, history, wm(w))), want, name);
  }
});

test("applicable watermarks: the tighter of per-validator and global (highest LOW, lowest HIGH), slots and epochs apart", () => {
  assert.deepEqual(applicableWatermarks([]), NO_WATERMARKS);
  assert.deepEqual(
    applicableWatermarks([
      { kind: "low", slot: 10, epoch: null }, // global
      { kind: "low", slot: 5, epoch: 3 }, // per validator
      { kind: "high", slot: 100, epoch: 50 },
      { kind: "high", slot: null, epoch: 40 },
    ]),
    { lowSlot: 10, lowEpoch: 3, highSlot: 100, highEpoch: 40, retired: false },
  );
  assert.deepEqual(applicableWatermarks([{ kind: "high", slot: 0, epoch: 0 }]), { lowSlot: null, lowEpoch: null, highSlot: 0, highEpoch: 0, retired: false });
  // A retirement (read with the watermarks) leaves the watermarks as they are.
  assert.deepEqual(applicableWatermarks([{ kind: "retired", slot: 0, epoch: 0 }, { kind: "high", slot: 9, epoch: null }]), { ...NO_WATERMARKS, highSlot: 9, retired: true });
});

test("refusals carry a message; repeat flag is false for new messages", () => {
  const d = checkBlock(9, A, { sameSlot: [], minSlot: 10 });
  assert.equal(d.allowed, false);
  if (!d.allowed) assert.match(d.message, /low watermark/);
  assert.deepEqual(checkBlock(11, A, { sameSlot: [], minSlot: 10 }), { allowed: true, repeat: false });
});

test("signing roots: all-zero is unknown and never equal", () => {
  assert.equal(normaliseSigningRoot(ZERO), null);
  assert.equal(normaliseSigningRoot(undefined), null);
  assert.equal(normaliseSigningRoot(A), A);
  assert.equal(sameSigningRoot(A, root(0xaa)), true);
  assert.equal(sameSigningRoot(A, B), false);
  assert.equal(sameSigningRoot(ZERO, ZERO), false);
  assert.equal(sameSigningRoot(null, null), false);
});
