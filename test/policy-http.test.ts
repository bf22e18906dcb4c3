// The operator's policy end to end over HTTP: the exit approval flow (2 of 3 approvers), the
// clock rule, pinned fee recipients, client identities, signed policy changes, and the audit log.
import "./helpers/preset-minimal.js";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { verifyAuditLog } from "../src/audit/log.js";
import { approvalsApprove } from "../src/cli/approvals.js";
import { VigilError } from "../src/errors.js";
import { approvalMessage } from "../src/policy/approvals.js";
import { newApproverKeyPair, signApproval } from "../src/policy/approver-keys.js";
import { addPolicySignature, policyDigest, signPolicy, signatureFileFor } from "../src/policy/signed-policy.js";
import { createPrivateKey } from "node:crypto";
import { interopKeys, lodestarSamples } from "./helpers/keys.js";
import { post, startTestServer, tempDir, type TestServer } from "./helpers/server.js";

const keys = interopKeys();
const sample = (file: string): Record<string, any> => structuredClone(lodestarSamples().find((s) => s.file === file)!.body);
const GVR = sample("ATTESTATION.json").fork_info.genesis_validators_root as string;
const ADMIN = "admin-token-0123456789abcdef";
const TOKEN_A = "client-a-token-0123456789";
const sha = (s: string): string => createHash("sha256").update(s).digest("hex");
const approvers = ["alice", "bob", "carol"].map((n) => newApproverKeyPair(n));

/** A devnet like the samples' (minimal preset, Altair at 0, Bellatrix at 1, 2 s slots), genesis 100 s ago. */
function devnetConfig(dir: string): string {
  const file = path.join(dir, "devnet.yaml");
  fs.writeFileSync(
    file,
    [
      "PRESET_BASE: minimal",
      "CONFIG_NAME: policy-devnet",
      "GENESIS_FORK_VERSION: 0x00000001",
      "ALTAIR_FORK_VERSION: 0x01000001",
      "ALTAIR_FORK_EPOCH: 0",
      "BELLATRIX_FORK_VERSION: 0x02000001",
      "BELLATRIX_FORK_EPOCH: 1",
      "SECONDS_PER_SLOT: 2",
      `GENESIS_TIME: ${Math.floor(Date.now() / 1000) - 100}`,
      `GENESIS_VALIDATORS_ROOT: "${GVR}"`,
    ].join("\n"),
  );
  return file;
}

function policyYaml(extraRule = ""): string {
  return `version: 1
clients:
  client-a: { token_sha256: ${sha(TOKEN_A)} }
approvers:
${approvers.map((a) => `  ${a.name}: ${a.publicKey}`).join("\n")}
approvals: { quorum: 2, expiry_seconds: 3600 }
policy_changes: { required_signatures: 2 }
rules:
  - id: future-attestations
    match: { types: [ATTESTATION], beyond_clock: { epochs: 1 } }
    action: deny
  - id: exits
    match: { types: [VOLUNTARY_EXIT] }
    action: require_approval
  - id: foreign-fee-recipient
    match: { types: [VALIDATOR_REGISTRATION], fee_recipient_not_in: ["0x0000000000000000000000000000000000000000"] }
    action: deny
${extraRule}  - id: duties
    match: { types: [ATTESTATION, RANDAO_REVEAL, VALIDATOR_REGISTRATION], clients: [client-a] }
    action: allow
`;
}

const exitBody = (epoch: string) => ({
  type: "VOLUNTARY_EXIT",
  fork_info: { fork: { previous_version: "0x01000001", current_version: "0x02000001", epoch: "1" }, genesis_validators_root: GVR },
  voluntary_exit: { epoch, validator_index: "0" },
});

