/**
 * The audit log: every signing decision, appended to a hash chain in the data directory, durably,
 * before the answer leaves the vault.
 *
 * File `<data-dir>/audit.log` (mode 0600): one JSON object per line (UTF-8, "\n"-terminated), keys
 * in this fixed order, `code` and `message` present only when set:
 *
 *   {"seq":0,"time":"2026-01-01T00:00:00.000Z","client":"lodestar","pubkey":"0xa99a…",
 *    "type":"ATTESTATION","summary":"…","signingRoot":"0x…","ruleId":"attest-any",
 *    "outcome":"allowed","code":"…","message":"…","prev":"<64 hex>","hash":"<64 hex>"}
 *
 *   seq       0, 1, 2, … without gaps
 *   time      ISO-8601 UTC with milliseconds
 *   outcome   allowed | refused | approval_required | approved | warned
 *   prev      the previous entry's `hash` (64 zeros for seq 0)
 *   hash      SHA-256 (lower-case hex) of the UTF-8 bytes of the line's own canonical form
 *             WITHOUT the `hash` member, i.e. JSON.stringify of the other members in the order
 *             above. The line is exactly that text with `,"hash":"…"` before the closing brace:
 *             a line in any other form (spacing, key order, extra keys) counts as edited.
 *
 * Since each entry's hash covers `prev`, an entry's hash commits to the whole log before it.
 *
 * Head anchor `<data-dir>/audit.head` (mode 0600): `{"seq":N,"hash":"<hash of entry N>"}` (seq -1 and
 * 64 zeros for an empty log). It is rewritten atomically (temp file, fsync, rename, fsync of the
 * directory) after each group commit, off the request path: a record() waits for its own log line
 * only, so the anchor lags the log by at most ANCHOR_INTERVAL_MS (200 ms) plus one rewrite, but
 * is never ahead of what the log holds durably. `verifyAuditLog` checks that the anchor's entry is
 * in the log with that hash: dropping lines from the end (or deleting the log) is detected for
 * every entry the anchor covers.
 *
 * Limits. The chain is unkeyed (the audit log must be checkable without the key store's
 * passphrase): whoever can write the data directory can rewrite the log from any point on,
 * recompute every hash and rewrite the anchor, and no local check can tell. Against that, anchor
 * the head outside the machine: copy `vigil audit head` (`<seq>:<hash>`) somewhere else
 * periodically (a ticket, another host's log, a chat channel); `verifyAuditLog(dir, {expect})` /
 * `vigil audit verify --anchor <seq>:<hash>` then proves that entries 0…seq are unchanged.
 * Entries written after the last anchor update (the last flush) can be dropped without trace.
 *
 * Durability. Records made in the same event-loop turn (and those arriving while a flush is in
 * progress) share one write and one fdatasync (group commit); each record() resolves only once
 * its line is on disk. A write or sync failure makes the log unusable: every pending and later
 * record() rejects with AUDIT_LOG_FAILED (`unavailable`), so the vault must refuse to sign.
 *
 * Crash recovery. Lines of a batch are acknowledged only after the whole batch (ending in "\n")
 * is synced, so an unterminated last line is a write a crash interrupted, never acknowledged:
 * `open` removes it (reported in `recovered`) provided the rest of the tail verifies. Complete
 * lines of an interrupted batch are kept: an entry records a decision, and the answer may not
 * have left (a crash, or a failed audit write after it). Any other damage of the tail (an edited,
 * deleted or garbage last line, a missing or disagreeing anchor) makes `open` fail with
 * AUDIT_LOG_CORRUPT: Vigil refuses to start rather than sign without an audit trail. To start
 * anyway, move audit.log and audit.head aside (keep them as evidence); a new log begins.
 *
 * One writer. The log has one writer (the vault process). Before each write the file's size is
 * compared with what this writer last wrote: another writer or a truncation under a running
 * Vigil fails the log (AUDIT_LOG_CHANGED) instead of forking the chain.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { VigilError } from "../errors.js";
import { fsyncDir } from "../fs-atomic.js";

import { AUDIT_HEAD_FILE, AUDIT_LOG_FILE } from "../config/files.js";
export { AUDIT_HEAD_FILE, AUDIT_LOG_FILE };
export const ZERO_HASH = "0".repeat(64);
/** Least time between the starts of two rewrites of audit.head. */
export const ANCHOR_INTERVAL_MS = 200;

export type AuditOutcome = "allowed" | "refused" | "approval_required" | "approved" | "warned";
export const AUDIT_OUTCOMES: readonly AuditOutcome[] = ["allowed", "refused", "approval_required", "approved", "warned"];

