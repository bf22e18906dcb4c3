/**
 * Approvals (M-of-N): approver keys, the approval message, the persisted queue (quorum,
 * duplicates, unknown and foreign keys, rejections, expiry, identity of the request, reopening,
 * file mode), signed policy changes, and the approvals CLI against a stand-in admin API.
 */
import assert from "node:assert/strict";
import { createPublicKey, type KeyObject } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { VigilError } from "../src/errors.js";
import {
  approvalId,
  approvalMessage,
  ApprovalQueue,
  MAX_KEPT_REQUEST_BYTES,
  rejectionMessage,
  type ApprovalEntry,
  type ApprovalRequestFacts,
  type ApproverRef,
} from "../src/policy/approvals.js";
import { signingVectors } from "./helpers/keys.js";
import {
  canonicalApproverPublicKey,
  loadApproverPrivateKey,
  newApproverKeyPair,
  parseApproverPrivateKey,
  parseApproverPublicKey,
  publicKeyBase64,
  signApproval,
  verifyApproval,
  writeApproverKeyPair,
} from "../src/policy/approver-keys.js";
import {
  addPolicySignature,
  checkPolicyChange,
  policyDigest,
  readApproverSettings,
  signPolicy,
  verifyPolicySignatures,
} from "../src/policy/signed-policy.js";
import { approvalsApprove, approvalsList, approvalsReject, approvalsShow, approversNew, policySign, policyVerify, printable } from "../src/cli/approvals.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-approvals-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => {
  const d = path.join(tmp, String(++n));
  fs.mkdirSync(d);
  return d;
};

const PUBKEY = "0x" + "a1".repeat(48);
const PUBKEY2 = "0x" + "b2".repeat(48);
const ROOT = "0x" + "11".repeat(32);
const ROOT2 = "0x" + "22".repeat(32);
const T0 = Date.parse("2026-01-01T00:00:00Z");

interface Approver {
  name: string;
  key: KeyObject;
  publicKey: string;
}
const mk = (name: string): Approver => {
  const p = newApproverKeyPair(name);
  return { name, key: parseApproverPrivateKey(p.privatePem), publicKey: p.publicKey };
};
const alice = mk("alice");
const bob = mk("bob");
const carol = mk("carol");
const mallory = mk("mallory");
const refs = (...a: Approver[]): ApproverRef[] => a.map((x) => ({ name: x.name, publicKey: x.publicKey }));

const facts = (over: Partial<ApprovalRequestFacts> = {}): ApprovalRequestFacts => ({
  pubkey: PUBKEY,
  signingRoot: ROOT,
  type: "VOLUNTARY_EXIT",
  summary: "voluntary exit of validator 42 at epoch 100",
  client: "vc-1",
  ruleId: "exits-need-approval",
  quorum: 2,
  approvers: refs(alice, bob, carol),
  expirySeconds: 600,
  content: { epoch: 100n, validator_index: 42n },
  ...over,
});

const approveSig = (a: Approver, id: string, pubkey = PUBKEY, root = ROOT): string => signApproval(a.key, approvalMessage(id, pubkey, root));
const rejectSig = (a: Approver, id: string, pubkey = PUBKEY, root = ROOT): string => signApproval(a.key, rejectionMessage(id, pubkey, root));

const code = (c: string, message?: RegExp) => (e: unknown): boolean => {
  assert.ok(e instanceof VigilError, `expected a VigilError, got ${String(e)}`);
  assert.equal(e.code, c, e.message);
  if (message) assert.match(e.message, message);
  return true;
};

describe("approver keys", () => {
  test("key pair round trip: base64 raw and PEM SPKI forms are the same key", () => {
    const p = newApproverKeyPair("alice");
    assert.match(p.publicKey, /^[A-Za-z0-9+/]{43}=$/);
    assert.equal(Buffer.from(p.publicKey, "base64").length, 32);
    const priv = parseApproverPrivateKey(p.privatePem);
    assert.equal(publicKeyBase64(priv), p.publicKey);
    const fromB64 = parseApproverPublicKey(p.publicKey);
    const pem = createPublicKey(priv).export({ format: "pem", type: "spki" }).toString();
    const fromPem = parseApproverPublicKey(pem);
    assert.equal(publicKeyBase64(fromB64), p.publicKey);
    assert.equal(publicKeyBase64(fromPem), p.publicKey);
    assert.equal(canonicalApproverPublicKey(pem), p.publicKey);
    const sig = signApproval(priv, "hello");
    assert.ok(verifyApproval(fromB64, "hello", sig));
    assert.ok(verifyApproval(pem, "hello", sig));
    assert.ok(!verifyApproval(p.publicKey, "hellO", sig));
    assert.ok(!verifyApproval(p.publicKey, "hello", "not base64"));
    assert.ok(!verifyApproval(p.publicKey, "hello", Buffer.alloc(64).toString("base64")));
  });

  test("bad public keys are refused", () => {
    assert.throws(() => parseApproverPublicKey("abc"), code("INVALID_APPROVER_PUBLIC_KEY"));
    assert.throws(() => parseApproverPublicKey(Buffer.alloc(31).toString("base64")), code("INVALID_APPROVER_PUBLIC_KEY"));
    const pemPriv = newApproverKeyPair("x").privatePem;
    assert.throws(() => parseApproverPublicKey(pemPriv), code("INVALID_APPROVER_PUBLIC_KEY"));
    assert.throws(() => newApproverKeyPair("../evil"), code("INVALID_APPROVER_NAME"));
  });

  test("key files: private 0600, public beside it, never overwritten; loose modes refused", () => {
    const dir = freshDir();
    const w = writeApproverKeyPair(dir, "dave");
    assert.equal(fs.statSync(w.keyFile).mode & 0o777, 0o600);
    assert.equal(fs.readFileSync(w.pubFile, "utf8").trim(), w.publicKey);
    const k = loadApproverPrivateKey(w.keyFile);
    assert.equal(publicKeyBase64(k), w.publicKey);
    assert.throws(() => writeApproverKeyPair(dir, "dave"), code("APPROVER_KEY_EXISTS"));
    fs.chmodSync(w.keyFile, 0o644);
    assert.throws(() => loadApproverPrivateKey(w.keyFile), code("INSECURE_APPROVER_KEY"));
  });
});

