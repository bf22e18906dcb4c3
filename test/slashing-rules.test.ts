import assert from "node:assert/strict";
import { test } from "node:test";
import { checkAttestation, checkBlock, normaliseSigningRoot, sameSigningRoot } from "../src/slashing/rules.js";
import type { AttestationHistory, BlockHistory } from "../src/slashing/rules.js";
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
