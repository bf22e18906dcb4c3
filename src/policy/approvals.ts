/**
 * M-of-N approvals of sign requests.
 *
 * A request whose policy decision is `approval_required` is refused with
 * `{code: "APPROVAL_REQUIRED", approval_id, signing_root, summary}` and queued here with its decoded
 * content. Approvers (Ed25519 keys named in the policy) sign
 *
 *     approvalMessage(id, pubkey, signingRoot)  = "vigil-approval-v1\n" + id + "\n" + pubkey + "\n" + signingRoot
 *     rejectionMessage(id, pubkey, signingRoot) = "vigil-rejection-v1\n" + id + "\n" + pubkey + "\n" + signingRoot
 *
 * (UTF-8, no trailing newline; pubkey and signing root 0x lower-case hex; the id is
 * `approvalId(pubkey, signingRoot, ruleId, nonce)`, which binds the rule and a random nonce of the
 * entry: a request that comes back after its entry expired opens a new entry with a new id, so the
 * signatures collected for the old one cannot be posted again). Once `quorum` distinct approvers
 * of the entry's approver set have approved, the IDENTICAL request (same pubkey, signing root and
 * rule) is signed until the approval expires; anything else needs its own approval.
 *
 * Time choices:
 * - the approval window (`expirySeconds`, from the policy rule) counts from the moment the quorum is
 *   MET, not from the first request: approvers may take hours to gather, and the validator client
 *   must then get a window to retry the request;
 * - a pending entry that does not reach its quorum within `pendingTtlSeconds` of its creation
 *   (default 7 days) expires; the next identical request opens a fresh entry (no approvals);
 * - an approved entry whose window has passed is expired too; the next identical request opens a
 *   fresh entry that needs a new quorum;
 * - one signed rejection by any approver of the entry rejects it for good: it is never signed and
 *   cannot be approved (approvals are M-of-N, a veto is 1-of-N). Rejecting an approved entry
 *   revokes it.
 *
 * The approver set and quorum are those of the policy in force: every `request()` refreshes them
 * from the current decision, and approvals by approvers that are no longer in the set (or whose key
 * changed) stop counting, so a policy change that removes an approver takes their approvals away.
 *
 * File `<data-dir>/approvals.json` (JSON, mode 0600, rewritten atomically: temp file, fsync, rename,
 * fsync of the directory):
 *
 *     { "format": "vigil-approvals", "version": 1, "entries": [ ApprovalEntry, … ] }
 *
 * with ApprovalEntry as below (snake_case: the same objects are served by the admin API). The
 * queue belongs to ONE process (the vault): it keeps the entries in memory and is the only writer.
 */
import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { VigilError } from "../errors.js";
import { writeFileAtomicSync } from "../fs-atomic.js";
import { canonicalApproverPublicKey, checkApproverName, verifyApproval } from "./approver-keys.js";

import { APPROVALS_FILE } from "../config/files.js";
export { APPROVALS_FILE };
const DOMAIN_ID = "vigil-approval-v1";
const DOMAIN_APPROVE = "vigil-approval-v1";
const DOMAIN_REJECT = "vigil-rejection-v1";

export type ApprovalStatus = "pending" | "approved" | "rejected" | "expired";
export type ApprovalVerdict = "approve" | "reject";

/** An approver as the policy names them: a name and an Ed25519 public key (base64 raw or PEM). */
export interface ApproverRef {
  name: string;
  publicKey: string;
}

