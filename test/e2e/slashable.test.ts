/** The slashable-pair checker used on the devnet's exported history (pure, no devnet needed). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { findSlashable, type InterchangeAttestation, type InterchangeBlock } from "./slashable.js";

const R = (n: number): string => "0x" + n.toString(16).padStart(64, "0");
const PK = "0x" + "ab".repeat(48);
const kinds = (blocks: InterchangeBlock[], atts: InterchangeAttestation[]): string[] =>
  findSlashable({ data: [{ pubkey: PK, signed_blocks: blocks, signed_attestations: atts }] }).map((v) => v.kind);
const att = (s: number, t: number, root?: number): InterchangeAttestation => ({ source_epoch: String(s), target_epoch: String(t), signing_root: root === undefined ? undefined : R(root) });

test("blocks: one slot, two roots is slashable; the same root twice, or distinct slots, is not", () => {
  assert.deepEqual(kinds([{ slot: "5", signing_root: R(1) }, { slot: "5", signing_root: R(2) }], []), ["double_block"]);
  assert.deepEqual(kinds([{ slot: "5", signing_root: R(1) }, { slot: "5", signing_root: R(1) }], []), []);
  assert.deepEqual(kinds([{ slot: "5", signing_root: R(1) }, { slot: "6", signing_root: R(1) }], []), []);
  assert.deepEqual(kinds([{ slot: "5" }, { slot: "5" }], []), ["double_block"], "unknown roots never prove identity");
  assert.deepEqual(kinds([{ slot: "5", signing_root: R(0) }, { slot: "5", signing_root: R(0) }], []), ["double_block"], "zero roots are unknown");
});

test("attestations: double vote, surround either way, and the harmless cases", () => {
  assert.deepEqual(kinds([], [att(1, 2, 1), att(1, 2, 2)]), ["double_vote"]);
  assert.deepEqual(kinds([], [att(0, 2, 1), att(1, 2, 2)]), ["double_vote"]);
  assert.deepEqual(kinds([], [att(1, 2, 1), att(1, 2, 1)]), []);
  assert.deepEqual(kinds([], [att(1, 4, 1), att(2, 3, 2)]), ["surround_vote"]);
  assert.deepEqual(kinds([], [att(2, 3, 1), att(1, 4, 2)]), ["surround_vote"]);
  assert.deepEqual(kinds([], [att(1, 2, 1), att(2, 3, 2), att(3, 4, 3), att(3, 5, 4)]), []);
  assert.deepEqual(kinds([], [att(1, 3, 1), att(1, 4, 2)]), [], "same source, later target: not surrounding");
  assert.deepEqual(kinds([], [att(1, 4, 1), att(2, 4, 2)]), ["double_vote"]);
});

test("records of one pubkey are checked together across data entries (any case); other pubkeys are independent", () => {
  const other = "0x" + "cd".repeat(48);
  assert.equal(
    findSlashable({
      data: [
        { pubkey: PK, signed_blocks: [{ slot: "9", signing_root: R(1) }], signed_attestations: [att(1, 2, 1)] },
        { pubkey: PK.toUpperCase().replace("0X", "0x"), signed_blocks: [{ slot: "9", signing_root: R(2) }], signed_attestations: [att(1, 2, 2)] },
        { pubkey: other, signed_blocks: [{ slot: "9", signing_root: R(3) }], signed_attestations: [att(0, 5, 3)] },
      ],
    }).length,
    2,
  );
});