export interface AuditEntry {
  seq: number;
  /** ISO-8601 UTC with milliseconds. */
  time: string;
  /** Client identity (policy client name), or null when unauthenticated. */
  client: string | null;
  /** 0x hex public key asked to sign. */
  pubkey: string;
  /** Request type (ATTESTATION, BLOCK_V2, …). */
  type: string;
  /** One-line human description of the request. */
  summary: string;
  /** 0x hex signing root Vigil computed; null when there is none (e.g. refused before decoding). */
  signingRoot: string | null;
  /** The policy rule (or protection check) that decided; null when none applies. */
  ruleId: string | null;
  outcome: AuditOutcome;
  /** Error code of a refusal (DOUBLE_VOTE, …) or of a warning. */
  code?: string;
  message?: string;
  /** The previous entry's hash; 64 zeros for seq 0. */
  prev: string;
  /** SHA-256 of the canonical serialization of the other members. */
  hash: string;
}

export type AuditRecord = Omit<AuditEntry, "seq" | "time" | "prev" | "hash"> & { time?: string };

export interface AuditHead {
  /** -1 for an empty log. */
  seq: number;
  hash: string;
}

export interface AuditLogOptions {
  /** The log's fdatasync (default `fh.datasync()`); tests wrap it to count or delay syncs. */
  datasync?: (fh: fsp.FileHandle) => Promise<void>;
  /** Clock for entries recorded without `time`. */
  now?: () => Date;
}

const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const HASH_RE = /^[0-9a-f]{64}$/;
const NL = 0x0a;

// crypto.hash (Node ≥ 20.12) hashes in one call, without a Hash object per entry.
const sha256Hex: (text: string) => string =
  typeof crypto.hash === "function" ? (text) => crypto.hash("sha256", text, "hex") : (text) => crypto.createHash("sha256").update(text, "utf8").digest("hex");

// ---------------------------------------------------------------- canonical form

/** JSON text of the entry without `hash`, members in the fixed order. */
function canonicalBody(e: Omit<AuditEntry, "hash">): string {
  const o: Record<string, unknown> = {
    seq: e.seq,
    time: e.time,
    client: e.client,
    pubkey: e.pubkey,
    type: e.type,
    summary: e.summary,
    signingRoot: e.signingRoot,
    ruleId: e.ruleId,
    outcome: e.outcome,
  };
  if (e.code !== undefined) o.code = e.code;
  if (e.message !== undefined) o.message = e.message;
  o.prev = e.prev;
  return JSON.stringify(o);
}

/** The hash of an entry: SHA-256 of its canonical body. */
export function entryHash(e: Omit<AuditEntry, "hash">): string {
  return sha256Hex(canonicalBody(e));
}

/** The exact line (without "\n") of an entry. */
function lineOf(body: string, hash: string): string {
  return `${body.slice(0, -1)},"hash":"${hash}"}`;
}

/** The line (without "\n") an entry must be written as. */
export function serializeEntry(e: AuditEntry): string {
  return lineOf(canonicalBody(e), e.hash);
}

const STRING_KEYS = ["pubkey", "type", "summary"] as const;
const NULLABLE_KEYS = ["signingRoot", "ruleId"] as const;
const OPTIONAL_KEYS = ["code", "message"] as const;
const KNOWN_KEYS = new Set(["seq", "time", "client", "pubkey", "type", "summary", "signingRoot", "ruleId", "outcome", "code", "message", "prev", "hash"]);

/** Checks the members' types; returns a reason, or null when the object is an entry (`hashed`: with its hash). */
function shapeProblem(o: unknown, hashed = true): string | null {
  if (typeof o !== "object" || o === null || Array.isArray(o)) return "not a JSON object";
  const r = o as Record<string, unknown>;
  for (const k in r) if (!KNOWN_KEYS.has(k)) return `unknown member "${k}"`;
  if (!Number.isSafeInteger(r.seq) || (r.seq as number) < 0) return "seq is not a non-negative integer";
  if (typeof r.time !== "string" || !TIME_RE.test(r.time)) return "time is not an ISO-8601 UTC time with milliseconds";
  if (r.client !== null && typeof r.client !== "string") return "client is not a string or null";
  for (const k of STRING_KEYS) if (typeof r[k] !== "string") return `${k} is not a string`;
  for (const k of NULLABLE_KEYS) if (r[k] !== null && typeof r[k] !== "string") return `${k} is not a string or null`;
  if (!AUDIT_OUTCOMES.includes(r.outcome as AuditOutcome)) return `outcome ${JSON.stringify(r.outcome)} is not one of ${AUDIT_OUTCOMES.join(", ")}`;
  for (const k of OPTIONAL_KEYS) if (k in r && typeof r[k] !== "string") return `${k} is not a string`;
  if (typeof r.prev !== "string" || !HASH_RE.test(r.prev)) return "prev is not 64 lower-case hex digits";
  if (hashed && (typeof r.hash !== "string" || !HASH_RE.test(r.hash))) return "hash is not 64 lower-case hex digits";
  return null;
}