/** What the vault passes to `request()` for a request the policy says needs approval. */
export interface ApprovalRequestFacts {
  /** 0x hex BLS public key asked to sign. */
  pubkey: string;
  /** 0x hex signing root Vigil computed. */
  signingRoot: string;
  /** Request type (e.g. "VOLUNTARY_EXIT"). */
  type: string;
  /** One-line human description. */
  summary: string;
  /** Client identity, or null. */
  client: string | null;
  /** The rule that asked for approval. */
  ruleId: string;
  /** Approvals needed (M). */
  quorum: number;
  /** The N approvers allowed to approve (from the policy in force). */
  approvers: ApproverRef[];
  /** How long the quorum, once met, lets the identical request be signed. */
  expirySeconds: number;
  /** Decoded request content shown to approvers (bigints become decimal strings, bytes 0x hex). */
  content?: unknown;
  /** The sign request as the client sent it, kept so that approvers can recompute its signing root (dropped beyond MAX_KEPT_REQUEST_BYTES). */
  request?: unknown;
  /** The network Vigil signs for (its name, or the config.yaml it was started with). */
  network?: string;
}

/**
 * The largest sign request (compact JSON) an approval entry keeps for approvers to check: exits,
 * deposits and registrations take well under 1 KiB; up to 1,000 pending entries stay a few MB.
 */
export const MAX_KEPT_REQUEST_BYTES = 4 * 1024;

export interface ApprovalSignatureRecord {
  approver: string;
  /** The approver's public key (base64 raw) the signature was verified with. */
  public_key: string;
  /** base64 Ed25519 signature of approvalMessage / rejectionMessage. */
  signature: string;
  /** ISO 8601 time it was accepted. */
  at: string;
}

export interface ApprovalEntry {
  /** approvalId(pubkey, signing_root, rule_id, nonce): 32 lower-case hex characters. */
  id: string;
  /** 32 random hex characters, one per entry (absent in entries written before nonces: their id has none). */
  nonce?: string;
  pubkey: string;
  signing_root: string;
  rule_id: string;
  type: string;
  summary: string;
  client: string | null;
  content: unknown;
  /** The sign request as received, for `vigil approvals` to recompute the signing root (absent in older entries, null when too large). */
  request?: unknown;
  /** The network the instance signs for (absent in older entries). */
  network?: string;
  quorum: number;
  /** Approver names and canonical (base64 raw) public keys. */
  approvers: { name: string; public_key: string }[];
  expiry_seconds: number;
  status: ApprovalStatus;
  /** ISO 8601: when this entry was opened (by the first request, or a request after it expired). */
  created: string;
  /** ISO 8601: when the quorum was met; null while pending. */
  approved_at: string | null;
  /** ISO 8601: when the current status ends (pending: pending TTL; approved: end of the window); null when rejected. */
  expires_at: string | null;
  /** ISO 8601: when it was rejected (first rejection), else null. */
  rejected_at: string | null;
  approvals: ApprovalSignatureRecord[];
  rejections: ApprovalSignatureRecord[];
}

/** The answer of `request()`, `approve()` and `reject()`. */
export interface ApprovalState {
  id: string;
  status: ApprovalStatus;
  /** Approvals that count (by approvers of the current set). */
  approvals: number;
  quorum: number;
  expires_at: string | null;
}

export interface ApprovalQueueOptions {
  /** How long a pending entry waits for its quorum (default 7 days). */
  pendingTtlSeconds?: number;
  /** How long expired entries stay in the file before `expire()` drops them (default 7 days). Rejected entries are kept. */
  retentionSeconds?: number;
  /** At most this many pending entries (default 1000): beyond, `request()` fails with APPROVAL_QUEUE_FULL. */
  maxPending?: number;
}

// ---------------------------------------------------------------- ids and messages

const HEX_PUBKEY = /^0x[0-9a-f]{96}$/;
const HEX_ROOT = /^0x[0-9a-f]{64}$/;
const HEX_ID = /^[0-9a-f]{32}$/;

function normPubkey(pubkey: string): string {
  const p = typeof pubkey === "string" ? pubkey.toLowerCase() : "";
  if (!HEX_PUBKEY.test(p)) throw new VigilError("bad_request", "INVALID_PUBKEY", `invalid BLS public key ${JSON.stringify(pubkey)} (0x + 48 bytes hex)`);
  return p;
}

