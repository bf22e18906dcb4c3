/**
 * The policy engine at the pure level: parsing (strict, with clear messages) and evaluation
 * (tables per rule kind), the built-in default policy and the shipped example file.
 */
import assert from "node:assert/strict";
import { createHash, generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { REQUEST_TYPES, type RequestType } from "../src/eth2/request.js";
import { VigilError } from "../src/errors.js";
import { DEFAULT_POLICY_YAML, defaultPolicy } from "../src/policy/default-policy.js";
import { clockNow, evaluatePolicy } from "../src/policy/evaluate.js";
import { clientForFingerprint, clientForToken, parsePolicy, policyRequiresClients, type Policy } from "../src/policy/policy.js";
import { DEFAULT_DENY_RULE, type ChainClock, type PolicyDecision, type RequestFacts } from "../src/policy/types.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

// ---- fixtures ----

const pk = (firstByte: number, fill: number): string => "0x" + firstByte.toString(16) + fill.toString(16).padStart(2, "0").repeat(47);
const PK_A1 = pk(0xa1, 0x11);
const PK_A2 = pk(0xa2, 0x22);
const PK_B1 = pk(0xb1, 0x33);
const PK_X = pk(0x8f, 0x44); // in no group
const PK_Y = pk(0x90, 0x55); // in no group, named nowhere

const FEE_A = "0x" + "aa".repeat(20);
const FEE_B = "0x" + "bb".repeat(20);
const FEE_OTHER = "0x" + "cc".repeat(20);
const WC_OK = "0x01" + "00".repeat(11) + "dd".repeat(20);
const WC_BAD = "0x01" + "00".repeat(11) + "ee".repeat(20);

const sha256hex = (s: string | Buffer): string => createHash("sha256").update(s).digest("hex");
const TOKEN_A = "token-of-validator-client-a-0123456789";
const TOKEN_B = "token-of-validator-client-b-0123456789";
const CERT_DER = Buffer.from("not really a certificate, but its hash is a fingerprint");
const FP_AUTO = sha256hex(CERT_DER);
/** Node's `getPeerCertificate().fingerprint256` form. */
const FP_AUTO_COLONS = FP_AUTO.toUpperCase().match(/../g)!.join(":");

const ed25519 = (): string => {
  const der = generateKeyPairSync("ed25519").publicKey.export({ format: "der", type: "spki" });
  return der.subarray(12).toString("base64");
};
const ALICE = ed25519();
const BOB = ed25519();
const CAROL = ed25519();

const GENESIS = 1_606_824_023;
/** Now = 0.5 s into slot 12000 (epoch 375). */
const CLOCK: ChainClock = { genesisTime: GENESIS, secondsPerSlot: 12, slotsPerEpoch: 32, nowMs: (GENESIS + 12000 * 12) * 1000 + 500 };
const NO_GENESIS: ChainClock = { ...CLOCK, genesisTime: null };
const PRE_GENESIS: ChainClock = { ...CLOCK, nowMs: (GENESIS - 3600) * 1000 };

function facts(type: RequestType, fields: RequestFacts["fields"] = {}, over: Partial<RequestFacts> = {}): RequestFacts {
  return { type, pubkey: PK_A1, client: null, signingRoot: "0x" + "00".repeat(32), summary: type.toLowerCase(), fields, ...over };
}

const FIXTURE = `
version: 1
groups:
  a: [${PK_A1}, "${PK_A2.toUpperCase().replace("0X", "0x")}"]
  b:
    - ${PK_B1}
clients:
  vc-a: { token_sha256: ${sha256hex(TOKEN_A)} }
  vc-b: { token_sha256: "0x${sha256hex(TOKEN_B)}" }
  auto: { tls_fingerprint_sha256: "${FP_AUTO_COLONS}" }
approvers:
  alice: ${ALICE}
  bob: "${BOB}"
  carol: ${CAROL}
approvals: { quorum: 2, expiry_seconds: 7200 }
policy_changes: { required_signatures: 2 }
rules:
  - id: future-blocks
    match: { types: [BLOCK, BLOCK_V2], beyond_clock: { slots: 2 } }
    action: deny
  - id: future-attestations
    match: { types: [ATTESTATION], beyond_clock: { epochs: 1 } }
    action: deny
  - id: fee-a
    match: { types: [VALIDATOR_REGISTRATION], keys: [group:a], fee_recipient_not_in: [${FEE_A}] }
    action: deny
  - id: fee-b
    match: { types: [VALIDATOR_REGISTRATION], keys: [group:b], fee_recipient_not_in: [${FEE_B}] }
    action: deny
  - id: gas
    match: { types: [VALIDATOR_REGISTRATION], gas_limit_outside: [30_000_000, 60000000] }
    action: deny
  - id: gas-warn
    description: we vote for 45M
    mode: warn
    match: { types: [VALIDATOR_REGISTRATION], gas_limit_outside: [45000000, 45000000] }
    action: deny
  - id: exits
    match: { types: [VOLUNTARY_EXIT] }
    action: require_approval
    approval: { quorum: 2, approvers: [alice, bob, carol], expiry_seconds: 3600 }
  - id: deposit-credentials
    match: { withdrawal_credentials_not_in: [${WC_OK}] }
    action: deny
  - id: deposits
    match: { types: [DEPOSIT] }
    action: require_approval
  - id: randao-x
    match: { types: [RANDAO_REVEAL], keys: [${PK_X}] }
    action: allow
  - id: registrations
    match: { types: [VALIDATOR_REGISTRATION], clients: [auto, vc-a, vc-b] }
    action: allow
  - id: duties-a
    match: { types: [BLOCK, BLOCK_V2, ATTESTATION, AGGREGATION_SLOT], keys: [group:a], clients: [vc-a] }
    action: allow
  - id: duties-b
    match: { types: [BLOCK, BLOCK_V2, ATTESTATION, AGGREGATION_SLOT], keys: ["group:b"], clients: [vc-b] }
    action: allow
`;
const policy = parsePolicy(FIXTURE, "fixture.yaml");

/** Expected: [outcome, ruleId, substrings of the message (refuse) or warnings]. */
type Want = { outcome: PolicyDecision["outcome"]; ruleId: string; has?: string[]; warnings?: string[] };
type Case = [name: string, facts: RequestFacts, want: Want, clock?: ChainClock];

function check(p: Policy, cases: Case[]): void {
  for (const [name, f, want, clock] of cases) {
    const d = evaluatePolicy(p, f, clock ?? CLOCK);
    assert.equal(d.outcome, want.outcome, `${name}: outcome (${JSON.stringify(d, (_k, v) => (typeof v === "bigint" ? String(v) : v))})`);
    assert.equal(d.ruleId, want.ruleId, `${name}: ruleId`);
    if (want.has) {
      assert.ok(d.outcome === "refuse", `${name}: has a message`);
      for (const s of want.has) assert.ok(d.message.includes(s), `${name}: message ${JSON.stringify(d.message)} should include ${JSON.stringify(s)}`);
    }
    assert.deepEqual(
      d.warnings.map((w) => w.ruleId),
      want.warnings ?? [],
      `${name}: warnings`,
    );
  }
}

const A = { client: "vc-a" as const };
const allow = (ruleId: string, warnings?: string[]): Want => ({ outcome: "allow", ruleId, warnings });
const refuse = (ruleId: string, ...has: string[]): Want => ({ outcome: "refuse", ruleId, has });

// ---- evaluation tables ----

test("clock rule table", () => {
  check(policy, [
    ["block at the current slot", facts("BLOCK", { slot: 12000n }, A), allow("duties-a")],
    ["block at current + 2 (tolerance)", facts("BLOCK_V2", { slot: 12002n }, A), allow("duties-a")],
    ["block in the past", facts("BLOCK", { slot: 11000n }, A), allow("duties-a")],
    [
      "block at current + 3",
      facts("BLOCK", { slot: 12003n }, A),
      refuse("future-blocks", 'policy rule "future-blocks"', "block slot 12003 is beyond the current slot 12000 + 2"),
    ],
    ["block far ahead", facts("BLOCK_V2", { slot: 12345n }, A), refuse("future-blocks", "block slot 12345 is beyond the current slot 12000 + 2")],
    ["attestation target = current epoch", facts("ATTESTATION", { slot: 12000n, sourceEpoch: 374n, targetEpoch: 375n }, A), allow("duties-a")],
    ["attestation target = current + 1", facts("ATTESTATION", { slot: 12032n, sourceEpoch: 375n, targetEpoch: 376n }, A), allow("duties-a")],
    [
      "attestation target = current + 2",
      facts("ATTESTATION", { slot: 12064n, sourceEpoch: 375n, targetEpoch: 377n }, A),
      refuse("future-attestations", "attestation target epoch 377 is beyond the current epoch 375 + 1"),
    ],
    ["unknown genesis: far block not refused by the clock", facts("BLOCK", { slot: 10n ** 9n }, A), allow("duties-a"), NO_GENESIS],
    ["unknown genesis: far attestation", facts("ATTESTATION", { targetEpoch: 10n ** 9n }, A), allow("duties-a"), NO_GENESIS],
    ["before genesis: slot 2", facts("BLOCK", { slot: 2n }, A), allow("duties-a"), PRE_GENESIS],
    ["before genesis: slot 3", facts("BLOCK", { slot: 3n }, A), refuse("future-blocks", "beyond the current slot 0 + 2"), PRE_GENESIS],
    ["clock rule skips types it does not name", facts("AGGREGATION_SLOT", { slot: 99999n }, A), allow("duties-a")],
  ]);
  assert.deepEqual(clockNow(CLOCK), { slot: 12000n, epoch: 375n });
  assert.deepEqual(clockNow({ ...CLOCK, nowMs: (GENESIS + 12 * 32) * 1000 - 1 }), { slot: 31n, epoch: 0n });
  assert.equal(clockNow(NO_GENESIS), null);
});

test("builder registration table: fee recipient pinned per group, gas limit bounds, warn", () => {
  const reg = (feeRecipient: string, gasLimit: bigint, over: Partial<RequestFacts> = {}): RequestFacts =>
    facts("VALIDATOR_REGISTRATION", { feeRecipient, gasLimit, timestamp: 1n }, { client: "auto", ...over });
  check(policy, [
    ["group a, pinned recipient", reg(FEE_A, 45_000_000n), allow("registrations")],
    ["group a, pinned recipient given upper-case", reg(FEE_A.toUpperCase().replace("0X", "0x"), 45_000_000n), allow("registrations")],
    ["group b, its recipient", reg(FEE_B, 45_000_000n, { pubkey: PK_B1 }), allow("registrations")],
    ["group a, foreign recipient", reg(FEE_OTHER, 45_000_000n), refuse("fee-a", `fee_recipient ${FEE_OTHER} is not an allowed one (${FEE_A})`, "(group a)")],
    ["group a with group b's recipient", reg(FEE_B, 45_000_000n, { pubkey: PK_A2 }), refuse("fee-a", FEE_B)],
    ["group b with group a's recipient", reg(FEE_A, 45_000_000n, { pubkey: PK_B1 }), refuse("fee-b")],
    ["ungrouped key: no recipient pinned", reg(FEE_OTHER, 45_000_000n, { pubkey: PK_X }), allow("registrations")],
    ["gas at the lower bound (warned)", reg(FEE_A, 30_000_000n), allow("registrations", ["gas-warn"])],
    ["gas at the upper bound (warned)", reg(FEE_A, 60_000_000n), allow("registrations", ["gas-warn"])],
    ["gas below", reg(FEE_A, 29_999_999n), refuse("gas", "gas_limit 29999999 is outside [30000000, 60000000]")],
    ["gas above", reg(FEE_A, 2n ** 64n - 1n), refuse("gas", "gas_limit 18446744073709551615 is outside")],
    ["unknown client: no rule lets it register", reg(FEE_A, 45_000_000n, { client: null }), refuse(DEFAULT_DENY_RULE, "no policy rule allows VALIDATOR_REGISTRATION")],
  ]);
  const d = evaluatePolicy(policy, reg(FEE_A, 36_000_000n), CLOCK);
  assert.equal(d.warnings[0].message, 'policy rule "gas-warn" would refuse VALIDATOR_REGISTRATION: gas_limit 36000000 is outside [45000000, 45000000] (we vote for 45M) [mode: warn, not enforced]');
});

test("exits and deposits: approval_required with quorum and approvers; deposit credentials", () => {
  const exit = evaluatePolicy(policy, facts("VOLUNTARY_EXIT", { epoch: 300n, validatorIndex: 7n }, A), CLOCK);
  assert.deepEqual(exit, { outcome: "approval_required", ruleId: "exits", quorum: 2, approvers: ["alice", "bob", "carol"], expirySeconds: 3600, warnings: [] });
  const dep = evaluatePolicy(policy, facts("DEPOSIT", { amount: 32_000_000_000n, withdrawalCredentials: WC_OK }), CLOCK);
  // Defaults from `approvals` (quorum 2, 7200 s) and all approvers in file order.
  assert.deepEqual(dep, { outcome: "approval_required", ruleId: "deposits", quorum: 2, approvers: ["alice", "bob", "carol"], expirySeconds: 7200, warnings: [] });
  check(policy, [
    ["deposit, credentials allowed", facts("DEPOSIT", { amount: 1n, withdrawalCredentials: WC_OK }), { outcome: "approval_required", ruleId: "deposits" }],
    [
      "deposit, credentials not allowed",
      facts("DEPOSIT", { amount: 1n, withdrawalCredentials: WC_BAD }),
      refuse("deposit-credentials", `withdrawal_credentials ${WC_BAD} are not in the allowlist`),
    ],
    // A field condition only matches requests with the field: an exit is not a deposit.
    ["exit is not caught by the deposit-credentials rule", facts("VOLUNTARY_EXIT", { epoch: 1n }), { outcome: "approval_required", ruleId: "exits" }],
  ]);
});

test("keys by group and by pubkey; client permissions", () => {
  check(policy, [
    ["group a key, its client", facts("ATTESTATION", { targetEpoch: 375n }, { pubkey: PK_A2, client: "vc-a" }), allow("duties-a")],
    ["group b key, its client", facts("ATTESTATION", { targetEpoch: 375n }, { pubkey: PK_B1, client: "vc-b" }), allow("duties-b")],
    [
      "group b key from client a (forbidden)",
      facts("ATTESTATION", { targetEpoch: 375n }, { pubkey: PK_B1, client: "vc-a" }),
      refuse(DEFAULT_DENY_RULE, "ATTESTATION", "from client vc-a"),
    ],
    ["group a key from the automation client", facts("BLOCK", { slot: 12000n }, { pubkey: PK_A1, client: "auto" }), refuse(DEFAULT_DENY_RULE)],
    ["no client identity: rules naming clients do not match", facts("BLOCK", { slot: 12000n }, { client: null }), refuse(DEFAULT_DENY_RULE)],
    ["a client the policy does not name", facts("BLOCK", { slot: 12000n }, { client: "stranger" }), refuse(DEFAULT_DENY_RULE)],
    ["key by pubkey, any client (incl. none)", facts("RANDAO_REVEAL", { epoch: 375n }, { pubkey: PK_X }), allow("randao-x")],
    ["key by pubkey, given upper-case", facts("RANDAO_REVEAL", { epoch: 375n }, { pubkey: PK_X.toUpperCase().replace("0X", "0x"), client: "vc-b" }), allow("randao-x")],
    ["another key", facts("RANDAO_REVEAL", { epoch: 375n }, { pubkey: PK_Y }), refuse(DEFAULT_DENY_RULE)],
    ["key in no group", facts("BLOCK", { slot: 12000n }, { pubkey: PK_X, client: "vc-a" }), refuse(DEFAULT_DENY_RULE)],
    ["type not allowed to anyone", facts("SYNC_COMMITTEE_MESSAGE", { slot: 12000n }, A), refuse(DEFAULT_DENY_RULE, "SYNC_COMMITTEE_MESSAGE")],
  ]);
});

test("first match wins, warn mode continues, default deny", () => {
  const rules = (body: string): Policy => parsePolicy(`version: 1\nrules:\n${body}`, "order.yaml");
  const allowThenDeny = rules(`
  - { id: allow-blocks, match: { types: [BLOCK] }, action: allow }
  - { id: deny-far, match: { types: [BLOCK], beyond_clock: { slots: 0 } }, action: deny }
`);
  const denyThenAllow = rules(`
  - { id: deny-far, match: { types: [BLOCK], beyond_clock: { slots: 0 } }, action: deny }
  - { id: allow-blocks, match: { types: [BLOCK] }, action: allow }
`);
  const warnDenyThenAllow = rules(`
  - { id: warn-far, mode: warn, match: { types: [BLOCK], beyond_clock: { slots: 0 } }, action: deny }
  - { id: warn-all, mode: warn, match: {}, action: require_approval }
  - { id: allow-blocks, match: { types: [BLOCK] }, action: allow }
`);
  const warnAlone = rules(`
  - { id: warn-far, mode: warn, match: { types: [BLOCK], beyond_clock: { slots: 0 } }, action: deny }
  - { id: allow-attestations, match: { types: [ATTESTATION] }, action: allow }
`);
  const warnThenDeny = rules(`
  - { id: warn-approval, mode: warn, match: { types: [VOLUNTARY_EXIT] }, action: require_approval }
  - { id: deny-exits, match: { types: [VOLUNTARY_EXIT] }, action: deny }
`);
  const far = facts("BLOCK", { slot: 13000n });
  const near = facts("BLOCK", { slot: 12000n });
  check(allowThenDeny, [["allow first", far, allow("allow-blocks")]]);
  check(denyThenAllow, [
    ["deny first", far, refuse("deny-far", "block slot 13000 is beyond the current slot 12000 + 0")],
    ["deny does not match: next rule", near, allow("allow-blocks")],
  ]);
  check(warnDenyThenAllow, [
    ["warn rules add warnings, the allow signs", far, allow("allow-blocks", ["warn-far", "warn-all"])],
    ["only the matching warn rules warn", near, allow("allow-blocks", ["warn-all"])],
  ]);
  check(warnAlone, [
    // A warn rule never makes signable what the rest would refuse.
    ["warn then nothing: default deny, warning kept", far, { outcome: "refuse", ruleId: DEFAULT_DENY_RULE, warnings: ["warn-far"] }],
  ]);
  check(warnThenDeny, [["warn approval then enforce deny", facts("VOLUNTARY_EXIT", { epoch: 1n }), { outcome: "refuse", ruleId: "deny-exits", warnings: ["warn-approval"] }]]);
  const w = evaluatePolicy(warnThenDeny, facts("VOLUNTARY_EXIT", { epoch: 1n }), CLOCK).warnings[0];
  assert.match(w.message, /would require approval \(no approvers are defined: it can never be approved\) for VOLUNTARY_EXIT/);

  const empty = rules("  []\n"); // `rules:\n  []`: deny everything
  const d = evaluatePolicy(empty, near, CLOCK);
  assert.equal(d.outcome, "refuse");
  assert.equal(d.ruleId, DEFAULT_DENY_RULE);
  assert.ok(d.outcome === "refuse" && d.message.startsWith("no policy rule allows BLOCK for key 0xa1111111…"), d.outcome === "refuse" ? d.message : "");
});

test("a deny rule without field conditions explains what it matched", () => {
  const p = parsePolicy(
    `version: 1
groups: { ops: [${PK_A1}] }
clients: { c: { token_sha256: ${sha256hex("x")} } }
rules:
  - id: no-exits
    description: exits go through the runbook
    match: { types: [VOLUNTARY_EXIT], keys: [group:ops], clients: [c] }
    action: deny
  - id: nothing
    match: {}
    action: deny
`,
    "m.yaml",
  );
  check(p, [
    [
      "described",
      facts("VOLUNTARY_EXIT", { epoch: 1n }, { client: "c" }),
      refuse("no-exits", 'policy rule "no-exits" refuses VOLUNTARY_EXIT for key 0xa1111111… (group ops) from client c (exits go through the runbook)'),
    ],
    ["catch-all deny", facts("BLOCK", { slot: 1n }), refuse("nothing", 'policy rule "nothing" refuses BLOCK')],
  ]);
});

// ---- the built-in default ----

test("default policy: behaviour for every request type", () => {
  const p = defaultPolicy();
  assert.equal(policyRequiresClients(p), false);
  assert.equal(p.approvers.size, 0);
  const duty = (type: RequestType, fields: RequestFacts["fields"]): Case => [type, facts(type, fields), allow("validator-duties")];
  const cases: Case[] = [
    duty("BLOCK", { slot: 12002n }),
    duty("BLOCK_V2", { slot: 12000n }),
    duty("ATTESTATION", { slot: 12000n, sourceEpoch: 374n, targetEpoch: 376n }),
    duty("AGGREGATION_SLOT", { slot: 12000n }),
    duty("AGGREGATE_AND_PROOF", { slot: 12000n, validatorIndex: 1n }),
    duty("AGGREGATE_AND_PROOF_V2", { slot: 12000n, validatorIndex: 1n }),
    duty("RANDAO_REVEAL", { epoch: 375n }),
    duty("SYNC_COMMITTEE_MESSAGE", { slot: 12000n }),
    duty("SYNC_COMMITTEE_SELECTION_PROOF", { slot: 12000n }),
    duty("SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF", { slot: 12000n, validatorIndex: 1n }),
    ["BLOCK beyond the clock", facts("BLOCK", { slot: 12003n }), refuse("future-blocks", "block slot 12003 is beyond the current slot 12000 + 2")],
    ["BLOCK_V2 beyond the clock", facts("BLOCK_V2", { slot: 20000n }, { client: "anyone" }), refuse("future-blocks")],
    ["ATTESTATION beyond the clock", facts("ATTESTATION", { targetEpoch: 377n }), refuse("future-attestations", "target epoch 377 is beyond the current epoch 375 + 1")],
    ["BLOCK far ahead, genesis unknown", facts("BLOCK", { slot: 10n ** 12n }), allow("validator-duties"), NO_GENESIS],
    ["VOLUNTARY_EXIT", facts("VOLUNTARY_EXIT", { epoch: 1n, validatorIndex: 1n }), { outcome: "approval_required", ruleId: "exits-need-approval" }],
    ["DEPOSIT", facts("DEPOSIT", { amount: 32_000_000_000n, withdrawalCredentials: WC_OK }), { outcome: "approval_required", ruleId: "deposits-need-approval" }],
    ["VALIDATOR_REGISTRATION, 60M", facts("VALIDATOR_REGISTRATION", { feeRecipient: FEE_OTHER, gasLimit: 60_000_000n, timestamp: 1n }), allow("registrations")],
    ["VALIDATOR_REGISTRATION, 30M", facts("VALIDATOR_REGISTRATION", { feeRecipient: FEE_A, gasLimit: 30_000_000n, timestamp: 1n }), allow("registrations")],
    ["VALIDATOR_REGISTRATION, 150M", facts("VALIDATOR_REGISTRATION", { feeRecipient: FEE_A, gasLimit: 150_000_000n, timestamp: 1n }), allow("registrations")],
    ["VALIDATOR_REGISTRATION, gas too low", facts("VALIDATOR_REGISTRATION", { feeRecipient: FEE_A, gasLimit: 1n, timestamp: 1n }), refuse("registration-gas-limit", "gas_limit 1 is outside [30000000, 150000000]")],
    ["VALIDATOR_REGISTRATION, gas too high", facts("VALIDATOR_REGISTRATION", { feeRecipient: FEE_A, gasLimit: 150_000_001n, timestamp: 1n }), refuse("registration-gas-limit")],
  ];
  check(p, cases);
  // Every request type is covered above.
  assert.deepEqual(new Set(cases.map((c) => c[1].type)), new Set(REQUEST_TYPES));
  // Exits and deposits can never be approved: no approvers.
  const exit = evaluatePolicy(p, facts("VOLUNTARY_EXIT", { epoch: 1n }), CLOCK);
  assert.ok(exit.outcome === "approval_required" && exit.approvers.length === 0);
  assert.ok(DEFAULT_POLICY_YAML.includes("can NEVER be"));
});

// ---- the example file ----

test("docs/example-policy.yaml parses and does what its comments say", () => {
  const file = path.join(ROOT, "docs/example-policy.yaml");
  const p = parsePolicy(fs.readFileSync(file, "utf8"), file);
  assert.deepEqual([...p.groups.keys()], ["operator-a", "operator-b"]);
  assert.deepEqual([...p.clients.keys()], ["lodestar-a", "teku-b", "automation"]);
  assert.deepEqual([...p.approvers.keys()], ["alice", "bob", "carol"]);
  assert.deepEqual(p.policyChanges, { requiredSignatures: 2 });
  assert.equal(policyRequiresClients(p), true);
  const [a1] = p.groups.get("operator-a")!;
  const [b1] = p.groups.get("operator-b")!;
  const reg = (client: string, pubkey: string, feeRecipient: string, gasLimit = 60_000_000n): RequestFacts =>
    facts("VALIDATOR_REGISTRATION", { feeRecipient, gasLimit, timestamp: 1n }, { client, pubkey });
  const feeA = "0x32ed8d607e96a0fe9d0f7821f64b42fa3f3b3d5d";
  const feeB = "0x054d2966fcbbfa2f7df5696950889b5997334c92";
  const treasury01 = "0x010000000000000000000000f315138065895c728b5c32442679b09b790737c8";
  check(p, [
    ["operator A attests", facts("ATTESTATION", { targetEpoch: 375n }, { client: "lodestar-a", pubkey: a1 }), allow("duties-operator-a")],
    ["operator A for operator B's key", facts("ATTESTATION", { targetEpoch: 375n }, { client: "lodestar-a", pubkey: b1 }), refuse(DEFAULT_DENY_RULE)],
    ["operator B proposes", facts("BLOCK_V2", { slot: 12001n }, { client: "teku-b", pubkey: b1 }), allow("duties-operator-b")],
    ["operator B proposes far ahead", facts("BLOCK_V2", { slot: 12100n }, { client: "teku-b", pubkey: b1 }), refuse("future-blocks")],
    ["automation registers A", reg("automation", a1, feeA), allow("registrations-operator-a")],
    ["automation registers B", reg("automation", b1, feeB), allow("registrations-operator-b")],
    ["automation, 45M gas: signed with a warning", reg("automation", b1, feeB, 45_000_000n), allow("registrations-operator-b", ["gas-limit-60m"])],
    ["automation, gas out of bounds", reg("automation", b1, feeB, 200_000_000n), refuse("gas-limit-bounds")],
    ["automation, wrong fee recipient", reg("automation", a1, feeB), refuse("fee-recipient-operator-a")],
    ["automation attests", facts("ATTESTATION", { targetEpoch: 375n }, { client: "automation", pubkey: a1 }), refuse(DEFAULT_DENY_RULE)],
    ["teku-b registers A", reg("teku-b", a1, feeA), refuse(DEFAULT_DENY_RULE)],
    ["exit of an A key by A", facts("VOLUNTARY_EXIT", { epoch: 1n }, { client: "lodestar-a", pubkey: a1 }), { outcome: "approval_required", ruleId: "exits-operator-a" }],
    ["exit of an A key by B", facts("VOLUNTARY_EXIT", { epoch: 1n }, { client: "teku-b", pubkey: a1 }), refuse(DEFAULT_DENY_RULE)],
    ["deposit to the treasury", facts("DEPOSIT", { amount: 1n, withdrawalCredentials: treasury01 }, { client: "automation", pubkey: b1 }), { outcome: "approval_required", ruleId: "deposits" }],
    ["deposit elsewhere", facts("DEPOSIT", { amount: 1n, withdrawalCredentials: WC_BAD }, { client: "lodestar-a", pubkey: a1 }), refuse("deposit-withdrawal-credentials")],
  ]);
  const exit = evaluatePolicy(p, facts("VOLUNTARY_EXIT", { epoch: 1n }, { client: "teku-b", pubkey: b1 }), CLOCK);
  assert.deepEqual(exit, { outcome: "approval_required", ruleId: "exits-operator-b", quorum: 2, approvers: ["alice", "bob", "carol"], expirySeconds: 3600, warnings: [] });
  assert.equal(clientForFingerprint(p, "F1:AC:EC:95:20:CE:82:8F:0F:00:10:5F:D0:4D:A0:E6:6D:FD:61:47:E2:85:60:C3:94:50:EC:B8:14:41:2D:67"), "automation");
});

// ---- client identities ----

test("client identities for the HTTP layer", () => {
  assert.equal(policyRequiresClients(policy), true);
  assert.equal(clientForToken(policy, TOKEN_A), "vc-a");
  assert.equal(clientForToken(policy, TOKEN_B), "vc-b");
  assert.equal(clientForToken(policy, TOKEN_A + "x"), null);
  assert.equal(clientForToken(policy, ""), null);
  assert.equal(clientForToken(policy, sha256hex(TOKEN_A)), null, "the hash itself is not the token");
  assert.equal(clientForFingerprint(policy, FP_AUTO), "auto");
  assert.equal(clientForFingerprint(policy, FP_AUTO_COLONS), "auto");
  assert.equal(clientForFingerprint(policy, FP_AUTO.slice(0, 62)), null);
  assert.equal(clientForFingerprint(policy, sha256hex("other")), null);
  assert.equal(clientForFingerprint(policy, sha256hex(TOKEN_A)), null, "a token hash is not a certificate");
  assert.equal(policy.sha256, sha256hex(FIXTURE));
  assert.equal(policy.source, "fixture.yaml");
  assert.deepEqual(policy.clients.get("auto"), { name: "auto", tlsFingerprintSha256: FP_AUTO });
  assert.deepEqual(policy.approvers.get("alice"), { name: "alice", publicKey: ALICE });
  assert.deepEqual([...policy.groups.get("a")!], [PK_A1, PK_A2]);
});

// ---- parse errors ----

const rule = (match: string, extra = "", action = "deny"): string => `version: 1
groups: { ops: [${PK_A1}] }
clients: { vc: { token_sha256: ${sha256hex("t")} } }
approvers: { alice: ${ALICE}, bob: ${BOB} }
rules:
  - id: r
    match: ${match}
    action: ${action}${extra}
`;

/** [name, YAML text, substrings the message must contain (after "bad.yaml:<line>:<col>: ")]. */
const parseErrors: [string, string, string[]][] = [
  ["empty file", "", ["the policy file is empty"]],
  ["not YAML", "rules: [", ["not valid YAML"]],
  ["duplicate YAML key", "version: 1\nversion: 1\nrules: []\n", ["not valid YAML", "unique"]],
  ["not a mapping", "- 1\n", ["expected a mapping"]],
  ["missing version", "rules: []\n", ['"version" is required']],
  ["missing rules", "version: 1\n", ['"rules" is required']],
  ["version 2", "version: 2\nrules: []\n", ["version: unsupported policy version \"2\""]],
  ["unknown top-level key", "version: 1\npermissive: true\nrules: []\n", ['permissive: unknown key "permissive"', "expected one of: version, groups"]],
  ["unknown rule key", rule("{}", "\n    acton: allow"), ['rules[0].acton: unknown key "acton"']],
  ["unknown match key", rule("{ type: [BLOCK] }"), ['rules[0].match.type: unknown key "type"', "types"]],
  ["unknown approval key", rule("{}", "\n    approval: { quorom: 1 }", "require_approval"), ['rules[0].approval.quorom: unknown key "quorom"']],
  ["unknown client key", "version: 1\nclients: { c: { token: abc } }\nrules: []\n", ['clients.c.token: unknown key "token"']],
  ["client without credentials", "version: 1\nclients: { c: {} }\nrules: []\n", ["clients.c: a client needs token_sha256"]],
  ["bad pubkey (short)", `version: 1\ngroups: { g: [0xa1b2] }\nrules: []\n`, ["groups.g[0]: a BLS public key must be 48 bytes (96 hex digits), got 4 hex digits"]],
  ["bad pubkey (not hex)", `version: 1\ngroups: { g: ["0x${"zz".repeat(48)}"] }\nrules: []\n`, ["groups.g[0]: a BLS public key is not hex"]],
  ["bad pubkey (no 0x)", `version: 1\ngroups: { g: ["${"a1".repeat(48)}"] }\nrules: []\n`, ['groups.g[0]: a BLS public key must start with "0x"']],
  ["bad pubkey (not a compressed point)", `version: 1\ngroups: { g: [0x${"11".repeat(48)}] }\nrules: []\n`, ["groups.g[0]: not a compressed BLS12-381 public key"]],
  ["duplicate pubkey in a group", `version: 1\ngroups: { g: [${PK_A1}, ${PK_A1.toUpperCase().replace("0X", "0x")}] }\nrules: []\n`, ["groups.g[1]: duplicate public key"]],
  ["bad pubkey in a rule", rule("{ keys: [0xabc] }"), ["rules[0].match.keys[0]: a BLS public key must be 48 bytes"]],
  ["key reference neither pubkey nor group", rule("{ keys: [ops] }"), ['rules[0].match.keys[0]: expected a public key "0x…" or "group:<name>", got "ops"']],
  ["bad group name", `version: 1\ngroups: { "a b": [] }\nrules: []\n`, ['groups.a b: invalid group name "a b"']],
  ["duplicate rule id", rule("{}", "\n  - id: r\n    action: allow"), ['rules[1].id: duplicate rule id "r" (also rules[0])']],
  ["invalid rule id", rule("{}").replace("id: r", "id: Future_Blocks"), ['rules[0].id: invalid rule id "Future_Blocks"']],
  ["reserved rule id", rule("{}").replace("id: r", "id: default-deny"), ['rules[0].id: "default-deny" is reserved']],
  ["missing action", "version: 1\nrules:\n  - id: r\n", ['rules[0]: "action" is required']],
  ["unknown action", rule("{}", "", "permit"), ['rules[0].action: unknown action "permit" (expected one of: allow, deny, require_approval)']],
  ["unknown mode", rule("{}", "\n    mode: audit"), ['rules[0].mode: unknown mode "audit" (expected one of: enforce, warn)']],
  ["warn + allow", rule("{}", "\n    mode: warn", "allow"), ["rules[0].mode: mode: warn applies to deny and require_approval rules only"]],
  ["approval on a deny rule", rule("{}", "\n    approval: { quorum: 1 }"), ["rules[0].approval: only a require_approval rule takes an approval section"]],
  ["unknown type", rule("{ types: [BLOCK, BLOK] }"), ['rules[0].match.types[1]: unknown request type "BLOK" (expected one of: BLOCK, BLOCK_V2']],
  ["unknown group", rule("{ keys: [group:nope] }"), ['rules[0].match.keys[0]: unknown group "nope" (defined: ops)']],
  ["unknown client", rule("{ clients: [lodestar] }"), ['rules[0].match.clients[0]: unknown client "lodestar" (defined: vc)']],
  ["unknown approver", rule("{}", "\n    approval: { approvers: [alice, mallory] }", "require_approval"), ['rules[0].approval.approvers[1]: unknown approver "mallory" (defined: alice, bob)']],
  ["approver listed twice", rule("{}", "\n    approval: { approvers: [alice, alice] }", "require_approval"), ['rules[0].approval.approvers[1]: approver "alice" is listed twice']],
  ["quorum above its approvers", rule("{}", "\n    approval: { quorum: 2, approvers: [alice] }", "require_approval"), ["rules[0].approval.quorum: quorum 2 is more than its 1 approvers"]],
  ["default quorum above the approvers", rule("{}").replace("rules:", "approvals: { quorum: 3 }\nrules:"), ["approvals.quorum: quorum 3 is more than the 2 approvers defined"]],
  ["quorum 0", rule("{}", "\n    approval: { quorum: 0 }", "require_approval"), ["rules[0].approval.quorum: 0 is out of range [1, 1000]"]],
  ["policy_changes above the approvers", rule("{}").replace("rules:", "policy_changes: { required_signatures: 3 }\nrules:"), ["policy_changes.required_signatures: 3 signatures required but only 2 approvers are defined"]],
  ["bad hex token hash", "version: 1\nclients: { c: { token_sha256: xyz } }\nrules: []\n", ['clients.c.token_sha256: expected a SHA-256 digest (64 hex digits), got "xyz"']],
  ["short token hash", `version: 1\nclients: { c: { token_sha256: ${"ab".repeat(31)} } }\nrules: []\n`, ["clients.c.token_sha256: expected a SHA-256 digest"]],
  ["bad fingerprint pairs", `version: 1\nclients: { c: { tls_fingerprint_sha256: "AB:CD" } }\nrules: []\n`, ["clients.c.tls_fingerprint_sha256: expected 32 colon-separated hex pairs"]],
  ["same token twice", `version: 1\nclients:\n  c: { token_sha256: ${"ab".repeat(32)} }\n  d: { token_sha256: ${"AB".repeat(32)} }\nrules: []\n`, ['clients.d.token_sha256: the same token as client "c"']],
  ["bad fee recipient hex", rule(`{ fee_recipient_not_in: [0x${"g1".repeat(20)}] }`), ["rules[0].match.fee_recipient_not_in[0]: an execution address is not hex"]],
  ["fee recipient too short", rule(`{ fee_recipient_not_in: [0x${"a1".repeat(19)}] }`), ["rules[0].match.fee_recipient_not_in[0]: an execution address must be 20 bytes (40 hex digits), got 38"]],
  ["bad EIP-55 checksum", rule("{ fee_recipient_not_in: [0x32Ed8D607E96a0Fe9d0f7821f64B42fA3f3B3D5d] }"), ["bad EIP-55 checksum", "did you mean 0x32eD8D607E96a0Fe9d0f7821f64B42fA3f3B3D5d"]],
  ["withdrawal credentials wrong length", rule(`{ withdrawal_credentials_not_in: [0x01${"00".repeat(20)}] }`), ["rules[0].match.withdrawal_credentials_not_in[0]: withdrawal credentials must be 32 bytes"]],
  ["gas limits reversed", rule("{ gas_limit_outside: [60000000, 30000000] }"), ["rules[0].match.gas_limit_outside: min 60000000 is greater than max 30000000"]],
  ["gas limits not a pair", rule("{ gas_limit_outside: [1] }"), ["rules[0].match.gas_limit_outside: expected [min, max]"]],
  ["gas limit not a number", rule("{ gas_limit_outside: [30M, 60M] }"), ['rules[0].match.gas_limit_outside[0]: expected a non-negative decimal integer, got "30M"']],
  ["gas limit negative", rule("{ gas_limit_outside: [-1, 60] }"), ['rules[0].match.gas_limit_outside[0]: expected a non-negative decimal integer, got "-1"']],
  ["beyond_clock empty", rule("{ beyond_clock: {} }"), ["rules[0].match.beyond_clock: give slots and/or epochs"]],
  ["beyond_clock unknown unit", rule("{ beyond_clock: { seconds: 5 } }"), ['rules[0].match.beyond_clock.seconds: unknown key "seconds"']],
  ["beyond_clock impossible for the types", rule("{ types: [DEPOSIT], beyond_clock: { slots: 2 } }"), ["rules[0].match.beyond_clock: can never match"]],
  ["fee condition impossible for the types", rule(`{ types: [BLOCK], fee_recipient_not_in: [${FEE_A}] }`), ["rules[0].match.fee_recipient_not_in: can never match: none of the rule's types has a fee recipient"]],
  ["empty list in a condition", rule("{ types: [] }"), ["rules[0].match.types: the list is empty"]],
  ["rules not a list", "version: 1\nrules: { id: r }\n", ["rules: expected a list"]],
  ["string expected", rule("{ types: [[BLOCK]] }"), ["rules[0].match.types[0]: expected a string"]],
  ["aliases", `version: 1\ngroups: { g: &k [${PK_A1}], h: *k }\nrules: []\n`, ["groups.h: anchors and aliases are not supported"]],
  ["unreachable rule", rule("{}", "\n  - id: s\n    action: allow"), ['rules[1]: rule "s" can never be reached: rule "r" above matches every request']],
  ["bad approver key", "version: 1\napprovers: { alice: bm90IGEga2V5 }\nrules: []\n", ["approvers.alice: invalid approver public key"]],
  ["same approver key twice", `version: 1\napprovers: { alice: ${ALICE}, eve: "${ALICE}" }\nrules: []\n`, ['approvers.eve: the same public key as approver "alice"']],
  ["bad approver name", `version: 1\napprovers: { "-x": ${ALICE} }\nrules: []\n`, ['approvers.-x: invalid approver name "-x"']],
];

test("parse errors table", () => {
  for (const [name, text, has] of parseErrors) {
    let err: unknown = null;
    try {
      parsePolicy(text, "bad.yaml");
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof VigilError, `${name}: expected a VigilError, got ${String(err)}`);
    assert.equal(err.kind, "bad_request", name);
    assert.equal(err.code, "INVALID_POLICY", name);
    assert.match(err.message, /^bad\.yaml(:\d+:\d+)?: /, `${name}: message starts with the file (and position): ${err.message}`);
    for (const s of has) assert.ok(err.message.includes(s), `${name}: ${JSON.stringify(err.message)} should include ${JSON.stringify(s)}`);
  }
});

test("parse errors name the line and column", () => {
  const text = rule("{ types: [BLOCK, BLOK] }");
  assert.throws(() => parsePolicy(text, "p.yaml"), (e: VigilError) => e.message.startsWith('p.yaml:7:29: rules[0].match.types[1]: unknown request type "BLOK"'));
});

test("accepted forms: unquoted hex, PEM approver, digests with 0x or colons, underscores in integers", () => {
  const pem = generateKeyPairSync("ed25519").publicKey.export({ format: "pem", type: "spki" }).toString();
  const p = parsePolicy(
    `version: 1
groups: { g: [${PK_A1.toUpperCase().replace("0X", "0x")}] }
clients:
  c: { token_sha256: "0x${"AB".repeat(32)}", tls_fingerprint_sha256: ${"0f".repeat(32)} }
approvers:
  carol: |
${pem
  .trim()
  .split("\n")
  .map((l) => "    " + l)
  .join("\n")}
rules:
  - id: reg
    match: { types: [VALIDATOR_REGISTRATION], gas_limit_outside: [30_000_000, 60_000_000], fee_recipient_not_in: [0x32eD8D607E96a0Fe9d0f7821f64B42fA3f3B3D5d] }
    action: deny
  - id: exit
    match: { types: [VOLUNTARY_EXIT], keys: [group:g] }
    action: require_approval
`,
    "ok.yaml",
  );
  assert.deepEqual([...p.groups.get("g")!], [PK_A1]);
  assert.deepEqual(p.clients.get("c"), { name: "c", tokenSha256: "ab".repeat(32), tlsFingerprintSha256: "0f".repeat(32) });
  assert.equal(p.approvers.get("carol")!.publicKey.length, 44);
  assert.deepEqual(p.rules[0].match.gasLimitOutside, [30_000_000n, 60_000_000n]);
  assert.deepEqual([...p.rules[0].match.feeRecipientNotIn!], ["0x32ed8d607e96a0fe9d0f7821f64b42fa3f3b3d5d"]);
  assert.deepEqual(p.rules[1].approval, { quorum: 1, approvers: ["carol"], expirySeconds: 86400 });
  assert.deepEqual(p.approvals, { quorum: 1, expirySeconds: 86400 });
  assert.equal(p.policyChanges, null);
  assert.equal(p.rules[1].line, 14);
});