type Parsed =
  | { kind: "garbage"; why: string }
  | { kind: "entry"; entry: AuditEntry; canonical: boolean; hashOk: boolean };

/** Parses one line (without "\n"): garbage, or an entry with its canonical-form and hash checks. */
export function parseLine(line: string): Parsed {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    return { kind: "garbage", why: "not JSON" };
  }
  const why = shapeProblem(o);
  if (why !== null) return { kind: "garbage", why };
  const entry = o as AuditEntry;
  const body = canonicalBody(entry);
  return { kind: "entry", entry, canonical: lineOf(body, entry.hash) === line, hashOk: sha256Hex(body) === entry.hash };
}

// ---------------------------------------------------------------- formatting

const shortKey = (k: string): string => (k.length > 16 ? `${k.slice(0, 10)}…${k.slice(-4)}` : k);

/** One readable line: time, outcome, rule, client, type, short pubkey, summary (and code: message). */
export function formatEntry(e: AuditEntry): string {
  const detail = e.code !== undefined || e.message !== undefined ? `  [${[e.code, e.message].filter((x) => x !== undefined).join(": ")}]` : "";
  return (
    `${e.time}  ${e.outcome.toUpperCase().padEnd(17)}  rule=${e.ruleId ?? "-"}  client=${e.client ?? "-"}  ` +
    `${e.type}  ${shortKey(e.pubkey)}  ${e.summary.replace(/[\r\n]+/g, " ")}${detail}`
  );
}

// ---------------------------------------------------------------- file helpers

const corrupt = (msg: string): VigilError =>
  new VigilError(
    "unavailable",
    "AUDIT_LOG_CORRUPT",
    `${msg}. Vigil does not sign without an audit trail: run \`vigil audit verify\` for details; to start a new log, move audit.log and audit.head aside (keep them as evidence)`,
  );

async function readFully(fh: fsp.FileHandle, buf: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    const { bytesRead } = await fh.read(buf, off, buf.length - off, position + off);
    if (bytesRead === 0) throw new Error(`unexpected end of file at ${position + off}`);
    off += bytesRead;
  }
}

function writeFullySync(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off, null);
}

type AnchorState = { kind: "missing" } | { kind: "invalid"; why: string } | { kind: "ok"; head: AuditHead };