function normRoot(root: string): string {
  const r = typeof root === "string" ? root.toLowerCase() : "";
  if (!HEX_ROOT.test(r)) throw new VigilError("bad_request", "INVALID_SIGNING_ROOT", `invalid signing root ${JSON.stringify(root)} (0x + 32 bytes hex)`);
  return r;
}

function checkRuleId(ruleId: string): string {
  if (typeof ruleId !== "string" || ruleId.length === 0 || /[\r\n]/.test(ruleId)) {
    throw new VigilError("bad_request", "INVALID_RULE_ID", `invalid rule id ${JSON.stringify(ruleId)}`);
  }
  return ruleId;
}

function checkId(id: string): string {
  if (typeof id !== "string" || !HEX_ID.test(id)) throw new VigilError("bad_request", "INVALID_APPROVAL_ID", `invalid approval id ${JSON.stringify(id)} (32 hex characters)`);
  return id;
}

/**
 * The approval id: the first 16 bytes (32 hex characters) of
 * SHA-256("vigil-approval-v1\n" + pubkey + "\n" + signingRoot + "\n" + ruleId + "\n" + nonce), with
 * pubkey and signing root as 0x lower-case hex and the entry's nonce (32 hex characters; entries
 * written before nonces have none, and no "\n" + nonce).
 */
export function approvalId(pubkey: string, signingRoot: string, ruleId: string, nonce?: string): string {
  let text = `${DOMAIN_ID}\n${normPubkey(pubkey)}\n${normRoot(signingRoot)}\n${checkRuleId(ruleId)}`;
  if (nonce !== undefined) {
    if (typeof nonce !== "string" || !HEX_ID.test(nonce)) throw new VigilError("bad_request", "INVALID_APPROVAL_NONCE", "an approval nonce is 32 hex characters");
    text += `\n${nonce}`;
  }
  return createHash("sha256").update(text, "utf8").digest().subarray(0, 16).toString("hex");
}

/**
 * The exact bytes (UTF-8) an approver signs to approve (or, with "reject", to reject) entry `id`:
 * "vigil-approval-v1\n<id>\n<pubkey>\n<signingRoot>" or "vigil-rejection-v1\n<id>\n<pubkey>\n<signingRoot>".
 */
export function approvalMessage(id: string, pubkey: string, signingRoot: string, verdict: ApprovalVerdict = "approve"): Buffer {
  const domain = verdict === "reject" ? DOMAIN_REJECT : DOMAIN_APPROVE;
  return Buffer.from(`${domain}\n${checkId(id)}\n${normPubkey(pubkey)}\n${normRoot(signingRoot)}`, "utf8");
}

export function rejectionMessage(id: string, pubkey: string, signingRoot: string): Buffer {
  return approvalMessage(id, pubkey, signingRoot, "reject");
}

/** The request to keep in an entry: a JSON copy, or null when absent, not JSON or beyond MAX_KEPT_REQUEST_BYTES. */
function keptRequest(request: unknown): unknown {
  if (request === undefined) return null;
  let text: string | undefined;
  try {
    text = JSON.stringify(request);
  } catch {
    return null;
  }
  return text === undefined || Buffer.byteLength(text) > MAX_KEPT_REQUEST_BYTES ? null : JSON.parse(text);
}

export function toJsonSafe(value: unknown, depth = 0): unknown {
  if (depth > 32) return null;
  if (typeof value === "bigint") return value.toString(10);
  if (value instanceof Uint8Array) return "0x" + Buffer.from(value).toString("hex");
  if (Array.isArray(value)) return value.map((v) => (v === undefined ? null : toJsonSafe(v, depth + 1)));
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined && typeof v !== "function") out[k] = toJsonSafe(v, depth + 1);
    return out;
  }
  if (typeof value === "number" && !Number.isFinite(value)) return null;
  if (value === undefined || typeof value === "function" || typeof value === "symbol") return null;
  return value;
}

// ---------------------------------------------------------------- the queue