describe("approval message", () => {
  test("an approval verifies; a tampered id, pubkey or root does not; rejection is another domain", () => {
    const id = approvalId(PUBKEY, ROOT, "r1");
    assert.match(id, /^[0-9a-f]{32}$/);
    assert.equal(approvalId(PUBKEY.toUpperCase().replace("0X", "0x"), ROOT, "r1"), id, "hex case does not matter");
    assert.notEqual(approvalId(PUBKEY, ROOT, "r2"), id);
    assert.equal(approvalMessage(id, PUBKEY, ROOT).toString(), `vigil-approval-v1\n${id}\n${PUBKEY}\n${ROOT}`);
    const sig = approveSig(alice, id);
    assert.ok(verifyApproval(alice.publicKey, approvalMessage(id, PUBKEY, ROOT), sig));
    const otherId = approvalId(PUBKEY, ROOT, "r2");
    assert.ok(!verifyApproval(alice.publicKey, approvalMessage(otherId, PUBKEY, ROOT), sig), "tampered id");
    assert.ok(!verifyApproval(alice.publicKey, approvalMessage(id, PUBKEY2, ROOT), sig), "tampered pubkey");
    assert.ok(!verifyApproval(alice.publicKey, approvalMessage(id, PUBKEY, ROOT2), sig), "tampered root");
    assert.ok(!verifyApproval(alice.publicKey, rejectionMessage(id, PUBKEY, ROOT), sig), "an approval is no rejection");
    assert.ok(!verifyApproval(bob.publicKey, approvalMessage(id, PUBKEY, ROOT), sig), "another approver's key");
  });
});