/** Reads `<dir>/audit.head`. */
export async function readAnchor(dir: string): Promise<AnchorState> {
  let text: string;
  try {
    text = await fsp.readFile(path.join(dir, AUDIT_HEAD_FILE), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { kind: "missing" };
    return { kind: "invalid", why: (e as Error).message };
  }
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch {
    return { kind: "invalid", why: "not JSON" };
  }
  const r = o as Record<string, unknown>;
  if (typeof o !== "object" || o === null || !Number.isSafeInteger(r.seq) || (r.seq as number) < -1 || typeof r.hash !== "string" || !HASH_RE.test(r.hash)) {
    return { kind: "invalid", why: "not {seq, hash}" };
  }
  if (r.seq === -1 && r.hash !== ZERO_HASH) return { kind: "invalid", why: "seq -1 with a non-zero hash" };
  return { kind: "ok", head: { seq: r.seq as number, hash: r.hash } };
}

/** Atomic rewrite of the anchor: temp file, fsync, rename, fsync of the directory. */
async function writeAnchor(dir: string, head: AuditHead): Promise<void> {
  const file = path.join(dir, AUDIT_HEAD_FILE);
  const tmp = `${file}.tmp`;
  const fh = await fsp.open(tmp, "w", 0o600);
  try {
    await fh.chmod(0o600);
    await fh.writeFile(`${JSON.stringify({ seq: head.seq, hash: head.hash })}\n`, "utf8");
    await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
  await fsyncDir(dir);
}

/**
 * The complete lines of [0, end) from last to first ("\n" removed), with their byte offsets.
 * `end` must be 0 or just after a "\n".
 */
async function* linesBackward(fh: fsp.FileHandle, end: number, chunk = 1 << 16): AsyncGenerator<{ text: string; start: number }> {
  let pos = end; // buf holds the bytes [pos, pos + buf.length), which end with "\n"
  let buf = Buffer.alloc(0);
  while (pos + buf.length > 0) {
    const i = buf.length >= 2 ? buf.lastIndexOf(NL, buf.length - 2) : -1;
    if (i >= 0) {
      yield { text: buf.subarray(i + 1, buf.length - 1).toString("utf8"), start: pos + i + 1 };
      buf = buf.subarray(0, i + 1);
    } else if (pos === 0) {
      yield { text: buf.subarray(0, buf.length - 1).toString("utf8"), start: 0 };
      buf = Buffer.alloc(0);
    } else {
      const n = Math.min(chunk, pos);
      const more = Buffer.alloc(n);
      await readFully(fh, more, pos - n);
      pos -= n;
      buf = Buffer.concat([more, buf]);
    }
  }
}

/** Size and offset just after the last "\n" (bytes beyond it are an unterminated last line). */
async function lastNewline(fh: fsp.FileHandle, size: number, chunk = 1 << 16): Promise<number> {
  let pos = size;
  while (pos > 0) {
    const n = Math.min(chunk, pos);
    const b = Buffer.alloc(n);
    await readFully(fh, b, pos - n);
    const i = b.lastIndexOf(NL);
    if (i >= 0) return pos - n + i + 1;
    pos -= n;
  }
  return 0;
}

/** The last `count` complete lines of a log (oldest first), for `tail` and `head`. */
export async function readLastLines(file: string, count: number): Promise<{ lines: string[]; end: number }> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { lines: [], end: 0 };
    throw e;
  }
  try {
    const { size } = await fh.stat();
    const end = await lastNewline(fh, size);
    const lines: string[] = [];
    if (count > 0) {
      for await (const l of linesBackward(fh, end)) {
        lines.push(l.text);
        if (lines.length >= count) break;
      }
    }
    return { lines: lines.reverse(), end };
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------- the writer

interface Waiter {
  resolve: () => void;
  reject: (e: unknown) => void;
}

export class AuditLog {
  /** Counters: records accepted, writes and fdatasyncs of the log, anchor rewrites. */
  readonly stats = { records: 0, writes: 0, syncs: 0, anchorWrites: 0 };

  private nextSeq: number;
  private lastHash: string;
  private batch: string[] = [];
  private waiters: Waiter[] = [];
  private batchHead: AuditHead | null = null;
  private scheduled = false;
  private flushing: Promise<void> | null = null;
  private anchorWanted: AuditHead | null = null;
  private anchorRunning: Promise<void> | null = null;
  /** performance.now() when the last anchor rewrite started. */
  private anchorStarted = -Infinity;
  /** Ends the wait before the next anchor rewrite (close). */
  private anchorNap: (() => void) | null = null;
  private failure: VigilError | null = null;
  private closing: Promise<void> | null = null;
  private repairing: Promise<unknown> | null = null;
  private durable: AuditHead;
  /** Bytes of the log known to be on disk (synced). */
  private durableSize: number;

  private constructor(
    readonly dir: string,
    private readonly fh: fsp.FileHandle,
    private size: number,
    head: AuditHead,
    private readonly datasync: (fh: fsp.FileHandle) => Promise<void>,
    private readonly now: () => Date,
    /** What open() repaired (an unterminated last line from a crash), for the vault to log; null if nothing. */
    readonly recovered: string | null,
  ) {
    this.nextSeq = head.seq + 1;
    this.lastHash = head.hash;
    this.durable = head;
    this.durableSize = size;
  }

  get file(): string {
    return path.join(this.dir, AUDIT_LOG_FILE);
  }

  /** The last entry durably in the log ({-1, zeros} when empty). */
  get head(): AuditHead {
    return { ...this.durable };
  }

  /**
   * Opens (or creates) `<dir>/audit.log`: verifies the tail back to the anchor's entry (at least
   * the last entry), removes an unterminated last line left by a crash, and continues the chain.
   * Fails with AUDIT_LOG_CORRUPT when the tail does not verify.
   */
  static async open(dir: string, options: AuditLogOptions = {}): Promise<AuditLog> {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, AUDIT_LOG_FILE);
    const anchor = await readAnchor(dir);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, "a+", 0o600);
    } catch (e) {
      throw new VigilError("unavailable", "AUDIT_LOG_UNAVAILABLE", `cannot open audit log ${file}: ${(e as Error).message}`);
    }
    try {
      const { size } = await fh.stat();
      let head: AuditHead;
      let recovered: string | null = null;
      if (size === 0) {
        if (anchor.kind === "ok" && anchor.head.seq >= 0) {
          throw corrupt(`audit log ${file} is empty or was deleted, but its head anchor records entry ${anchor.head.seq}: the log was truncated`);
        }
        if (anchor.kind === "invalid") throw corrupt(`audit head anchor ${path.join(dir, AUDIT_HEAD_FILE)} is unreadable (${anchor.why})`);
        await fh.chmod(0o600);
        head = { seq: -1, hash: ZERO_HASH };
        if (anchor.kind === "missing") await writeAnchor(dir, head); // also makes the new log's directory entry durable
      } else {
        if (anchor.kind === "missing") {
          throw corrupt(`audit head anchor ${path.join(dir, AUDIT_HEAD_FILE)} is missing: the end of ${file} cannot be checked for truncation`);
        }
        if (anchor.kind === "invalid") throw corrupt(`audit head anchor ${path.join(dir, AUDIT_HEAD_FILE)} is unreadable (${anchor.why})`);
        const end = await lastNewline(fh, size);
        head = await verifyTail(fh, file, end, anchor.head);
        if (end < size) {
          await fh.truncate(end);
          await fh.datasync();
          recovered = `removed an unterminated last line of ${size - end} bytes from ${file} (a write interrupted by a crash, never acknowledged)`;
        }
        if (anchor.head.seq !== head.seq) await writeAnchor(dir, head);
      }
      const { size: now } = await fh.stat();
      return new AuditLog(dir, fh, now, head, options.datasync ?? ((h) => h.datasync()), options.now ?? (() => new Date()), recovered);
    } catch (e) {
      await fh.close().catch(() => undefined);
      if (e instanceof VigilError) throw e;
      throw new VigilError("unavailable", "AUDIT_LOG_UNAVAILABLE", `cannot open audit log ${file}: ${(e as Error).message}`);
    }
  }

  /**
   * Appends one decision. Resolves once its line is on disk (write + fdatasync, shared with the
   * records of the same event-loop turn); rejects with AUDIT_LOG_FAILED / AUDIT_LOG_CLOSED
   * (`unavailable`) when it cannot be recorded: then nothing may be signed.
   */
  record(r: AuditRecord): Promise<void> {
    if (this.closing) return Promise.reject(new VigilError("unavailable", "AUDIT_LOG_CLOSED", "the audit log is closed"));
    if (this.failure) return Promise.reject(this.failure);
    const time = r.time ?? this.now().toISOString();
    const body: Omit<AuditEntry, "hash"> = {
      seq: this.nextSeq,
      time,
      client: r.client,
      pubkey: r.pubkey,
      type: r.type,
      summary: r.summary,
      signingRoot: r.signingRoot,
      ruleId: r.ruleId,
      outcome: r.outcome,
      prev: this.lastHash,
    };
    if (r.code !== undefined) body.code = r.code;
    if (r.message !== undefined) body.message = r.message;
    const why = shapeProblem(body, false);
    if (why !== null) return Promise.reject(new VigilError("internal", "AUDIT_ENTRY_INVALID", `audit entry: ${why}`));
    const text = canonicalBody(body);
    const hash = sha256Hex(text);
    this.nextSeq++;
    this.lastHash = hash;
    this.stats.records++;
    this.batch.push(lineOf(text, hash));
    this.batchHead = { seq: body.seq, hash };
    const p = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.schedule();
    return p;
  }

  /** Flushes what was recorded, updates the anchor, closes the file. Later records reject. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.scheduled || this.flushing || this.batch.length > 0) {
        if (this.flushing) await this.flushing;
        else await new Promise<void>((r) => setImmediate(r));
      }
      this.anchorNap?.();
      while (this.anchorRunning) await this.anchorRunning;
      await this.repairing;
      await this.fh.close();
    })();
    return this.closing;
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    // After the code that is running now (e.g. a protection group commit recording its decisions),
    // not a turn of the event loop later: the fdatasync starts while BLS signs and the WAL syncs.
    queueMicrotask(() => {
      this.scheduled = false;
      this.flushing = this.flushLoop().finally(() => {
        this.flushing = null;
        if (this.batch.length > 0) this.schedule();
      });
    });
  }

  /** Group commit: one write + one fdatasync per batch, until nothing is pending. */
  private async flushLoop(): Promise<void> {
    while (this.batch.length > 0) {
      const lines = this.batch;
      const waiters = this.waiters;
      const head = this.batchHead!;
      this.batch = [];
      this.waiters = [];
      try {
        if (this.failure) throw this.failure;
        const buf = Buffer.from(lines.join("\n") + "\n", "utf8");
        // Write and size check on this thread (an append to the page cache takes microseconds); only the
        // fdatasync goes to the thread pool: one hand-off per batch instead of three.
        writeFullySync(this.fh.fd, buf);
        this.stats.writes++;
        this.size += buf.length;
        const { size } = fs.fstatSync(this.fh.fd);
        if (size !== this.size) {
          throw new VigilError(
            "unavailable",
            "AUDIT_LOG_CHANGED",
            `audit log ${this.file} was changed by someone else (size ${size}, expected ${this.size}): another process writes it, or it was truncated`,
          );
        }
        await this.datasync(this.fh);
        this.stats.syncs++;
        this.durable = head;
        this.durableSize = this.size;
        for (const w of waiters) w.resolve();
        this.scheduleAnchor(head);
      } catch (e) {
        const err = this.fail(e);
        for (const w of waiters) w.reject(err);
        for (const w of this.waiters) w.reject(err);
        this.batch = [];
        this.waiters = [];
      }
    }
  }

  private fail(e: unknown): VigilError {
    if (!this.failure) {
      this.failure =
        e instanceof VigilError
          ? e
          : new VigilError(
              "unavailable",
              "AUDIT_LOG_FAILED",
              `cannot write the audit log ${this.file}: ${(e as Error).message}; nothing can be signed until Vigil is restarted`,
            );
      // Best effort: drop bytes that may have been written without a successful sync.
      const durableSize = this.durableSize;
      this.repairing = this.fh
        .stat()
        .then(({ size }) => (size > durableSize ? this.fh.truncate(durableSize).then(() => this.fh.datasync()) : undefined))
        .catch(() => undefined);
    }
    return this.failure;
  }

  private scheduleAnchor(head: AuditHead): void {
    this.anchorWanted = head;
    if (this.anchorRunning) return;
    this.anchorRunning = (async () => {
      while (this.anchorWanted) {
        // One rewrite per ANCHOR_INTERVAL_MS at most, counted from the start of the previous one:
        // each costs two fsyncs and a rename (journal commits that the log's and the protection
        // database's syncs wait behind). Closing cuts the wait short.
        const wait = this.anchorStarted + ANCHOR_INTERVAL_MS - performance.now();
        if (wait > 0 && !this.closing) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, wait);
            this.anchorNap = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          this.anchorNap = null;
        }
        const h = this.anchorWanted;
        this.anchorWanted = null;
        this.anchorStarted = performance.now();
        try {
          await writeAnchor(this.dir, h);
          this.stats.anchorWrites++;
        } catch (e) {
          this.fail(new VigilError("unavailable", "AUDIT_LOG_FAILED", `cannot update the audit head anchor in ${this.dir}: ${(e as Error).message}`));
          return;
        }
      }
    })().finally(() => {
      this.anchorRunning = null;
    });
  }
}