const iso = (ms: number): string => new Date(ms).toISOString();
const ms = (s: string): number => Date.parse(s);

function normApprovers(list: ApproverRef[]): { name: string; public_key: string }[] {
  if (!Array.isArray(list) || list.length === 0) throw new VigilError("bad_request", "NO_APPROVERS", "an approval needs at least one approver");
  const seen = new Set<string>();
  const keys = new Map<string, string>();
  return list.map((a) => {
    checkApproverName(a.name);
    if (seen.has(a.name)) throw new VigilError("bad_request", "DUPLICATE_APPROVER", `approver ${a.name} is listed twice`);
    seen.add(a.name);
    const public_key = canonicalApproverPublicKey(a.publicKey);
    // One key under two names would count twice towards the quorum.
    const other = keys.get(public_key);
    if (other !== undefined) throw new VigilError("bad_request", "DUPLICATE_APPROVER_KEY", `approvers ${other} and ${a.name} have the same public key`);
    keys.set(public_key, a.name);
    return { name: a.name, public_key };
  });
}

/** Approvals that count: by an approver of `set` (default: the entry's), verified with the key it has there; each approver once. */
function countingApprovals(entry: ApprovalEntry, set: { name: string; public_key: string }[] = entry.approvers): ApprovalSignatureRecord[] {
  const seen = new Set<string>();
  return entry.approvals.filter((a) => {
    if (seen.has(a.approver) || !set.some((s) => s.name === a.approver && s.public_key === a.public_key)) return false;
    seen.add(a.approver);
    return true;
  });
}

function approverKeyOf(entry: ApprovalEntry, name: string): string | undefined {
  return entry.approvers.find((s) => s.name === name)?.public_key;
}

/** The status at `now` (pending past its TTL and approved past its window are expired). */
function effectiveStatus(entry: ApprovalEntry, now: number): ApprovalStatus {
  if (entry.status === "pending" || entry.status === "approved") {
    if (entry.expires_at !== null && now >= ms(entry.expires_at)) return "expired";
  }
  return entry.status;
}

function stateOf(entry: ApprovalEntry, now: number): ApprovalState {
  return {
    id: entry.id,
    status: effectiveStatus(entry, now),
    approvals: countingApprovals(entry).length,
    quorum: entry.quorum,
    expires_at: entry.expires_at,
  };
}

function checkPositiveInt(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 1) throw new VigilError("bad_request", "INVALID_APPROVAL_SETTINGS", `${name} must be a positive integer, not ${v}`);
  return v;
}

interface ApprovalsFile {
  format: "vigil-approvals";
  version: 1;
  entries: ApprovalEntry[];
}

/** A clock a little ahead of this one: times in the file later than this were not written by this clock. */
const SKEW_MS = 10 * 60 * 1000;