describe("approval queue", () => {
  test("request is idempotent for the same id", () => {
    const q = ApprovalQueue.open(freshDir());
    const a = q.request(facts(), T0);
    const b = q.request(facts(), T0 + 5000);
    assert.deepEqual(a, b);
    assert.equal(a.status, "pending");
    const nonce = q.get(a.id)!.nonce!;
    assert.match(nonce, /^[0-9a-f]{32}$/);
    assert.equal(a.id, approvalId(PUBKEY, ROOT, "exits-need-approval", nonce));
    assert.equal(q.list().length, 1);
    const e = q.get(a.id)!;
    assert.equal(e.created, new Date(T0).toISOString());
    assert.deepEqual(e.content, { epoch: "100", validator_index: "42" });
    assert.equal(e.summary, facts().summary);
    // Another root or rule is another entry.
    assert.notEqual(q.request(facts({ signingRoot: ROOT2 }), T0).id, a.id);
    assert.notEqual(q.request(facts({ ruleId: "other" }), T0).id, a.id);
    assert.equal(q.list().length, 3);
  });

  test("the sign request is kept for approvers up to MAX_KEPT_REQUEST_BYTES of compact JSON, null beyond (and on reopening the file)", () => {
    const dir = freshDir();
    const q = ApprovalQueue.open(dir);
    // A request whose compact JSON is exactly `bytes` long.
    const sized = (bytes: number) => {
      const shell = JSON.stringify({ type: "VOLUNTARY_EXIT", pad: "" });
      return { type: "VOLUNTARY_EXIT", pad: "x".repeat(bytes - shell.length) };
    };
    const fits = sized(MAX_KEPT_REQUEST_BYTES);
    const over = sized(MAX_KEPT_REQUEST_BYTES + 1);
    assert.equal(JSON.stringify(over).length, MAX_KEPT_REQUEST_BYTES + 1);
    const a = q.request(facts({ request: fits }), T0);
    const b = q.request(facts({ signingRoot: ROOT2, request: over }), T0);
    const c = q.request(facts({ ruleId: "no-request" }), T0);
    assert.deepEqual(q.get(a.id)!.request, fits);
    assert.equal(q.get(b.id)!.request, null);
    assert.equal(q.get(c.id)!.request, null);
    const reopened = ApprovalQueue.open(dir);
    assert.deepEqual(reopened.get(a.id)!.request, fits);
    assert.equal(reopened.get(b.id)!.request, null);
  });

  test("2-of-3: one approval pending, a second by another approver approves", () => {
    const q = ApprovalQueue.open(freshDir());
    const { id } = q.request(facts(), T0);
    const s1 = q.approve(id, "alice", approveSig(alice, id), T0 + 1000);
    assert.equal(s1.status, "pending");
    assert.equal(s1.approvals, 1);
    assert.equal(s1.quorum, 2);
    assert.ok(!q.isApproved(PUBKEY, ROOT, "exits-need-approval", T0 + 1000));
    const s2 = q.approve(id, "bob", approveSig(bob, id), T0 + 2000);
    assert.equal(s2.status, "approved");
    assert.equal(s2.approvals, 2);
    assert.ok(q.isApproved(PUBKEY, ROOT, "exits-need-approval", T0 + 2000));
    assert.equal(q.request(facts(), T0 + 3000).status, "approved", "the identical request is now signable");
    // A third approval is recorded but does not extend the window.
    const s3 = q.approve(id, "carol", approveSig(carol, id), T0 + 4000);
    assert.equal(s3.status, "approved");
    assert.equal(s3.expires_at, new Date(T0 + 2000 + 600_000).toISOString());
  });

  test("refusals: same approver twice, unknown approver, non-listed key, bad signature, unknown id", () => {
    const q = ApprovalQueue.open(freshDir());
    const { id } = q.request(facts(), T0);
    q.approve(id, "alice", approveSig(alice, id), T0);
    assert.throws(() => q.approve(id, "alice", approveSig(alice, id), T0), code("DUPLICATE_APPROVAL"));
    assert.throws(() => q.approve(id, "mallory", approveSig(mallory, id), T0), code("UNKNOWN_APPROVER"));
    assert.throws(() => q.approve(id, "bob", approveSig(mallory, id), T0), code("BAD_APPROVAL_SIGNATURE"), "signed by a key not in the list");
    assert.throws(() => q.approve(id, "bob", "AAAA", T0), code("BAD_APPROVAL_SIGNATURE"));
    assert.throws(() => q.approve(id, "bob", approveSig(bob, id, PUBKEY, ROOT2), T0), code("BAD_APPROVAL_SIGNATURE"), "signed another root");
    assert.throws(() => q.approve(id, "bob", rejectSig(bob, id), T0), code("BAD_APPROVAL_SIGNATURE"), "a rejection is no approval");
    assert.throws(() => q.approve("0".repeat(32), "bob", approveSig(bob, id), T0), code("APPROVAL_NOT_FOUND"));
    assert.equal(q.get(id, T0)!.approvals.length, 1);
    assert.equal(q.get(id, T0)!.status, "pending");
  });

  test("a signed rejection blocks, even after approval, and stays", () => {
    const q = ApprovalQueue.open(freshDir());
    const { id } = q.request(facts(), T0);
    assert.throws(() => q.reject(id, "carol", approveSig(carol, id), T0), code("BAD_REJECTION_SIGNATURE"), "an approval is no rejection");
    assert.throws(() => q.reject(id, "mallory", rejectSig(mallory, id), T0), code("UNKNOWN_APPROVER"));
    const r = q.reject(id, "carol", rejectSig(carol, id), T0);
    assert.equal(r.status, "rejected");
    assert.throws(() => q.approve(id, "alice", approveSig(alice, id), T0), code("APPROVAL_REJECTED"));
    assert.equal(q.request(facts(), T0 + 1000).status, "rejected");
    assert.equal(q.request(facts(), T0 + 30 * 86400_000).status, "rejected", "still rejected long after");
    assert.ok(!q.isApproved(PUBKEY, ROOT, "exits-need-approval", T0));

    // Rejecting an approved entry revokes it.
    const { id: id2 } = q.request(facts({ signingRoot: ROOT2 }), T0);
    q.approve(id2, "alice", approveSig(alice, id2, PUBKEY, ROOT2), T0);
    q.approve(id2, "bob", approveSig(bob, id2, PUBKEY, ROOT2), T0);
    assert.ok(q.isApproved(PUBKEY, ROOT2, "exits-need-approval", T0));
    q.reject(id2, "carol", rejectSig(carol, id2, PUBKEY, ROOT2), T0);
    assert.ok(!q.isApproved(PUBKEY, ROOT2, "exits-need-approval", T0));
    assert.equal(q.request(facts({ signingRoot: ROOT2 }), T0).status, "rejected");
  });

  test("expiry counts from the quorum; an expired approval needs a new quorum", () => {
    const q = ApprovalQueue.open(freshDir(), { pendingTtlSeconds: 3600 });
    const { id } = q.request(facts({ expirySeconds: 60 }), T0);
    q.approve(id, "alice", approveSig(alice, id), T0 + 1000_000); // long after the request: the window starts at the quorum
    q.approve(id, "bob", approveSig(bob, id), T0 + 2000_000);
    assert.ok(q.isApproved(PUBKEY, ROOT, "exits-need-approval", T0 + 2000_000 + 59_000));
    assert.ok(!q.isApproved(PUBKEY, ROOT, "exits-need-approval", T0 + 2000_000 + 60_000));
    assert.equal(q.get(id, T0 + 2000_000 + 60_000)!.status, "expired");
    assert.throws(() => q.approve(id, "carol", approveSig(carol, id), T0 + 2000_000 + 60_000), code("APPROVAL_EXPIRED"));
    // The next identical request opens a fresh entry with a new id: pending, no approvals, and the
    // signatures collected for the old one do not count for it (nor can they be posted again).
    const again = q.request(facts({ expirySeconds: 60 }), T0 + 2100_000);
    assert.notEqual(again.id, id);
    assert.equal(again.status, "pending");
    assert.equal(again.approvals, 0);
    assert.equal(q.get(again.id)!.created, new Date(T0 + 2100_000).toISOString());
    assert.throws(() => q.approve(again.id, "alice", approveSig(alice, id), T0 + 2100_000), code("BAD_APPROVAL_SIGNATURE"));
    assert.throws(() => q.approve(id, "alice", approveSig(alice, id), T0 + 2100_000), code("APPROVAL_EXPIRED"));
    assert.ok(!q.isApproved(PUBKEY, ROOT, "exits-need-approval", T0 + 2100_000));
    // A pending entry expires after the pending TTL.
    assert.equal(q.get(again.id, T0 + 2100_000 + 3600_000)!.status, "expired");
    const ex = q.expire(T0 + 2100_000 + 3600_000);
    assert.deepEqual(ex.expired.sort(), [id, again.id].sort());
    assert.equal(q.get(again.id)!.status, "expired");
    const later = q.expire(T0 + 2100_000 + 3600_000 + 8 * 86400_000);
    assert.deepEqual(later.dropped.sort(), [id, again.id].sort());
    assert.equal(q.get(again.id), undefined);
  });

  test("isApproved only for the identical pubkey, root and rule", () => {
    const q = ApprovalQueue.open(freshDir());
    const { id } = q.request(facts(), T0);
    q.approve(id, "alice", approveSig(alice, id), T0);
    q.approve(id, "bob", approveSig(bob, id), T0);
    assert.ok(q.isApproved(PUBKEY, ROOT, "exits-need-approval", T0));
    assert.ok(!q.isApproved(PUBKEY2, ROOT, "exits-need-approval", T0));
    assert.ok(!q.isApproved(PUBKEY, ROOT2, "exits-need-approval", T0));
    assert.ok(!q.isApproved(PUBKEY, ROOT, "other-rule", T0));
    assert.ok(!q.isApproved("garbage", ROOT, "exits-need-approval", T0));
    assert.equal(q.request(facts({ signingRoot: ROOT2 }), T0).status, "pending", "another root needs its own approval");
  });

  test("the policy in force: a removed approver's approval stops counting; a raised quorum applies", () => {
    const q = ApprovalQueue.open(freshDir());
    const { id } = q.request(facts(), T0);
    q.approve(id, "alice", approveSig(alice, id), T0);
    q.approve(id, "bob", approveSig(bob, id), T0);
    assert.ok(q.isApproved(PUBKEY, ROOT, "exits-need-approval", T0, { quorum: 2, approvers: refs(alice, bob, carol) }));
    assert.ok(!q.isApproved(PUBKEY, ROOT, "exits-need-approval", T0, { quorum: 2, approvers: refs(alice, carol) }));
    assert.ok(!q.isApproved(PUBKEY, ROOT, "exits-need-approval", T0, { quorum: 3, approvers: refs(alice, bob, carol) }));
    // bob's key replaced in the policy: bob's approval no longer counts.
    const bob2 = mk("bob");
    const s = q.request(facts({ approvers: refs(alice, bob2, carol) }), T0 + 1000);
    assert.equal(s.status, "pending");
    assert.equal(s.approvals, 1);
    const s2 = q.approve(id, "bob", approveSig(bob2, id), T0 + 2000);
    assert.equal(s2.status, "approved");
    assert.equal(q.request(facts({ quorum: 3, approvers: refs(alice, bob2, carol) }), T0 + 3000).status, "pending");
  });

  test("persistence across reopen; file mode 0600; a forged file is refused", () => {
    const dir = freshDir();
    const q = ApprovalQueue.open(dir);
    const { id } = q.request(facts(), T0);
    q.approve(id, "alice", approveSig(alice, id), T0 + 1);
    const { id: id2 } = q.request(facts({ signingRoot: ROOT2 }), T0);
    q.reject(id2, "bob", rejectSig(bob, id2, PUBKEY, ROOT2), T0 + 2);
    const file = path.join(dir, "approvals.json");
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(dir), ["approvals.json"], "no temp files left");

    const q2 = ApprovalQueue.open(dir);
    assert.deepEqual(q2.list(T0), q.list(T0));
    assert.equal(q2.approve(id, "bob", approveSig(bob, id), T0 + 3).status, "approved");
    assert.ok(q2.isApproved(PUBKEY, ROOT, "exits-need-approval", T0 + 4));
    assert.equal(q2.request(facts({ signingRoot: ROOT2 }), T0).status, "rejected");
    assert.ok(ApprovalQueue.open(dir).isApproved(PUBKEY, ROOT, "exits-need-approval", T0 + 4));

    // Editing the file: an approval signature moved to another entry does not verify.
    const doc = JSON.parse(fs.readFileSync(file, "utf8"));
    const e1 = doc.entries.find((e: { id: string }) => e.id === id);
    const e2 = doc.entries.find((e: { id: string }) => e.id === id2);
    e2.approvals = e1.approvals;
    e2.rejections = [];
    e2.status = "approved";
    fs.writeFileSync(file, JSON.stringify(doc));
    assert.throws(() => ApprovalQueue.open(dir), code("CORRUPT_APPROVALS"));
    fs.writeFileSync(file, "{nope");
    assert.throws(() => ApprovalQueue.open(dir), code("CORRUPT_APPROVALS"));
  });

  test("edits of the file that would stretch an approval are refused or undone", () => {
    const dir = freshDir();
    const file = path.join(dir, "approvals.json");
    const q = ApprovalQueue.open(dir, { pendingTtlSeconds: 3600 });
    const now = Date.now();
    const { id } = q.request(facts({ expirySeconds: 60 }), now);
    q.approve(id, "alice", approveSig(alice, id), now);
    const good = fs.readFileSync(file, "utf8");
    const edit = (fn: (e: Record<string, any>) => void): void => {
      const doc = JSON.parse(good);
      fn(doc.entries[0]);
      fs.writeFileSync(file, JSON.stringify(doc));
    };
    // One approver's record twice: still one approval (quorum 2 not met).
    edit((e) => e.approvals.push({ ...e.approvals[0] }));
    assert.throws(() => ApprovalQueue.open(dir), code("CORRUPT_APPROVALS"));
    // A quorum before the entry existed.
    edit((e) => (e.approved_at = new Date(now - 86400_000).toISOString()));
    assert.throws(() => ApprovalQueue.open(dir), code("CORRUPT_APPROVALS"));
    // Times ahead of this clock (it stepped back, or the file was edited): the file opens, the entry counts as expired.
    edit((e) => (e.created = new Date(now + 86400_000).toISOString()));
    const ahead = ApprovalQueue.open(dir, { pendingTtlSeconds: 3600 });
    assert.equal(ahead.get(id)!.status, "expired");
    assert.equal(ahead.request(facts({ expirySeconds: 60 }), Date.now()).status, "pending", "the request opens a new entry");
    // A window written far ahead is recomputed from the entry's times on open.
    edit((e) => (e.expires_at = new Date(now + 365 * 86400_000).toISOString()));
    const reopened = ApprovalQueue.open(dir, { pendingTtlSeconds: 3600 });
    assert.equal(reopened.get(id)!.expires_at, new Date(now + 3600_000).toISOString());
    assert.equal(reopened.get(id, now + 3600_000)!.status, "expired");
  });

  test("a full queue refuses new entries", () => {
    const q = ApprovalQueue.open(freshDir(), { maxPending: 2 });
    q.request(facts(), T0);
    q.request(facts({ signingRoot: ROOT2 }), T0);
    assert.throws(() => q.request(facts({ signingRoot: "0x" + "33".repeat(32) }), T0), code("APPROVAL_QUEUE_FULL"));
    assert.equal(q.request(facts(), T0).status, "pending", "known entries still answer");
  });

  test("invalid settings are refused", () => {
    const q = ApprovalQueue.open(freshDir());
    assert.throws(() => q.request(facts({ quorum: 4 }), T0), code("INVALID_APPROVAL_SETTINGS"));
    assert.throws(() => q.request(facts({ quorum: 0 }), T0), code("INVALID_APPROVAL_SETTINGS"));
    assert.throws(() => q.request(facts({ approvers: [] }), T0), code("NO_APPROVERS"));
    assert.throws(() => q.request(facts({ signingRoot: "0x12" }), T0), code("INVALID_SIGNING_ROOT"));
    assert.throws(() => q.request(facts({ approvers: [...refs(alice, bob), { name: "alice2", publicKey: alice.publicKey }] }), T0), code("DUPLICATE_APPROVER_KEY"));
  });
});