/**
 * Verifies the complete lines [0, end) from the last one back to the anchor's entry: each line's
 * form and hash, seq continuity and prev links. Returns the last entry.
 */
async function verifyTail(fh: fsp.FileHandle, file: string, end: number, anchor: AuditHead): Promise<AuditHead> {
  let last: AuditHead | null = null;
  let later: AuditEntry | null = null;
  for await (const { text } of linesBackward(fh, end)) {
    const where = later === null ? "the last line" : `the line before entry ${later.seq}`;
    const p = parseLine(text);
    if (p.kind === "garbage") throw corrupt(`audit log ${file}: ${where} is not an audit entry (${p.why})`);
    const e = p.entry;
    if (!p.hashOk) throw corrupt(`audit log ${file}: entry ${e.seq} (${where}) was edited: its hash does not match its content`);
    if (!p.canonical) throw corrupt(`audit log ${file}: entry ${e.seq} (${where}) was edited: it is not in canonical form`);
    if (later === null) {
      if (e.seq < anchor.seq) throw corrupt(`audit log ${file} ends at entry ${e.seq} but its head anchor records entry ${anchor.seq}: the log was truncated`);
      last = { seq: e.seq, hash: e.hash };
    } else if (e.seq !== later.seq - 1 || e.hash !== later.prev) {
      throw corrupt(`audit log ${file}: entry ${later.seq} does not follow the line before it (entry ${e.seq}): lines were deleted, reordered or replaced`);
    }
    if (e.seq === anchor.seq) {
      if (e.hash !== anchor.hash) throw corrupt(`audit log ${file}: entry ${e.seq} does not match its head anchor: the log was rewritten`);
      return last!;
    }
    if (e.seq === 0) {
      // anchor.seq is -1 here: the anchor lies between -1 and the last entry, and every entry above 0 was passed
      if (e.prev !== ZERO_HASH) throw corrupt(`audit log ${file}: entry 0 does not start the chain (prev is not 64 zeros)`);
      return last!;
    }
    later = e;
  }
  if (later === null) {
    // no complete line at all (only an unterminated one)
    if (anchor.seq === -1) return { seq: -1, hash: ZERO_HASH };
    throw corrupt(`audit log ${file} holds no complete entry but its head anchor records entry ${anchor.seq}: the log was truncated`);
  }
  throw corrupt(`audit log ${file}: its first line is entry ${later.seq}, not 0, and the head anchor's entry ${anchor.seq} was not reached: lines were deleted`);
}