function parseFile(file: string, text: string): Map<string, ApprovalEntry> {
  const corrupt = (why: string): VigilError =>
    new VigilError("unavailable", "CORRUPT_APPROVALS", `approvals file ${file} is damaged (${why}); move it away to start with an empty queue`);
  let doc: ApprovalsFile;
  try {
    doc = JSON.parse(text) as ApprovalsFile;
  } catch (e) {
    throw corrupt((e as Error).message);
  }
  if (!doc || doc.format !== "vigil-approvals" || doc.version !== 1 || !Array.isArray(doc.entries)) throw corrupt("not a vigil-approvals version 1 file");
  const map = new Map<string, ApprovalEntry>();
  for (const e of doc.entries) {
    const ok =
      e &&
      typeof e.id === "string" &&
      HEX_ID.test(e.id) &&
      typeof e.pubkey === "string" &&
      typeof e.signing_root === "string" &&
      typeof e.rule_id === "string" &&
      ["pending", "approved", "rejected", "expired"].includes(e.status) &&
      Array.isArray(e.approvers) &&
      Array.isArray(e.approvals) &&
      Array.isArray(e.rejections) &&
      Number.isSafeInteger(e.quorum) &&
      Number.isSafeInteger(e.expiry_seconds) &&
      typeof e.created === "string";
    if (!ok) throw corrupt(`entry ${JSON.stringify((e as { id?: unknown })?.id)} is malformed`);
    // The id binds pubkey, root and rule: an edited entry cannot borrow another's approvals.
    let expected: string;
    try {
      expected = approvalId(e.pubkey, e.signing_root, e.rule_id, e.nonce);
    } catch {
      throw corrupt(`entry ${e.id} is malformed`);
    }
    if (expected !== e.id) throw corrupt(`entry ${e.id} does not match its pubkey, signing root, rule and nonce`);
    if (map.has(e.id)) throw corrupt(`entry ${e.id} appears twice`);
    // Times decide windows: the quorum cannot come before the entry (times ahead of this clock, after
    // it stepped back, are handled on open: such entries count as expired).
    const created = ms(e.created);
    const approvedAt = e.approved_at === null ? null : ms(e.approved_at);
    if (!Number.isFinite(created) || (approvedAt !== null && (!Number.isFinite(approvedAt) || approvedAt < created))) {
      throw corrupt(`entry ${e.id} has invalid or out-of-order times`);
    }
    for (const records of [e.approvals, e.rejections]) {
      const names = new Set(records.map((r) => r?.approver));
      if (names.size !== records.length) throw corrupt(`entry ${e.id} holds two records of one approver`);
    }
    // Every recorded approval and rejection must still verify: the file cannot be forged.
    for (const [records, verdict] of [[e.approvals, "approve"], [e.rejections, "reject"]] as const) {
      for (const r of records) {
        let valid = false;
        try {
          valid = verifyApproval(r.public_key, approvalMessage(e.id, e.pubkey, e.signing_root, verdict), r.signature);
        } catch {
          valid = false;
        }
        if (!valid) throw corrupt(`entry ${e.id} holds a ${verdict === "approve" ? "approval" : "rejection"} by ${JSON.stringify(r?.approver)} that does not verify`);
      }
    }
    map.set(e.id, e);
  }
  return map;
}

/** Atomic, durable replace (fs-atomic.ts); a failure refuses the operation that needed it. */
function atomicWriteSync(file: string, text: string): void {
  try {
    writeFileAtomicSync(file, text, 0o600);
  } catch (e) {
    throw new VigilError("unavailable", "APPROVALS_WRITE_FAILED", `cannot write ${file}: ${(e as Error).message}`);
  }
}

export class ApprovalQueue {
  readonly file: string;
  private entries: Map<string, ApprovalEntry>;
  private readonly pendingTtlMs: number;
  private readonly retentionMs: number;
  private readonly maxPending: number;

  private constructor(file: string, entries: Map<string, ApprovalEntry>, opts: ApprovalQueueOptions) {
    this.file = file;
    this.entries = entries;
    this.pendingTtlMs = checkPositiveInt("pendingTtlSeconds", opts.pendingTtlSeconds ?? 7 * 86400) * 1000;
    this.retentionMs = (opts.retentionSeconds ?? 7 * 86400) * 1000;
    this.maxPending = checkPositiveInt("maxPending", opts.maxPending ?? 1000);
  }