describe("signed policy changes", () => {
  const running = { alice: alice.publicKey, bob: bob.publicKey, carol: carol.publicKey };
  const policy = "approvers:\n  alice: x\nrules: []\n";
  const PREV = policyDigest("the running policy\n");
  const sigFile = (...sigs: { approver: string; signature: string }[]): string => JSON.stringify({ previous_sha256: PREV, policy_sha256: policyDigest(policy), signatures: sigs });

  test("M-of-N valid", () => {
    let doc = addPolicySignature(null, policy, signPolicy(policy, alice.key, "alice", PREV), PREV);
    doc = addPolicySignature(doc, policy, signPolicy(policy, bob.key, "bob", PREV), PREV);
    const v = verifyPolicySignatures(policy, JSON.stringify(doc), running, 2, PREV);
    assert.deepEqual(v, { ok: true, valid: ["alice", "bob"], problems: [] });
    assert.equal(doc.policy_sha256, policyDigest(Buffer.from(policy)));
  });

  test("too few", () => {
    const v = verifyPolicySignatures(policy, sigFile(signPolicy(policy, alice.key, "alice", PREV)), running, 2, PREV);
    assert.equal(v.ok, false);
    assert.deepEqual(v.valid, ["alice"]);
    assert.match(v.problems.join("\n"), /1 valid signature of the 2/);
  });

  test("an edited policy (wrong digest) is refused", () => {
    const file = sigFile(signPolicy(policy, alice.key, "alice", PREV), signPolicy(policy, bob.key, "bob", PREV));
    const edited = policy + "# loosened\n";
    const v = verifyPolicySignatures(edited, file, running, 2, PREV);
    assert.equal(v.ok, false);
    assert.deepEqual(v.valid, []);
    assert.match(v.problems[0], /edited after signing/);
    // Even with policy_sha256 rewritten to match, the signatures do not verify.
    const forged = JSON.stringify({ ...JSON.parse(file), policy_sha256: policyDigest(edited) });
    const v2 = verifyPolicySignatures(edited, forged, running, 2, PREV);
    assert.equal(v2.ok, false);
    assert.deepEqual(v2.valid, []);
    assert.throws(() => addPolicySignature(JSON.parse(file), edited, signPolicy(edited, carol.key, "carol", PREV), PREV), code("POLICY_SIGNATURES_STALE"));
  });

  test("a signature by a non-approver, or under a borrowed name, does not count", () => {
    const v = verifyPolicySignatures(policy, sigFile(signPolicy(policy, alice.key, "alice", PREV), signPolicy(policy, mallory.key, "mallory", PREV)), running, 2, PREV);
    assert.equal(v.ok, false);
    assert.deepEqual(v.valid, ["alice"]);
    assert.match(v.problems.join("\n"), /mallory.*not an approver of the running policy/);
    const v2 = verifyPolicySignatures(policy, sigFile(signPolicy(policy, alice.key, "alice", PREV), signPolicy(policy, mallory.key, "bob", PREV)), running, 2, PREV);
    assert.equal(v2.ok, false);
    assert.match(v2.problems.join("\n"), /bob: does not verify/);
  });

  test("each approver counts once", () => {
    const s = signPolicy(policy, alice.key, "alice", PREV);
    const v = verifyPolicySignatures(policy, sigFile(s, s), running, 2, PREV);
    assert.equal(v.ok, false);
    assert.deepEqual(v.valid, ["alice"]);
    assert.match(v.problems.join("\n"), /more than once/);
  });

  test("one key under two names counts once", () => {
    const twins = { ...running, alice2: alice.publicKey };
    const v = verifyPolicySignatures(policy, sigFile(signPolicy(policy, alice.key, "alice", PREV), signPolicy(policy, alice.key, "alice2", PREV)), twins, 2, PREV);
    assert.equal(v.ok, false);
    assert.deepEqual(v.valid, ["alice"]);
    assert.match(v.problems.join("\n"), /same key as alice/);
    assert.throws(() => readApproverSettings(`approvers:\n  alice: "${alice.publicKey}"\n  alice2: "${alice.publicKey}"\n`), code("INVALID_POLICY"));
  });

  test("an approval signature is not a policy signature", () => {
    const id = approvalId(PUBKEY, ROOT, "r");
    const v = verifyPolicySignatures(policy, sigFile({ approver: "alice", signature: approveSig(alice, id) }), running, 1, PREV);
    assert.equal(v.ok, false);
  });

  test("malformed signature files are problems, not crashes", () => {
    for (const bad of ["{", "[]", "{}", JSON.stringify({ policy_sha256: "x", signatures: [] }), JSON.stringify({ policy_sha256: policyDigest(policy), signatures: [1] })]) {
      const v = verifyPolicySignatures(policy, bad, running, 1, PREV);
      assert.equal(v.ok, false);
      assert.equal(v.problems.length, 1);
    }
    assert.throws(() => verifyPolicySignatures(policy, sigFile(), running, 0, PREV), code("INVALID_REQUIRED_SIGNATURES"));
  });

  test("approvers come from the running policy, not the new one", () => {
    const runningYaml = `approvers:\n  alice: "${alice.publicKey}"\n  bob: "${bob.publicKey}"\n  carol: "${carol.publicKey}"\npolicy_changes:\n  required_signatures: 2\n`;
    const RP = policyDigest(runningYaml);
    // The new policy replaces the approvers with the attacker's keys and signs itself.
    const mallory2 = mk("mallory2");
    const newYaml = `approvers:\n  mallory: "${mallory.publicKey}"\n  mallory2: "${mallory2.publicKey}"\npolicy_changes:\n  required_signatures: 1\nrules: []\n`;
    const selfSigned = JSON.stringify(addPolicySignature(addPolicySignature(null, newYaml, signPolicy(newYaml, mallory.key, "mallory", RP), RP), newYaml, signPolicy(newYaml, mallory2.key, "mallory2", RP), RP));
    const r = readApproverSettings(runningYaml);
    assert.deepEqual(r, { sha256: RP, approvers: running, requiredSignatures: 2 });
    assert.throws(() => checkPolicyChange(newYaml, selfSigned, r), code("POLICY_SIGNATURES_REQUIRED"));
    assert.throws(() => checkPolicyChange(newYaml, null, r), code("POLICY_SIGNATURES_REQUIRED"));
    // Against its own approvers it would pass: which is exactly what must not be used.
    const own = readApproverSettings(newYaml);
    assert.ok(verifyPolicySignatures(newYaml, selfSigned, own.approvers, own.requiredSignatures!, RP).ok);
    // Signed by two approvers of the running policy: accepted.
    const good = JSON.stringify(addPolicySignature(addPolicySignature(null, newYaml, signPolicy(newYaml, alice.key, "alice", RP), RP), newYaml, signPolicy(newYaml, carol.key, "carol", RP), RP));
    assert.deepEqual(checkPolicyChange(newYaml, good, r)?.valid, ["alice", "carol"]);
    // The same signatures do not carry the change over from another running policy: an older signed
    // policy cannot be put back later with the signatures it had (they approved a change from elsewhere).
    const later = readApproverSettings(runningYaml + "# a later running policy\n");
    assert.throws(() => checkPolicyChange(newYaml, good, later), (e: unknown) => e instanceof VigilError && e.code === "POLICY_SIGNATURES_REQUIRED" && /change from policy sha256/.test(e.message));
    // A signature file of the first format (no previous_sha256) is refused with a clear reason.
    const v1 = JSON.stringify({ policy_sha256: policyDigest(newYaml), signatures: JSON.parse(good).signatures });
    assert.throws(() => checkPolicyChange(newYaml, v1, r), (e: unknown) => e instanceof VigilError && /first format/.test(e.message));
    // A running policy without policy_changes does not require signatures.
    assert.equal(checkPolicyChange(newYaml, null, readApproverSettings(`approvers:\n  alice: "${alice.publicKey}"\n`)), null);
  });

  test("readApproverSettings: list form, PEM keys, and refusals", () => {
    const pem = createPublicKey(bob.key).export({ format: "pem", type: "spki" }).toString();
    const yaml = `approvers:\n  - name: alice\n    public_key: "${alice.publicKey}"\n  - name: bob\n    public_key: |\n${pem.trim().split("\n").map((l) => "      " + l).join("\n")}\n`;
    assert.deepEqual(readApproverSettings(yaml), { sha256: policyDigest(yaml), approvers: { alice: alice.publicKey, bob: bob.publicKey }, requiredSignatures: null });
    assert.throws(() => readApproverSettings(`approvers:\n  alice: nope\n`), code("INVALID_POLICY"));
    assert.throws(() => readApproverSettings(`approvers:\n  alice: "${alice.publicKey}"\npolicy_changes:\n  required_signatures: 2\n`), code("INVALID_POLICY"));
    assert.throws(() => readApproverSettings(`approvers:\n  alice: "${alice.publicKey}"\n  alice: "${bob.publicKey}"\n`), code("INVALID_POLICY"));
  });
});