// ---------------------------------------------------------------- full verification

export interface AuditProblem {
  /** 1-based line number in audit.log (0: the anchor file itself). */
  line: number;
  problem: string;
}

export interface AuditVerifyResult {
  ok: boolean;
  /** Lines that are audit entries (well-formed, whatever their hash). */
  entries: number;
  /** The first problems, in file order (at most MAX_PROBLEMS, then a count of the rest). */
  problems: AuditProblem[];
  /** Notes that do not make the log invalid (an unterminated last line after a crash, a lagging anchor). */
  warnings: string[];
  /** The log's last entry in chain order ({-1, zeros} for an empty log). */
  head: AuditHead;
  /** The anchor file's content, when readable. */
  anchor: AuditHead | null;
}

const MAX_PROBLEMS = 100;

const seqRange = (a: number, b: number): string => (a === b ? `entry ${a}` : `entries ${a}–${b}`);

/**
 * Reads the whole log: recomputes every hash, checks the canonical form, seq continuity, prev
 * links and the head anchor (and, with `expect`, an externally kept `<seq>:<hash>`).
 */
export async function verifyAuditLog(dir: string, opts: { expect?: AuditHead } = {}): Promise<AuditVerifyResult> {
  const file = path.join(dir, AUDIT_LOG_FILE);
  // The anchor first: a running Vigil writes it only after the log, so it is never ahead of what we read.
  const anchorState = await readAnchor(dir);
  const anchor = anchorState.kind === "ok" ? anchorState.head : null;

  const problems: AuditProblem[] = [];
  const warnings: string[] = [];
  let extra = 0;
  const problem = (line: number, text: string): void => {
    if (problems.length < MAX_PROBLEMS) problems.push({ line, problem: text });
    else extra++;
  };

  let entries = 0;
  let maxSeq = -1;
  let linkHash = ZERO_HASH;
  let linkLine = 0;
  let lineNo = 0;
  const found = new Map<number, { hash: string; line: number }>(); // seqs of the anchors
  const targets = new Set<number>([anchor?.seq ?? -2, opts.expect?.seq ?? -2]);
  const gaps: { p: AuditProblem | null; from: number; to: number; seen: number }[] = [];

  const onLine = (text: string): void => {
    lineNo++;
    if (text === "") return problem(lineNo, "empty line (not an audit entry)");
    const p = parseLine(text);
    if (p.kind === "garbage") return problem(lineNo, `garbage: not an audit entry (${p.why}): ${JSON.stringify(text.slice(0, 60))}${text.length > 60 ? "…" : ""}`);
    const e = p.entry;
    entries++;
    if (!p.hashOk) problem(lineNo, `entry ${e.seq}: hash does not match its content: the line was edited`);
    else if (!p.canonical) problem(lineNo, `entry ${e.seq}: not in canonical form (spacing, member order or extra members changed): the line was edited`);
    if (targets.has(e.seq) && !found.has(e.seq)) found.set(e.seq, { hash: e.hash, line: lineNo });
    if (e.seq === maxSeq + 1) {
      if (e.prev !== linkHash) {
        problem(
          lineNo,
          e.seq === 0
            ? "entry 0: prev is not 64 zeros: the first line was replaced"
            : `entry ${e.seq}: prev does not match the hash of entry ${maxSeq} (line ${linkLine}): line ${linkLine} was edited and rehashed, or one of the two lines was replaced`,
        );
      }
    } else if (e.seq > maxSeq + 1) {
      const gap = { p: null as AuditProblem | null, from: maxSeq + 1, to: e.seq - 1, seen: 0 };
      const before = problems.length;
      problem(lineNo, "");
      gap.p = problems.length > before ? problems[problems.length - 1] : null;
      gaps.push(gap);
    } else {
      const gap = gaps.find((g) => e.seq >= g.from && e.seq <= g.to);
      if (gap) {
        gap.seen++;
        problem(lineNo, `entry ${e.seq} is out of order (it belongs before line ${gap.p?.line ?? "?"}): lines were reordered`);
      } else {
        problem(lineNo, `entry ${e.seq} appears again after entry ${maxSeq}: a duplicated or replayed line`);
      }
      return; // the chain continues from the highest entry
    }
    maxSeq = e.seq;
    linkHash = e.hash;
    linkLine = lineNo;
  };

  let size = 0;
  let tail = "";
  try {
    const stream = fs.createReadStream(file, { highWaterMark: 1 << 20 });
    let carry: Buffer = Buffer.alloc(0);
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      size += chunk.length;
      const data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      let start = 0;
      for (let i = data.indexOf(NL); i >= 0; i = data.indexOf(NL, start)) {
        onLine(data.subarray(start, i).toString("utf8"));
        start = i + 1;
      }
      carry = Buffer.from(data.subarray(start));
    }
    tail = carry.toString("utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
      problem(0, `cannot read ${file}: ${(e as Error).message}`);
    }
  }

  for (const g of gaps) {
    if (!g.p) continue;
    const n = g.to - g.from + 1;
    g.p.problem =
      g.seen === n
        ? `${seqRange(g.from, g.to)} missing here but found later in the file: lines were reordered`
        : g.seen > 0
          ? `${seqRange(g.from, g.to)} missing here: ${g.seen} of ${n} found later (reordered), ${n - g.seen} deleted`
          : `${seqRange(g.from, g.to)} missing before this line: ${n === 1 ? "a line was" : `${n} lines were`} deleted`;
  }

  if (tail.length > 0) {
    lineNo++;
    warnings.push(
      `line ${lineNo}: unterminated last line (${Buffer.byteLength(tail)} bytes without "\\n"): a write interrupted by a crash, never acknowledged; Vigil removes it when it next opens the log`,
    );
  }

  const afterLast = lineNo + 1;
  if (anchorState.kind === "missing") {
    if (size > 0) problem(0, `head anchor ${AUDIT_HEAD_FILE} is missing: truncation of the log cannot be ruled out (it was deleted)`);
  } else if (anchorState.kind === "invalid") {
    problem(0, `head anchor ${AUDIT_HEAD_FILE} is unreadable (${anchorState.why})`);
  } else {
    const a = anchorState.head;
    if (a.seq > maxSeq) {
      problem(
        afterLast,
        maxSeq < 0
          ? `the log is empty or missing but the head anchor records entry ${a.seq}: the log was truncated or deleted`
          : `the log ends at entry ${maxSeq} (line ${linkLine}) but the head anchor records entry ${a.seq}: ${seqRange(maxSeq + 1, a.seq)} truncated`,
      );
    } else if (a.seq >= 0) {
      const f = found.get(a.seq);
      if (!f) problem(0, `the head anchor's entry ${a.seq} is not in the log`);
      else if (f.hash !== a.hash) problem(f.line, `entry ${a.seq} does not match the head anchor's hash: the log was rewritten`);
      if (a.seq < maxSeq) warnings.push(`the head anchor is at entry ${a.seq}, the log at ${maxSeq}: normal while Vigil writes or after a crash; entries after ${a.seq} are not yet protected against truncation`);
    }
  }

  if (opts.expect) {
    const x = opts.expect;
    const f = found.get(x.seq);
    if (x.seq > maxSeq) problem(afterLast, `the log ends at entry ${maxSeq} but the external anchor names entry ${x.seq}: the log was truncated`);
    else if (!f) problem(0, `the externally anchored entry ${x.seq} is not in the log`);
    else if (f.hash !== x.hash) problem(f.line, `entry ${x.seq} does not match the external anchor ${x.seq}:${x.hash}: the log was rewritten`);
  }

  if (extra > 0) problems.push({ line: 0, problem: `… and ${extra} more problems` });
  return {
    ok: problems.length === 0,
    entries,
    problems: problems.map(({ line, problem: text }) => ({ line, problem: text })),
    warnings,
    head: { seq: maxSeq, hash: maxSeq < 0 ? ZERO_HASH : linkHash },
    anchor,
  };
}

/** Parses an external anchor `<seq>:<hash>` (as `vigil audit head` prints it). */
export function parseAnchor(text: string): AuditHead {
  const m = /^(-1|\d+):([0-9a-f]{64})$/.exec(text.trim());
  if (!m) throw new VigilError("bad_request", "INVALID_ANCHOR", `expected <seq>:<64 hex digits> as printed by \`vigil audit head\`, got ${JSON.stringify(text)}`);
  return { seq: Number(m[1]), hash: m[2] };
}
