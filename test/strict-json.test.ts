// The strict typed-JSON decoder: what Lodestar's lenient fromJson would accept with another
// meaning ("0x10" as 0, "-1", "1.5") must be refused; exact uint64 values must round-trip.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ssz } from "@lodestar/types";
import { decodeAndHash, fromStrictJson } from "../src/eth2/json.js";
import { VigilError } from "../src/errors.js";

const exit = (epoch: unknown, validator_index: unknown = "1") => ({ epoch, validator_index });
const bad = (fn: () => unknown) => assert.throws(fn, (e: unknown) => e instanceof VigilError && e.kind === "bad_request" && e.code === "INVALID_FIELD");

describe("uint64 fields", () => {
  const cases: [unknown, bigint | null][] = [
    ["0", 0n],
    ["1", 1n],
    [7, 7n], // a safe JSON integer is unambiguous
    ["18446744073709551615", 2n ** 64n - 1n],
    ["18446744073709551616", null],
    ["0x10", null],
    ["-1", null],
    ["1.5", null],
    [" 1", null],
    ["1e3", null],
    ["01", null],
    ["", null],
    [-1, null],
    [1.5, null],
    [2 ** 60, null], // not a safe integer: ambiguous as a JSON number
    [null, null],
    [true, null],
    [{}, null],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} → ${expected === null ? "refused" : expected}`, () => {
      if (expected === null) bad(() => fromStrictJson(ssz.phase0.VoluntaryExit, exit(input)));
      else assert.equal((fromStrictJson(ssz.phase0.VoluntaryExit, exit(input)) as { epoch: bigint }).epoch, expected);
    });
  }
  it("hashes values above 2^53 exactly (same root as the SSZ serialization implies)", () => {
    const big = decodeAndHash(ssz.phase0.VoluntaryExit, exit("9007199254740993"), "x").root;
    const next = decodeAndHash(ssz.phase0.VoluntaryExit, exit("9007199254740992"), "x").root;
    assert.notDeepEqual(big, next);
  });
});

describe("bytes and bits", () => {
  const root = (r: unknown) => () => fromStrictJson(ssz.phase0.Checkpoint, { epoch: "1", root: r });
  it("accepts 32-byte hex in either case", () => {
    root("0x" + "aB".repeat(32))();
  });
  for (const [name, r] of [
    ["too short", "0x" + "00".repeat(31)],
    ["too long", "0x" + "00".repeat(33)],
    ["no 0x", "00".repeat(32)],
    ["odd length", "0x" + "0".repeat(63)],
    ["not hex", "0x" + "zz".repeat(32)],
    ["a number", 5],
  ] as const) {
    it(`refuses a root ${name}`, () => bad(root(r)));
  }
  const bits = (b: string) => () => fromStrictJson(ssz.phase0.Attestation.fields.aggregationBits, b);
  it("bit list: needs its length bit", () => {
    bits("0x03")();
    bad(bits("0x"));
    bad(bits("0x0100"));
  });
  it("bit vector: refuses bits beyond its length", () => {
    const t = ssz.altair.SyncCommitteeMessage; // unrelated container, then a real bitvector:
    assert.ok(t);
    const v = ssz.electra.Attestation.fields.committeeBits; // Bitvector[MAX_COMMITTEES_PER_SLOT] (64 on mainnet)
    fromStrictJson(v, "0x" + "ff".repeat(8));
    bad(() => fromStrictJson(v, "0x" + "ff".repeat(7)));
  });
});

describe("containers and lists", () => {
  it("refuses a missing field, naming it", () => {
    assert.throws(() => fromStrictJson(ssz.phase0.VoluntaryExit, { epoch: "1" }), /validator_index: missing/);
  });
  it("accepts camelCase field names", () => {
    const v = fromStrictJson(ssz.phase0.VoluntaryExit, { epoch: "2", validatorIndex: "3" }) as { validatorIndex: bigint };
    assert.equal(v.validatorIndex, 3n);
  });
  it("refuses a field the type does not have, and a field given in both spellings, naming it", () => {
    assert.throws(() => fromStrictJson(ssz.phase0.VoluntaryExit, { epoch: "2", validator_index: "3", extra: "x" }, "voluntary_exit"), /voluntary_exit\.extra: unknown field/);
    assert.throws(
      () => fromStrictJson(ssz.phase0.VoluntaryExit, { epoch: "2", validator_index: "3", validatorIndex: "4" }, "voluntary_exit"),
      /voluntary_exit\.validatorIndex: field validator_index given twice/,
    );
    // A later fork's content sent as an earlier fork's type: an Electra attestation's committee_bits would be dropped.
    const att = { aggregation_bits: "0x01", data: { slot: "1", index: "0", beacon_block_root: "0x" + "11".repeat(32), source: { epoch: "0", root: "0x" + "22".repeat(32) }, target: { epoch: "1", root: "0x" + "33".repeat(32) } }, signature: "0x" + "00".repeat(96), committee_bits: "0x0100000000000000" };
    assert.throws(() => fromStrictJson(ssz.phase0.Attestation, att, "aggregate"), /aggregate\.committee_bits: unknown field/);
    assert.doesNotThrow(() => fromStrictJson(ssz.electra.Attestation, att, "aggregate"));
  });
  it("refuses arrays and null where an object is expected", () => {
    bad(() => fromStrictJson(ssz.phase0.VoluntaryExit, ["1", "2"]));
    bad(() => fromStrictJson(ssz.phase0.VoluntaryExit, null));
  });
  it("refuses a list longer than its limit", () => {
    const t = ssz.phase0.BeaconBlockBody.fields.proposerSlashings; // List[ProposerSlashing, 16]
    bad(() => fromStrictJson(t, new Array(17).fill({})));
  });
});