describe("policy over HTTP", () => {
  let server: TestServer;
  let dir: string;
  let policyFile: string;
  const url = () => `${server.url}/api/v1/eth2/sign/${keys[0].pubkey}`;
  const auth = { authorization: `Bearer ${TOKEN_A}` };
  const admin = (p: string, body?: unknown) =>
    fetch(`${server.url}/admin/v1/approvals${p}`, {
      method: body ? "POST" : "GET",
      headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { "content-type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    }).then(async (r) => ({ status: r.status, json: await r.json() }));

  before(async () => {
    dir = tempDir();
    policyFile = path.join(dir, "policy.yaml");
    fs.writeFileSync(policyFile, policyYaml());
    server = await startTestServer(devnetConfig(dir), [keys[0].secret], { policyFile, apiToken: ADMIN, dataDir: path.join(dir, "data") });
  });
  after(async () => {
    await server.close(true);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("unknown clients get 401; a known client doing what no rule allows gets 403", async () => {
    const r = await post(url(), sample("RANDAO_REVEAL.json"));
    assert.equal(r.status, 401);
    assert.equal(r.json.code, "UNKNOWN_CLIENT");
    const ok = await post(url(), sample("RANDAO_REVEAL.json"), auth);
    assert.equal(ok.status, 200, ok.text);
    const block = await post(url(), sample("BLOCK_V2.BELLATRIX.json"), auth);
    assert.equal(block.status, 403);
    assert.equal(block.json.code, "POLICY_REFUSED");
    assert.equal(block.json.rule_id, "default-deny");
  });

  it("the key list is for known clients only too", async () => {
    const anon = await fetch(`${server.url}/api/v1/eth2/publicKeys`);
    assert.equal(anon.status, 401);
    assert.equal((await anon.json()).code, "UNKNOWN_CLIENT");
    const known = await fetch(`${server.url}/api/v1/eth2/publicKeys`, { headers: auth });
    assert.equal(known.status, 200);
    assert.ok(((await known.json()) as string[]).length > 0);
  });

  it("a far-future attestation is refused by the clock rule", async () => {
    const a = sample("ATTESTATION.json");
    delete a.signingRoot;
    a.fork_info.fork = { previous_version: "0x01000001", current_version: "0x02000001", epoch: "1" };
    a.attestation.source.epoch = "999";
    a.attestation.target.epoch = "1000";
    const r = await post(url(), a, auth);
    assert.equal(r.status, 403, r.text);
    assert.equal(r.json.rule_id, "future-attestations");
  });

  it("a registration with a foreign fee recipient is refused; the pinned one signs", async () => {
    const reg = sample("VALIDATOR_REGISTRATION.json");
    assert.equal((await post(url(), reg, auth)).status, 200);
    delete reg.signingRoot;
    reg.validator_registration.fee_recipient = "0x" + "ab".repeat(20);
    const r = await post(url(), reg, auth);
    assert.equal(r.status, 403);
    assert.equal(r.json.rule_id, "foreign-fee-recipient");
  });

  it("an exit is refused until 2 of 3 approvers sign; then the same exit signs, another does not", async () => {
    const first = await post(url(), exitBody("5"), auth);
    assert.equal(first.status, 403, first.text);
    assert.equal(first.json.code, "APPROVAL_REQUIRED");
    const { approval_id: id, signing_root: root } = first.json;
    const listed = await admin("");
    assert.equal(listed.status, 200);
    assert.ok(listed.json.data.some((e: { id: string }) => e.id === id));
    const msg = approvalMessage(id, keys[0].pubkey, root);
    const sig = (a: (typeof approvers)[number]) => signApproval(createPrivateKey(a.privatePem), msg);
    // A bad signature, then a valid approval from alice: still one short.
    assert.equal((await admin(`/${id}/approve`, { approver: "bob", signature: sig(approvers[0]) })).status, 400);
    assert.equal((await admin(`/${id}/approve`, { approver: "alice", signature: sig(approvers[0]) })).json.data.status, "pending");
    assert.equal((await post(url(), exitBody("5"), auth)).json.code, "APPROVAL_REQUIRED");
    assert.equal((await admin(`/${id}/approve`, { approver: "carol", signature: sig(approvers[2]) })).json.data.status, "approved");
    const signed = await post(url(), exitBody("5"), auth);
    assert.equal(signed.status, 200, signed.text);
    const other = await post(url(), exitBody("6"), auth);
    assert.equal(other.json.code, "APPROVAL_REQUIRED");
    assert.notEqual(other.json.approval_id, id);
    // `vigil approvals approve` recomputes the root from the request the entry keeps, on this machine's copy of the network.
    const entry = (await admin(`/${other.json.approval_id}`)).json.data;
    assert.equal(entry.network, "policy-devnet");
    assert.equal(entry.request.voluntary_exit.epoch, "6");
    const keyFile = path.join(dir, "alice.key");
    fs.writeFileSync(keyFile, approvers[0].privatePem, { mode: 0o600 });
    const tokenFile = path.join(dir, "admin-token.txt");
    fs.writeFileSync(tokenFile, ADMIN, { mode: 0o600 });
    const flags = { url: server.url, tokenFile, id: other.json.approval_id, key: keyFile, yes: true };
    const quiet = (): void => undefined;
    await assert.rejects(approvalsApprove(flags, quiet), (e: unknown) => e instanceof VigilError && e.code === "UNVERIFIED_APPROVAL" && /network "policy-devnet": pass --network/.test(e.message));
    const state = await approvalsApprove({ ...flags, network: path.join(dir, "devnet.yaml") }, quiet);
    assert.deepEqual([state.status, state.approvals], ["pending", 1]);
    assert.equal((await admin("", undefined)).status, 200);
    const noToken = await fetch(`${server.url}/admin/v1/approvals`);
    assert.equal(noToken.status, 401);
  });

  it("every decision is in the audit log; an edit is detected", async () => {
    const v = await verifyAuditLog(server.dataDir);
    assert.ok(v.ok, JSON.stringify(v.problems));
    const lines = fs.readFileSync(path.join(server.dataDir, "audit.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const outcomes = new Set(lines.map((l) => l.outcome));
    for (const o of ["allowed", "refused", "approval_required", "approved"]) assert.ok(outcomes.has(o), `audit has ${o}`);
    assert.ok(lines.some((l) => l.ruleId === "future-attestations" && l.outcome === "refused"));
    // Tamper with a copy: change one refusal into an allowance.
    const copy = tempDir();
    fs.copyFileSync(path.join(server.dataDir, "audit.log"), path.join(copy, "audit.log"));
    fs.copyFileSync(path.join(server.dataDir, "audit.head"), path.join(copy, "audit.head"));
    const text = fs.readFileSync(path.join(copy, "audit.log"), "utf8");
    fs.writeFileSync(path.join(copy, "audit.log"), text.replace('"outcome":"refused"', '"outcome":"allowed"'));
    const bad = await verifyAuditLog(copy);
    assert.equal(bad.ok, false);
    fs.rmSync(copy, { recursive: true, force: true });
  });

  it("a policy change without the approvers' signatures is refused at start; with 2 it is accepted", async () => {
    await server.close(true);
    const loosened = path.join(dir, "loosened.yaml");
    const text = policyYaml("  - id: blocks-for-any-client\n    match: { types: [BLOCK_V2] }\n    action: allow\n");
    fs.writeFileSync(loosened, text);
    await assert.rejects(
      startTestServer(devnetConfig(dir), [keys[0].secret], { policyFile: loosened, apiToken: ADMIN, dataDir: path.join(dir, "data") }),
      /POLICY_SIGNATURES|signature/i,
    );
    // Signed as the change from the policy running now (the accepted copy in the data directory).
    const running = policyDigest(fs.readFileSync(path.join(dir, "data", "policy.accepted.yaml")));
    let sigs = addPolicySignature(null, text, signPolicy(text, createPrivateKey(approvers[1].privatePem), "bob", running), running);
    sigs = addPolicySignature(sigs, text, signPolicy(text, createPrivateKey(approvers[2].privatePem), "carol", running), running);
    fs.writeFileSync(signatureFileFor(loosened), JSON.stringify(sigs));
    server = await startTestServer(devnetConfig(dir), [keys[0].secret], { policyFile: loosened, apiToken: ADMIN, dataDir: path.join(dir, "data") });
    assert.equal((await post(url(), sample("BLOCK_V2.BELLATRIX.json"), auth)).status, 200);
    // Dropping --policy keeps the accepted policy, not the built-in default.
    await server.close(true);
    server = await startTestServer(devnetConfig(dir), [keys[0].secret], { apiToken: ADMIN, dataDir: path.join(dir, "data") });
    assert.equal((await post(url(), sample("RANDAO_REVEAL.json"))).status, 401);
  });

  it("a policy that was in force before is not put in force again (its old change signatures would count again); a new revision is", async () => {
    await server.close(true);
    const data = path.join(dir, "data");
    const sign = (text: string): string => {
      const running = policyDigest(fs.readFileSync(path.join(data, "policy.accepted.yaml")));
      let sigs = addPolicySignature(null, text, signPolicy(text, createPrivateKey(approvers[1].privatePem), "bob", running), running);
      sigs = addPolicySignature(sigs, text, signPolicy(text, createPrivateKey(approvers[2].privatePem), "carol", running), running);
      return JSON.stringify(sigs);
    };
    const start = (policyFile: string) => startTestServer(devnetConfig(dir), [keys[0].secret], { policyFile, apiToken: ADMIN, dataDir: data });
    // Back to the first policy, properly signed as a change from the loosened one: refused all the same.
    const reverted = path.join(dir, "reverted.yaml");
    fs.writeFileSync(reverted, policyYaml());
    fs.writeFileSync(signatureFileFor(reverted), sign(policyYaml()));
    await assert.rejects(start(reverted), (e: unknown) => e instanceof VigilError && e.code === "POLICY_REPEATED" && /was in force here before/.test(e.message));
    // The same rules as a new revision: accepted.
    const revision = "# revision 3\n" + policyYaml();
    fs.writeFileSync(reverted, revision);
    fs.writeFileSync(signatureFileFor(reverted), sign(revision));
    server = await start(reverted);
    assert.equal((await post(url(), sample("BLOCK_V2.BELLATRIX.json"), auth)).status, 403, "the loosening rule is gone");
    await server.close(true);
    // The loosened policy with the signatures it once had (a change from the first policy): refused.
    await assert.rejects(start(path.join(dir, "loosened.yaml")), (e: unknown) => e instanceof VigilError && e.code === "POLICY_SIGNATURES_REQUIRED");
    const history = fs.readFileSync(path.join(data, "policy.history"), "utf8").trim().split("\n");
    assert.deepEqual(history, [policyYaml(), fs.readFileSync(path.join(dir, "loosened.yaml"), "utf8"), revision].map((t) => policyDigest(t)));
    server = await startTestServer(devnetConfig(dir), [keys[0].secret], { apiToken: ADMIN, dataDir: data });
  });

  it("a start-up that fails accepts nothing: the new policy is recorded only once the instance runs with it (listening and unlocked)", async () => {
    await server.close(true);
    const data = path.join(dir, "data");
    const read = (f: string): string => fs.readFileSync(path.join(data, f), "utf8");
    const [accepted, history] = [read("policy.accepted.yaml"), read("policy.history")];
    const next = "# revision 4\n" + policyYaml();
    const file = path.join(dir, "next.yaml");
    fs.writeFileSync(file, next);
    const running = policyDigest(accepted);
    let sigs = addPolicySignature(null, next, signPolicy(next, createPrivateKey(approvers[0].privatePem), "alice", running), running);
    sigs = addPolicySignature(sigs, next, signPolicy(next, createPrivateKey(approvers[1].privatePem), "bob", running), running);
    fs.writeFileSync(signatureFileFor(file), JSON.stringify(sigs));
    const start = () => startTestServer(devnetConfig(dir), [keys[0].secret], { policyFile: file, apiToken: ADMIN, dataDir: data });
    fs.writeFileSync(path.join(data, "keys.vigil"), "a sealed key store"); // start-up fails after the policy was read
    await assert.rejects(start(), (e: unknown) => e instanceof VigilError && e.code === "UNLOCK_REQUIRED");
    fs.rmSync(path.join(data, "keys.vigil"));
    assert.equal(read("policy.accepted.yaml"), accepted);
    assert.equal(read("policy.history"), history);
    // Listening, but locked (waiting for the key store passphrase): not started yet either.
    server = await startTestServer(devnetConfig(dir), [], { policyFile: file, apiToken: ADMIN, dataDir: data, unlock: "env:UNUSED" });
    assert.equal((await server.vault.status()).locked, true);
    assert.equal(read("policy.accepted.yaml"), accepted);
    assert.equal(read("policy.history"), history);
    await server.vault.unlock("env:UNUSED", async () => "a key store passphrase");
    assert.equal(read("policy.accepted.yaml"), next);
    assert.equal(read("policy.history"), history + policyDigest(next) + "\n");
    await server.close(true);
    fs.rmSync(path.join(data, "keys.vigil"));
    server = await start();
    assert.equal(read("policy.accepted.yaml"), next);
    assert.equal(read("policy.history"), history + policyDigest(next) + "\n");
  });
});