  /** Opens (or starts empty) `<dataDir>/approvals.json`. A damaged file is CORRUPT_APPROVALS. */
  static open(dataDir: string, opts: ApprovalQueueOptions = {}): ApprovalQueue {
    const file = path.join(dataDir, APPROVALS_FILE);
    let text: string | null = null;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new VigilError("unavailable", "APPROVALS_UNREADABLE", `cannot read ${file}: ${(e as Error).message}`);
      }
    }
    const now = Date.now();
    const queue = new ApprovalQueue(file, text === null ? new Map() : parseFile(file, text), opts);
    for (const e of queue.entries.values()) {
      if (e.status !== "pending" && e.status !== "approved") continue; // rejected stays rejected
      if (ms(e.created) > now + SKEW_MS || (e.approved_at !== null && ms(e.approved_at) > now + SKEW_MS)) {
        // Written by a clock ahead of this one (it stepped back, or the file was edited): a window
        // counted from such a time would be too long, so the entry counts as expired; the request
        // opens a new one.
        e.status = "expired";
        e.expires_at = iso(now);
      } else queue.settle(e, now); // windows are derived, not read: recomputed from the times and this queue's TTL
    }
    return queue;
  }

  /** The newest entry of the request (pubkey, signing root, rule), if any. */
  private current(pubkey: string, root: string, ruleId: string): ApprovalEntry | undefined {
    let found: ApprovalEntry | undefined;
    for (const e of this.entries.values()) {
      if (e.pubkey === pubkey && e.signing_root === root && e.rule_id === ruleId && (!found || ms(e.created) >= ms(found.created))) found = e;
    }
    return found;
  }

  /** Applies `fn` to a copy of the entries, writes the copy, then adopts it (memory = disk, even when the write fails). */
  private mutate<T>(fn: (entries: Map<string, ApprovalEntry>) => T): T {
    const copy = new Map([...this.entries].map(([k, v]) => [k, structuredClone(v)]));
    const result = fn(copy);
    const doc: ApprovalsFile = { format: "vigil-approvals", version: 1, entries: [...copy.values()] };
    fs.mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
    atomicWriteSync(this.file, JSON.stringify(doc, null, 2) + "\n");
    this.entries = copy;
    return result;
  }

  private need(id: string): ApprovalEntry {
    const e = this.entries.get(checkId(id));
    if (!e) throw new VigilError("not_found", "APPROVAL_NOT_FOUND", `no approval ${id}`);
    return e;
  }

  /**
   * The gate for a request the policy says needs approval: opens an entry for it (or finds the one
   * that exists: idempotent for the same id), refreshes its approver set, quorum and window from
   * `facts` (the policy in force), and answers its status. Sign iff the status is "approved";
   * otherwise refuse with APPROVAL_REQUIRED (or, for "rejected", as the lead prefers).
   * An expired entry is replaced by a fresh pending one. Writes the file only when something changed.
   */
  request(facts: ApprovalRequestFacts, now: number): ApprovalState {
    const pubkey = normPubkey(facts.pubkey);
    const root = normRoot(facts.signingRoot);
    checkRuleId(facts.ruleId);
    const quorum = checkPositiveInt("quorum", facts.quorum);
    const expirySeconds = checkPositiveInt("expirySeconds", facts.expirySeconds);
    const approvers = normApprovers(facts.approvers);
    if (quorum > approvers.length) {
      throw new VigilError("bad_request", "INVALID_APPROVAL_SETTINGS", `rule ${facts.ruleId} needs ${quorum} approvals but names ${approvers.length} approvers`);
    }
    const existing = this.current(pubkey, root, facts.ruleId);
    const status = existing ? effectiveStatus(existing, now) : null;
    if (existing && status === "rejected") return stateOf(existing, now);

    if (!existing || status === "expired") {
      let pending = 0;
      for (const e of this.entries.values()) if (effectiveStatus(e, now) === "pending") pending++;
      if (pending >= this.maxPending) {
        throw new VigilError("unavailable", "APPROVAL_QUEUE_FULL", `${pending} requests already wait for approval; approve, reject or let them expire first`);
      }
      const nonce = randomBytes(16).toString("hex");
      const entry: ApprovalEntry = {
        id: approvalId(pubkey, root, facts.ruleId, nonce),
        nonce,
        pubkey,
        signing_root: root,
        rule_id: facts.ruleId,
        type: String(facts.type),
        summary: String(facts.summary),
        client: facts.client ?? null,
        content: facts.content === undefined ? null : toJsonSafe(facts.content),
        request: keptRequest(facts.request),
        ...(facts.network === undefined ? {} : { network: String(facts.network) }),
        quorum,
        approvers,
        expiry_seconds: expirySeconds,
        status: "pending",
        created: iso(now),
        approved_at: null,
        expires_at: iso(now + this.pendingTtlMs),
        rejected_at: null,
        approvals: [],
        rejections: [],
      };
      return this.mutate((m) => {
        m.set(entry.id, entry);
        return stateOf(entry, now);
      });
    }

    // Pending or approved: refresh from the policy in force.
    const refreshed = structuredClone(existing);
    refreshed.quorum = quorum;
    refreshed.expiry_seconds = expirySeconds;
    // Approvals by approvers removed from the set, or whose key changed, stop counting (dropped).
    refreshed.approvals = existing.approvals.filter((a) => approvers.some((s) => s.name === a.approver && s.public_key === a.public_key));
    refreshed.approvers = approvers;
    this.settle(refreshed, now);
    if (JSON.stringify(refreshed) === JSON.stringify(existing)) return stateOf(existing, now);
    return this.mutate((m) => {
      m.set(existing.id, refreshed);
      return stateOf(refreshed, now);
    });
  }

  /** Recomputes status/approved_at/expires_at of a pending or approved entry after a change. */
  private settle(e: ApprovalEntry, now: number): void {
    const count = countingApprovals(e).length;
    if (count >= e.quorum) {
      if (e.status !== "approved" || e.approved_at === null) {
        e.status = "approved";
        e.approved_at = iso(now);
      }
      e.expires_at = iso(ms(e.approved_at) + e.expiry_seconds * 1000);
    } else {
      if (e.status === "approved") {
        e.status = "pending";
        e.approved_at = null;
      }
      e.expires_at = iso(ms(e.created) + this.pendingTtlMs);
    }
  }

  /** All entries (copies), newest first, with their status at `now`. */
  list(now: number = Date.now()): ApprovalEntry[] {
    return [...this.entries.values()]
      .map((e) => ({ ...structuredClone(e), status: effectiveStatus(e, now) }))
      .sort((a, b) => ms(b.created) - ms(a.created) || a.id.localeCompare(b.id));
  }

  /** One entry (a copy) with its status at `now`, or undefined. */
  get(id: string, now: number = Date.now()): ApprovalEntry | undefined {
    const e = this.entries.get(id);
    return e ? { ...structuredClone(e), status: effectiveStatus(e, now) } : undefined;
  }

  /**
   * Records approver `approverName`'s approval of entry `id`: `signatureB64` must verify over
   * approvalMessage(id, pubkey, signingRoot) with that approver's key in the entry's approver set.
   * Refused: unknown id (APPROVAL_NOT_FOUND), rejected (APPROVAL_REJECTED) or expired
   * (APPROVAL_EXPIRED) entries, an approver not in the set (UNKNOWN_APPROVER), a bad signature
   * (BAD_APPROVAL_SIGNATURE), a second approval by the same approver (DUPLICATE_APPROVAL).
   * Approvals beyond the quorum are recorded without extending the window.
   */
  approve(id: string, approverName: string, signatureB64: string, now: number): ApprovalState {
    const entry = this.need(id);
    const status = effectiveStatus(entry, now);
    if (status === "rejected") throw new VigilError("conflict", "APPROVAL_REJECTED", `approval ${id} was rejected by ${entry.rejections.map((r) => r.approver).join(", ")}`);
    if (status === "expired") throw new VigilError("conflict", "APPROVAL_EXPIRED", `approval ${id} expired at ${entry.expires_at}; the request must be sent again`);
    const key = approverKeyOf(entry, approverName);
    if (key === undefined) {
      throw new VigilError("bad_request", "UNKNOWN_APPROVER", `${JSON.stringify(approverName)} is not an approver of ${id} (approvers: ${entry.approvers.map((a) => a.name).join(", ")})`);
    }
    if (entry.approvals.some((a) => a.approver === approverName)) {
      throw new VigilError("conflict", "DUPLICATE_APPROVAL", `${approverName} already approved ${id}`);
    }
    if (!verifyApproval(key, approvalMessage(entry.id, entry.pubkey, entry.signing_root), signatureB64)) {
      throw new VigilError("bad_request", "BAD_APPROVAL_SIGNATURE", `the signature is not ${approverName}'s approval of ${id}`);
    }
    return this.mutate((m) => {
      const e = m.get(id)!;
      e.approvals.push({ approver: approverName, public_key: key, signature: signatureB64, at: iso(now) });
      this.settle(e, now);
      return stateOf(e, now);
    });
  }

  /**
   * Records a signed rejection (rejectionMessage(id, pubkey, signingRoot) signed by an approver of
   * the entry). One rejection suffices: the entry is rejected for good, approved or not.
   * Refused: unknown id or approver, bad signature (BAD_REJECTION_SIGNATURE), a second rejection by
   * the same approver (DUPLICATE_REJECTION).
   */
  reject(id: string, approverName: string, signatureB64: string, now: number = Date.now()): ApprovalState {
    const entry = this.need(id);
    const key = approverKeyOf(entry, approverName);
    if (key === undefined) {
      throw new VigilError("bad_request", "UNKNOWN_APPROVER", `${JSON.stringify(approverName)} is not an approver of ${id} (approvers: ${entry.approvers.map((a) => a.name).join(", ")})`);
    }
    if (entry.rejections.some((a) => a.approver === approverName)) {
      throw new VigilError("conflict", "DUPLICATE_REJECTION", `${approverName} already rejected ${id}`);
    }
    if (!verifyApproval(key, rejectionMessage(entry.id, entry.pubkey, entry.signing_root), signatureB64)) {
      throw new VigilError("bad_request", "BAD_REJECTION_SIGNATURE", `the signature is not ${approverName}'s rejection of ${id}`);
    }
    return this.mutate((m) => {
      const e = m.get(id)!;
      e.rejections.push({ approver: approverName, public_key: key, signature: signatureB64, at: iso(now) });
      if (e.status !== "rejected") {
        e.status = "rejected";
        e.rejected_at = iso(now);
        e.expires_at = null;
      }
      return stateOf(e, now);
    });
  }

  /**
   * Read-only check: is the request (pubkey, signingRoot, ruleId) approved at `now` (quorum met,
   * window not passed, not rejected)? With `current` (the policy in force), only approvals by its
   * approvers (same key) count, against its quorum. `request()` does this and more; use this where
   * nothing may be written.
   */
  isApproved(pubkey: string, signingRoot: string, ruleId: string, now: number, current?: { quorum: number; approvers: ApproverRef[] }): boolean {
    let e: ApprovalEntry | undefined;
    try {
      e = this.current(normPubkey(pubkey), normRoot(signingRoot), checkRuleId(ruleId));
    } catch {
      return false;
    }
    if (!e || effectiveStatus(e, now) !== "approved") return false;
    if (!current) return countingApprovals(e).length >= e.quorum;
    const set = normApprovers(current.approvers);
    return countingApprovals(e, set).length >= current.quorum;
  }

  /**
   * Marks pending entries past their TTL and approved entries past their window as expired, and
   * drops expired entries older than the retention. Returns the ids newly expired and dropped.
   */
  expire(now: number): { expired: string[]; dropped: string[] } {
    const expired: string[] = [];
    const dropped: string[] = [];
    for (const e of this.entries.values()) {
      if (e.status !== "expired" && effectiveStatus(e, now) === "expired") expired.push(e.id);
      else if (e.status === "expired" && e.expires_at !== null && now >= ms(e.expires_at) + this.retentionMs) dropped.push(e.id);
    }
    if (expired.length === 0 && dropped.length === 0) return { expired, dropped };
    return this.mutate((m) => {
      for (const id of expired) m.get(id)!.status = "expired";
      for (const id of dropped) m.delete(id);
      return { expired, dropped };
    });
  }
}