describe("CLI", () => {
  const silent = (): { print: (s: string) => void; out: () => string } => {
    let buf = "";
    return { print: (s) => void (buf += s), out: () => buf };
  };

  test("approvers new, policy sign and policy verify", () => {
    const dir = freshDir();
    const o = silent();
    const keys = ["ann", "ben", "cat"].map((name) => approversNew({ name, out: dir }, o.print));
    assert.match(o.out(), /ann: "[A-Za-z0-9+/]{43}="/);
    assert.equal(fs.statSync(keys[0].keyFile).mode & 0o777, 0o600);
    const runningFile = path.join(dir, "running.yaml");
    fs.writeFileSync(
      runningFile,
      `approvers:\n${keys.map((k, i) => `  ${["ann", "ben", "cat"][i]}: "${k.publicKey}"`).join("\n")}\npolicy_changes:\n  required_signatures: 2\n`,
    );
    const newFile = path.join(dir, "new.yaml");
    fs.writeFileSync(newFile, "rules: []\n");
    assert.throws(() => policyVerify({ policy: newFile, against: runningFile }, o.print), code("POLICY_SIGNATURES_INVALID"));
    policySign({ policy: newFile, previous: runningFile, key: keys[0].keyFile, name: "ann" }, o.print);
    assert.throws(() => policyVerify({ policy: newFile, against: runningFile }, o.print), code("POLICY_SIGNATURES_INVALID"));
    policySign({ policy: newFile, previous: runningFile, key: keys[0].keyFile, name: "ann" }, o.print); // again: replaces, still one
    policySign({ policy: newFile, previous: runningFile, key: keys[2].keyFile, name: "cat" }, o.print);
    const v = policyVerify({ policy: newFile, against: runningFile }, o.print);
    assert.deepEqual(v, { ok: true, valid: ["ann", "cat"], problems: [] });
    assert.equal(JSON.parse(fs.readFileSync(newFile + ".sig.json", "utf8")).signatures.length, 2);
    fs.appendFileSync(newFile, "# edited\n");
    assert.throws(() => policyVerify({ policy: newFile, against: runningFile }, o.print), code("POLICY_SIGNATURES_INVALID"));
  });

  test("approvals list, show, approve and reject against an admin API", async () => {
    const dir = freshDir();
    const token = "t".repeat(32);
    const tokenFile = path.join(dir, "api-token.txt");
    fs.writeFileSync(tokenFile, token + "\n", { mode: 0o600 });
    const q = ApprovalQueue.open(dir);
    const keyDir = path.join(dir, "keys");
    const o = silent();
    const ka = approversNew({ name: "alice", out: keyDir }, o.print);
    const kb = approversNew({ name: "bob", out: keyDir }, o.print);
    const kc = approversNew({ name: "carol", out: keyDir }, o.print);
    const approvers = [
      { name: "alice", publicKey: ka.publicKey },
      { name: "bob", publicKey: kb.publicKey },
      { name: "carol", publicKey: kc.publicKey },
    ];
    // A real exit request (a conformance vector of the minimal network) with its independently
    // computed signing root; the server's summary is deliberately not what the request says.
    const vectors = signingVectors("remote-signing-api-sign-examples.json");
    const vector = vectors.cases.find((c) => c.type === "VOLUNTARY_EXIT")!;
    const { signingRoot: _given, ...exitRequest } = vector.request as Record<string, unknown>;
    const exit = { pubkey: vectors.key.public_key, signingRoot: vector.expected_signing_root, request: exitRequest, network: "minimal" };
    const { id } = q.request(facts({ approvers, ...exit }), Date.now());
    const { id: id2 } = q.request(facts({ approvers, ...exit, ruleId: "another-rule" }), Date.now());
    const { id: id3 } = q.request(facts({ approvers, signingRoot: ROOT2 }), Date.now()); // keeps no request

    // A stand-in for the admin API the HTTP layer serves; `tamper` makes it lie about an entry's request.
    let tamper: ((e: ApprovalEntry) => void) | null = null;
    const server = http.createServer((req, res) => {
      const send = (status: number, body: unknown): void => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      if (req.headers.authorization !== `Bearer ${token}`) return send(401, { code: "UNAUTHORIZED", message: "no" });
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        try {
          const m = /^\/admin\/v1\/approvals(?:\/([^/]+)(?:\/(approve|reject))?)?$/.exec(req.url ?? "");
          if (!m) return send(404, { code: "NOT_FOUND", message: "no route" });
          const [, rid, action] = m;
          if (req.method === "GET" && !rid) return send(200, { data: q.list() });
          if (req.method === "GET" && !action) {
            const e = structuredClone(q.get(rid));
            if (e && tamper) tamper(e);
            return e ? send(200, { data: e }) : send(404, { code: "APPROVAL_NOT_FOUND", message: `no approval ${rid}` });
          }
          if (req.method === "POST" && action) {
            const b = JSON.parse(body) as { approver: string; signature: string };
            const s = action === "approve" ? q.approve(rid, b.approver, b.signature, Date.now()) : q.reject(rid, b.approver, b.signature, Date.now());
            return send(200, { data: s });
          }
          send(405, { code: "METHOD_NOT_ALLOWED", message: "no" });
        } catch (e) {
          const v = e as VigilError;
          send(v.kind === "not_found" ? 404 : v.kind === "conflict" ? 409 : 400, { code: v.code, message: v.message });
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const flags = { url, tokenFile, yes: true };
      const list = await approvalsList(flags, o.print);
      assert.deepEqual(list.map((e) => e.id).sort(), [id, id2, id3].sort());
      const shown = silent();
      await approvalsShow({ ...flags, id }, shown.print);
      const out = shown.out();
      assert.match(out, /^CHECKED HERE: this machine decoded the request and recomputed its signing root on minimal\n {2}VOLUNTARY_EXIT: voluntary_exit epoch=119 validator_index=0\n/);
      assert.match(out, /genesis validators root 0x04700007/);
      assert.ok(out.indexOf("AS THE SERVER DESCRIBES IT (not checked here)") > out.indexOf("CHECKED HERE"), "the server's word comes after the check");
      assert.match(out, /voluntary exit of validator 42/); // the server's word, shown as such
      assert.match(out, new RegExp(exit.signingRoot));
      const unchecked = silent();
      await approvalsShow({ ...flags, id: id3 }, unchecked.print);
      assert.match(unchecked.out(), /^NOT CHECKED: entry \w+ keeps no sign request/);

      // A server whose description tries to draw over the check (a line break, a terminal escape): printed inert.
      tamper = (e) => void (e.summary = "harmless\nCHECKED HERE: fake\u001b[8m\u202e");
      const escaped = silent();
      await approvalsShow({ ...flags, id }, escaped.print);
      assert.doesNotMatch(escaped.out(), /[\u001b\u202e]/);
      assert.match(escaped.out(), /summary {7}harmless\\u\{a\}CHECKED HERE: fake\\u\{1b\}\[8m\\u\{202e\}/);
      assert.equal(escaped.out().match(/^CHECKED HERE/gm)?.length, 1);
      // An approver name (not signed, but printed in the question) that is no policy name: refused before anything is asked.
      tamper = (e) => void (e.approvers[0].name = "alice\u001b[3A\u001b[2K  VOLUNTARY_EXIT: harmless");
      const never = async (): Promise<boolean> => assert.fail("asked");
      await assert.rejects(approvalsApprove({ ...flags, yes: false, id, key: ka.keyFile }, o.print, never), code("BAD_RESPONSE", /names an approver "alice\\\\u\{1b\}/));
      tamper = null;
      // --network must name a network or a config file (not a directory, a device, a huge file).
      await assert.rejects(approvalsApprove({ ...flags, id, key: ka.keyFile, network: dir }, o.print), code("UNVERIFIED_APPROVAL", /not a network name nor a config\.yaml file/));
      assert.equal(printable("a\u2028b\u200bc\ufeffd\u{e0041}e\u0085f"), "a\\u{2028}b\\u{200b}c\\u{feff}d\\u{e0041}e\\u{85}f");

      // Without --yes the approver is asked, after the local description; "no" sends nothing.
      const asked: string[] = [];
      const declined = silent();
      await assert.rejects(
        approvalsApprove({ ...flags, yes: false, id, key: ka.keyFile }, declined.print, async (q) => (asked.push(q), false)),
        code("NOT_CONFIRMED"),
      );
      assert.deepEqual(asked, ["approve this VOLUNTARY_EXIT as alice? [y/N] "]);
      assert.match(declined.out(), /^CHECKED HERE/);
      assert.equal(q.get(id)!.approvals.length, 0);
      const first = silent();
      assert.equal((await approvalsApprove({ ...flags, yes: false, id, key: ka.keyFile }, first.print, async () => true)).status, "pending"); // name from the key
      assert.match(first.out(), /approving as alice: VOLUNTARY_EXIT voluntary_exit epoch=119 validator_index=0 \(checked here on minimal\)/);
      await assert.rejects(approvalsApprove({ ...flags, id, key: ka.keyFile }, o.print), code("DUPLICATE_APPROVAL"));
      await assert.rejects(approvalsApprove({ ...flags, id, key: kb.keyFile, name: "carol" }, o.print), code("WRONG_APPROVER_KEY"));

      // A server that shows another exit (or another network) than the one whose root it asks for: nothing is signed.
      tamper = (e) => void ((e.request as { voluntary_exit: { validator_index: string } }).voluntary_exit.validator_index = "7");
      await assert.rejects(approvalsApprove({ ...flags, id, key: kb.keyFile }, o.print), code("UNVERIFIED_APPROVAL", /gives signing root 0x\w+ on the entry's network minimal/));
      tamper = (e) => void (e.request = null);
      await assert.rejects(approvalsApprove({ ...flags, id, key: kb.keyFile }, o.print), code("UNVERIFIED_APPROVAL", /keeps no sign request/));
      // The server cannot make this machine read a file of its choosing as the network's config.
      tamper = (e) => void (e.network = "/dev/zero");
      await assert.rejects(approvalsApprove({ ...flags, id, key: kb.keyFile }, o.print), code("UNVERIFIED_APPROVAL", /is for network "\/dev\/zero": pass --network/));
      tamper = null;
      await assert.rejects(approvalsApprove({ ...flags, id, key: kb.keyFile, network: "mainnet" }, o.print), code("UNVERIFIED_APPROVAL", /conflicts with network "mainnet"/));
      assert.equal(q.get(id)!.approvals.length, 1, "no approval was sent for an unchecked request");
      await assert.rejects(approvalsApprove({ ...flags, id: id3, key: kb.keyFile }, o.print), code("UNVERIFIED_APPROVAL"));

      const s = await approvalsApprove({ ...flags, id, key: kb.keyFile, name: "bob" }, o.print);
      assert.equal(s.status, "approved");
      assert.ok(q.isApproved(exit.pubkey, exit.signingRoot, "exits-need-approval", Date.now()));

      assert.equal((await approvalsReject({ ...flags, id: id2, key: kc.keyFile }, o.print)).status, "rejected");
      await assert.rejects(approvalsApprove({ ...flags, id: id2, key: ka.keyFile }, o.print), code("APPROVAL_REJECTED"));
      assert.equal((await approvalsReject({ ...flags, id: id3, key: kc.keyFile }, o.print)).status, "rejected"); // a rejection needs no check
      await assert.rejects(approvalsShow({ ...flags, id: "f".repeat(32) }, o.print), code("APPROVAL_NOT_FOUND"));

      const outsider = approversNew({ name: "eve", out: keyDir }, o.print);
      await assert.rejects(approvalsApprove({ ...flags, id, key: outsider.keyFile }, o.print), code("UNKNOWN_APPROVER"));
      fs.writeFileSync(path.join(dir, "wrong-token"), "w".repeat(32));
      await assert.rejects(approvalsList({ url, tokenFile: path.join(dir, "wrong-token") }, o.print), code("UNAUTHORIZED"));
    } finally {
      server.close();
    }
  });
});
