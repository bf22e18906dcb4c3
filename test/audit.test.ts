/**
 * The hash-chained audit log: group commit and durability, reopening, tamper detection by
 * `verifyAuditLog`, refusal of a corrupt tail by `open`, and `vigil audit verify|tail|head`.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import type fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { after, describe, test } from "node:test";
import {
  ANCHOR_INTERVAL_MS,
  AUDIT_HEAD_FILE,
  AUDIT_LOG_FILE,
  AuditLog,
  type AuditEntry,
  type AuditRecord,
  entryHash,
  formatEntry,
  serializeEntry,
  verifyAuditLog,
  ZERO_HASH,
} from "../src/audit/log.js";
import { auditHead, auditTail, auditVerify } from "../src/cli/audit.js";
import { VigilError } from "../src/errors.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-audit-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
const freshDir = (): string => {
  const d = path.join(tmp, String(++counter));
  fs.mkdirSync(d);
  return d;
};

const PUBKEY = "0x" + "a99a".repeat(24);
function rec(i: number, over: Partial<AuditRecord> = {}): AuditRecord {
  return {
    client: i % 3 === 0 ? null : "lodestar",
    pubkey: PUBKEY,
    type: "ATTESTATION",
    summary: `attestation slot ${1000 + i} source ${i} target ${i + 1}`,
    signingRoot: "0x" + crypto.createHash("sha256").update(String(i)).digest("hex"),
    ruleId: "attest-any",
    outcome: "allowed",
    ...over,
  };
}

const logFile = (dir: string): string => path.join(dir, AUDIT_LOG_FILE);
const headFile = (dir: string): string => path.join(dir, AUDIT_HEAD_FILE);
const readLines = (dir: string): string[] => fs.readFileSync(logFile(dir), "utf8").split("\n").slice(0, -1);
const writeLines = (dir: string, lines: string[]): void => fs.writeFileSync(logFile(dir), lines.map((l) => l + "\n").join(""));

/** A closed log of `n` entries in a fresh directory. */
async function makeLog(n: number): Promise<string> {
  const dir = freshDir();
  const log = await AuditLog.open(dir);
  await Promise.all(Array.from({ length: n }, (_, i) => log.record(rec(i))));
  await log.close();
  return dir;
}

function isVigil(kind: string, code: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof VigilError, `expected VigilError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.kind, kind, e.message);
    return true;
  };
}

class Collect extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    this.text += chunk.toString("utf8");
    cb();
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  for (const deadline = Date.now() + ms; !cond(); await sleep(1)) assert.ok(Date.now() < deadline, "timed out");
}

describe("writing", () => {
  test("a chain of many entries round-trips and verifies", async () => {
    const dir = freshDir();
    const log = await AuditLog.open(dir);
    // bursts of various sizes, with and without optional members
    let i = 0;
    for (const burst of [1, 7, 100, 1, 392]) {
      await Promise.all(
        Array.from({ length: burst }, () => {
          const n = i++;
          return log.record(n % 10 === 0 ? rec(n, { outcome: "refused", code: "DOUBLE_VOTE", message: "a different attestation\nfor target 5", ruleId: null }) : rec(n));
        }),
      );
    }
    assert.deepEqual(log.head.seq, 500);
    await log.close();

    const lines = readLines(dir);
    assert.equal(lines.length, 501);
    let prev = ZERO_HASH;
    lines.forEach((line, k) => {
      const e = JSON.parse(line) as AuditEntry;
      assert.equal(e.seq, k);
      assert.equal(e.prev, prev);
      const { hash, ...rest } = e;
      assert.equal(entryHash(rest), hash);
      assert.equal(serializeEntry(e), line, "written in canonical form");
      assert.deepEqual(Object.keys(e).slice(0, 3), ["seq", "time", "client"]);
      assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      prev = hash;
    });
    const e10 = JSON.parse(lines[10]) as AuditEntry;
    assert.equal(e10.code, "DOUBLE_VOTE");
    assert.equal(e10.message, "a different attestation\nfor target 5");
    assert.equal(e10.ruleId, null);
    assert.equal((JSON.parse(lines[11]) as AuditEntry).code, undefined);
    assert.ok(!("code" in JSON.parse(lines[11])), "absent members are not written");

    assert.equal(fs.statSync(logFile(dir)).mode & 0o777, 0o600);
    assert.equal(fs.statSync(headFile(dir)).mode & 0o777, 0o600);
    assert.deepEqual(JSON.parse(fs.readFileSync(headFile(dir), "utf8")), { seq: 500, hash: prev });

    const r = await verifyAuditLog(dir);
    assert.deepEqual(r.problems, []);
    assert.equal(r.ok, true);
    assert.equal(r.entries, 501);
    assert.deepEqual(r.head, { seq: 500, hash: prev });
    assert.deepEqual(r.warnings, []);
  });

  test("records of one tick share one write and one fdatasync, and resolve only after it", async () => {
    const dir = freshDir();
    let syncs = 0;
    let release!: () => void;
    let gate = new Promise<void>((r) => (release = r));
    const seenAtSync: number[] = [];
    const log = await AuditLog.open(dir, {
      datasync: async (fh: fsp.FileHandle) => {
        syncs++;
        seenAtSync.push(readLines(dir).length); // the batch was written before its sync
        await gate;
        await fh.datasync();
      },
    });
    let resolved = 0;
    const first = Array.from({ length: 500 }, (_, i) => log.record(rec(i)).then(() => resolved++));
    await until(() => syncs >= 1);
    for (let k = 0; k < 5; k++) await tick();
    assert.equal(syncs, 1, "one fdatasync for the whole tick");
    assert.equal(resolved, 0, "no record resolves before its fdatasync completes");
    // records arriving while the sync is in progress, over several ticks, form the next batch
    const second: Promise<unknown>[] = [];
    for (let k = 0; k < 3; k++) {
      for (let j = 0; j < 100; j++) second.push(log.record(rec(500 + k * 100 + j)).then(() => resolved++));
      await tick();
    }
    assert.equal(syncs, 1);
    assert.equal(resolved, 0);
    const g1 = release;
    gate = new Promise<void>((r) => (release = r));
    g1();
    await Promise.all(first);
    assert.equal(readLines(dir).length >= 500, true, "on disk once resolved");
    await until(() => syncs >= 2);
    assert.equal(syncs, 2, "the second batch: one more fdatasync");
    assert.equal(resolved, 500);
    release();
    await Promise.all(second);
    assert.equal(resolved, 800);
    assert.equal(readLines(dir).length, 800);
    assert.deepEqual(seenAtSync, [500, 800]);
    assert.deepEqual({ writes: log.stats.writes, syncs: log.stats.syncs, records: log.stats.records }, { writes: 2, syncs: 2, records: 800 });
    await log.close();
    assert.equal((await verifyAuditLog(dir)).ok, true);
  });

  test("the head anchor is rewritten at most once per ANCHOR_INTERVAL_MS however often the log syncs, and is current after close", async () => {
    const dir = freshDir();
    const log = await AuditLog.open(dir);
    const t0 = performance.now();
    let n = 0;
    // one group commit every ~ANCHOR_INTERVAL_MS / 10, each done before the next (as at a low, steady load)
    while (performance.now() - t0 < 4 * ANCHOR_INTERVAL_MS) {
      await log.record(rec(n++));
      await new Promise((r) => setTimeout(r, ANCHOR_INTERVAL_MS / 10));
    }
    const elapsed = performance.now() - t0;
    const writes = log.stats.anchorWrites;
    assert.ok(log.stats.syncs >= 10, `${log.stats.syncs} group commits`);
    assert.ok(writes >= 1, "the anchor follows the log");
    assert.ok(writes <= Math.floor(elapsed / ANCHOR_INTERVAL_MS) + 1, `${writes} anchor rewrites in ${elapsed.toFixed(0)} ms for ${log.stats.syncs} group commits`);
    await log.close();
    const head = JSON.parse(fs.readFileSync(headFile(dir), "utf8")) as { seq: number; hash: string };
    assert.equal(head.seq, n - 1, "close brings the anchor up to the last entry");
    assert.equal((await verifyAuditLog(dir)).ok, true);
  });

  test("throughput: 10,000 records from one tick, and in bursts", async (t) => {
    const dir = freshDir();
    const log = await AuditLog.open(dir);
    let t0 = performance.now();
    await Promise.all(Array.from({ length: 10_000 }, (_, i) => log.record(rec(i))));
    const oneTick = performance.now() - t0;
    assert.equal(log.stats.syncs, 1);
    assert.equal(log.stats.writes, 1);

    // 100 bursts of 100, each awaited: 100 group commits
    t0 = performance.now();
    for (let b = 0; b < 100; b++) await Promise.all(Array.from({ length: 100 }, (_, i) => log.record(rec(b * 100 + i))));
    const bursts = performance.now() - t0;
    assert.equal(log.stats.syncs, 101);

    // a steady stream: one record per macrotask, 2,000 of them, not awaited individually
    t0 = performance.now();
    const stream: Promise<void>[] = [];
    for (let i = 0; i < 2000; i++) {
      stream.push(log.record(rec(i)));
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all(stream);
    const streamed = performance.now() - t0;
    const streamSyncs = log.stats.syncs - 101;
    await log.close();
    t.diagnostic(
      `10,000 in one tick: ${oneTick.toFixed(0)} ms (${Math.round(10_000 / (oneTick / 1000))}/s, 1 fdatasync); ` +
        `100 awaited bursts of 100: ${bursts.toFixed(0)} ms (${Math.round(10_000 / (bursts / 1000))}/s, 100 fdatasyncs); ` +
        `2,000 one per tick: ${streamed.toFixed(0)} ms, ${streamSyncs} fdatasyncs`,
    );
    const r = await verifyAuditLog(dir);
    assert.equal(r.ok, true);
    assert.equal(r.entries, 22_000);
  });

  test("reopening continues the chain", async () => {
    const dir = await makeLog(10);
    const before = readLines(dir);
    const log = await AuditLog.open(dir);
    assert.deepEqual(log.head.seq, 9);
    assert.equal(log.recovered, null);
    await Promise.all([log.record(rec(10)), log.record(rec(11))]);
    await log.close();
    const lines = readLines(dir);
    assert.deepEqual(lines.slice(0, 10), before, "existing lines untouched");
    const e10 = JSON.parse(lines[10]) as AuditEntry;
    assert.equal(e10.seq, 10);
    assert.equal(e10.prev, (JSON.parse(before[9]) as AuditEntry).hash);
    const r = await verifyAuditLog(dir);
    assert.equal(r.ok, true);
    assert.equal(r.entries, 12);
    // an empty log reopens too
    const empty = freshDir();
    await (await AuditLog.open(empty)).close();
    const again = await AuditLog.open(empty);
    assert.deepEqual(again.head, { seq: -1, hash: ZERO_HASH });
    await again.record(rec(0));
    await again.close();
    assert.equal((await verifyAuditLog(empty)).ok, true);
  });

  test("a failed fdatasync fails the log: that record and every later one is refused", async () => {
    const dir = freshDir();
    let fail = false;
    const log = await AuditLog.open(dir, {
      datasync: async (fh) => {
        if (fail) throw Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" });
        await fh.datasync();
      },
    });
    await log.record(rec(0));
    fail = true;
    await assert.rejects(log.record(rec(1)), isVigil("unavailable", "AUDIT_LOG_FAILED"));
    fail = false;
    await assert.rejects(log.record(rec(2)), isVigil("unavailable", "AUDIT_LOG_FAILED"));
    await log.close();
    await assert.rejects(log.record(rec(3)), isVigil("unavailable", "AUDIT_LOG_CLOSED"));
    const r = await verifyAuditLog(dir);
    assert.equal(r.entries, 1, "the unacknowledged entry was removed");
    assert.equal(r.ok, true);
  });

  test("another writer appending under a running log fails it (AUDIT_LOG_CHANGED)", async () => {
    const dir = freshDir();
    const log = await AuditLog.open(dir);
    await log.record(rec(0));
    fs.appendFileSync(logFile(dir), "{}\n");
    await assert.rejects(log.record(rec(1)), isVigil("unavailable", "AUDIT_LOG_CHANGED"));
    await log.close();
  });

  test("an invalid record is refused before it takes a seq", async () => {
    const dir = freshDir();
    const log = await AuditLog.open(dir);
    await assert.rejects(log.record(rec(0, { outcome: "maybe" as never })), isVigil("internal", "AUDIT_ENTRY_INVALID"));
    await assert.rejects(log.record(rec(0, { time: "yesterday" })), isVigil("internal", "AUDIT_ENTRY_INVALID"));
    await log.record(rec(0, { time: "2026-01-02T03:04:05.678Z" }));
    await log.close();
    const e = JSON.parse(readLines(dir)[0]) as AuditEntry;
    assert.equal(e.seq, 0);
    assert.equal(e.time, "2026-01-02T03:04:05.678Z");
  });
});

describe("tamper detection (verifyAuditLog)", () => {
  const N = 20;

  async function tampered(edit: (lines: string[], dir: string) => string[] | void): Promise<Awaited<ReturnType<typeof verifyAuditLog>>> {
    const dir = await makeLog(N);
    const lines = readLines(dir);
    const out = edit(lines, dir);
    if (out) writeLines(dir, out);
    return verifyAuditLog(dir);
  }

  const rehash = (line: string, change: (e: AuditEntry) => void): string => {
    const e = JSON.parse(line) as AuditEntry;
    change(e);
    const { hash: _old, ...rest } = e;
    return serializeEntry({ ...rest, hash: entryHash(rest) });
  };

  test("an edited field in a middle line", async () => {
    const r = await tampered((l) => {
      l[7] = l[7].replace('"outcome":"allowed"', '"outcome":"refused"');
      return l;
    });
    assert.equal(r.ok, false);
    assert.deepEqual(r.problems, [{ line: 8, problem: "entry 7: hash does not match its content: the line was edited" }]);
  });

  test("an edited and rehashed middle line breaks the next link", async () => {
    const r = await tampered((l) => {
      l[7] = rehash(l[7], (e) => (e.summary = "nothing to see"));
      return l;
    });
    assert.equal(r.ok, false);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0].line, 9);
    assert.match(r.problems[0].problem, /entry 8: prev does not match the hash of entry 7 \(line 8\)/);
  });

  test("a spacing-only edit (non-canonical line)", async () => {
    const r = await tampered((l) => {
      l[3] = l[3].replace('"seq":3,', '"seq": 3,');
      return l;
    });
    assert.deepEqual(r.problems, [{ line: 4, problem: "entry 3: not in canonical form (spacing, member order or extra members changed): the line was edited" }]);
  });

  test("a deleted middle line", async () => {
    const r = await tampered((l) => [...l.slice(0, 7), ...l.slice(8)]);
    assert.equal(r.ok, false);
    assert.deepEqual(r.problems, [{ line: 8, problem: "entry 7 missing before this line: a line was deleted" }]);
    assert.equal(r.entries, N - 1);
  });

  test("several deleted lines, also at the start", async () => {
    const r = await tampered((l) => [...l.slice(2, 7), ...l.slice(10)]);
    assert.deepEqual(r.problems, [
      { line: 1, problem: "entries 0–1 missing before this line: 2 lines were deleted" },
      { line: 6, problem: "entries 7–9 missing before this line: 3 lines were deleted" },
    ]);
  });

  test("two swapped lines", async () => {
    const r = await tampered((l) => {
      [l[5], l[6]] = [l[6], l[5]];
      return l;
    });
    assert.equal(r.ok, false);
    assert.deepEqual(r.problems, [
      { line: 6, problem: "entry 5 missing here but found later in the file: lines were reordered" },
      { line: 7, problem: "entry 5 is out of order (it belongs before line 6): lines were reordered" },
    ]);
  });

  test("a duplicated (replayed) line", async () => {
    const r = await tampered((l) => [...l.slice(0, 12), l[4], ...l.slice(12)]);
    assert.deepEqual(r.problems, [{ line: 13, problem: "entry 4 appears again after entry 11: a duplicated or replayed line" }]);
  });

  test("truncated last lines", async () => {
    const r = await tampered((l) => l.slice(0, N - 3));
    assert.equal(r.ok, false);
    assert.deepEqual(r.problems, [{ line: N - 2, problem: `the log ends at entry ${N - 4} (line ${N - 3}) but the head anchor records entry ${N - 1}: entries ${N - 3}–${N - 1} truncated` }]);
  });

  test("the last line cut in the middle", async () => {
    const r = await tampered((_l, dir) => {
      const size = fs.statSync(logFile(dir)).size;
      fs.truncateSync(logFile(dir), size - 40);
    });
    assert.equal(r.ok, false);
    assert.deepEqual(r.problems, [{ line: N + 1, problem: `the log ends at entry ${N - 2} (line ${N - 1}) but the head anchor records entry ${N - 1}: entry ${N - 1} truncated` }]);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], /^line 20: unterminated last line/);
  });

  test("the whole log deleted or emptied", async () => {
    const r = await tampered((_l, dir) => fs.rmSync(logFile(dir)));
    assert.deepEqual(r.problems, [{ line: 1, problem: `the log is empty or missing but the head anchor records entry ${N - 1}: the log was truncated or deleted` }]);
  });

  test("appended garbage", async () => {
    const r = await tampered((l) => [...l, "this is not json"]);
    assert.equal(r.ok, false);
    assert.deepEqual(r.problems, [{ line: N + 1, problem: 'garbage: not an audit entry (not JSON): "this is not json"' }]);
    const r2 = await tampered((l) => [...l.slice(0, 5), '{"seq":5}', ...l.slice(5)]);
    assert.deepEqual(r2.problems, [{ line: 6, problem: 'garbage: not an audit entry (time is not an ISO-8601 UTC time with milliseconds): "{\\"seq\\":5}"' }]);
  });

  test("a deleted anchor", async () => {
    const r = await tampered((_l, dir) => fs.rmSync(headFile(dir)));
    assert.equal(r.ok, false);
    assert.deepEqual(r.problems, [{ line: 0, problem: "head anchor audit.head is missing: truncation of the log cannot be ruled out (it was deleted)" }]);
  });

  test("a rewritten log with a consistent anchor passes locally but not against an external anchor", async () => {
    const dir = await makeLog(N);
    const external = (await verifyAuditLog(dir)).head;
    const lines = readLines(dir);
    // rewrite from entry 12 on, recomputing every hash, and drop the last 4 entries; fix the anchor
    let prev = (JSON.parse(lines[11]) as AuditEntry).hash;
    const forged = lines.slice(0, 12);
    for (let k = 12; k < N - 4; k++) {
      const line = rehash(lines[k], (e) => {
        e.prev = prev;
        e.summary = "forged";
      });
      forged.push(line);
      prev = (JSON.parse(line) as AuditEntry).hash;
    }
    writeLines(dir, forged);
    fs.writeFileSync(headFile(dir), JSON.stringify({ seq: N - 5, hash: prev }) + "\n");
    assert.equal((await verifyAuditLog(dir)).ok, true, "the documented limit: a consistent rewrite passes the local checks");
    const r = await verifyAuditLog(dir, { expect: external });
    assert.equal(r.ok, false);
    assert.deepEqual(r.problems, [{ line: N - 3, problem: `the log ends at entry ${N - 5} but the external anchor names entry ${N - 1}: the log was truncated` }]);
    const mid = await verifyAuditLog(dir, { expect: { seq: 12, hash: (JSON.parse(lines[12]) as AuditEntry).hash } });
    assert.equal(mid.problems.length, 1);
    assert.match(mid.problems[0].problem, /^entry 12 does not match the external anchor/);
    assert.equal(mid.problems[0].line, 13);
  });
});

describe("open refuses a corrupt tail", () => {
  async function refuses(edit: (dir: string, lines: string[]) => void, pattern: RegExp): Promise<void> {
    const dir = await makeLog(10);
    edit(dir, readLines(dir));
    await assert.rejects(AuditLog.open(dir), (e: unknown) => {
      isVigil("unavailable", "AUDIT_LOG_CORRUPT")(e);
      assert.match((e as Error).message, pattern);
      return true;
    });
  }

  test("garbage after the last entry", () => refuses((dir) => fs.appendFileSync(logFile(dir), "garbage\n"), /the last line is not an audit entry/));
  test("an edited last line", () =>
    refuses((dir, l) => writeLines(dir, [...l.slice(0, 9), l[9].replace("attest-any", "attest-all")]), /entry 9 \(the last line\) was edited/));
  test("dropped last lines", () => refuses((dir, l) => writeLines(dir, l.slice(0, 8)), /ends at entry 7 but its head anchor records entry 9: the log was truncated/));
  test("an emptied log", () => refuses((dir) => fs.writeFileSync(logFile(dir), ""), /records entry 9: the log was truncated/));
  test("a deleted anchor", () => refuses((dir) => fs.rmSync(headFile(dir)), /head anchor .* is missing/));
  test("an anchor that disagrees", () =>
    refuses((dir) => fs.writeFileSync(headFile(dir), JSON.stringify({ seq: 9, hash: "ab".repeat(32) })), /entry 9 does not match its head anchor/));
  test("a deleted line between the anchor and the end", () =>
    refuses((dir, l) => {
      writeLines(dir, [...l.slice(0, 6), ...l.slice(7)]);
      fs.writeFileSync(headFile(dir), JSON.stringify({ seq: 4, hash: (JSON.parse(l[4]) as AuditEntry).hash }));
    }, /entry 7 does not follow the line before it \(entry 5\)/));
  test("a torn last line that the anchor covers", () =>
    refuses((dir) => fs.truncateSync(logFile(dir), fs.statSync(logFile(dir)).size - 10), /ends at entry 8 but its head anchor records entry 9/));

  test("after a crash: an unterminated last line beyond the anchor is removed, a lagging anchor caught up", async () => {
    const dir = await makeLog(10);
    const lines = readLines(dir);
    // a crash after entry 9's batch was synced but before the anchor moved past entry 7,
    // in the middle of writing the next batch
    fs.writeFileSync(headFile(dir), JSON.stringify({ seq: 7, hash: (JSON.parse(lines[7]) as AuditEntry).hash }));
    fs.appendFileSync(logFile(dir), '{"seq":10,"time":"2026-01-01T00:00:00.0');
    const log = await AuditLog.open(dir);
    assert.match(log.recovered ?? "", /removed an unterminated last line of 39 bytes/);
    assert.deepEqual(log.head.seq, 9);
    assert.deepEqual(JSON.parse(fs.readFileSync(headFile(dir), "utf8")), { seq: 9, hash: (JSON.parse(lines[9]) as AuditEntry).hash });
    await log.record(rec(10));
    await log.close();
    const r = await verifyAuditLog(dir);
    assert.equal(r.ok, true, JSON.stringify(r.problems));
    assert.equal(r.entries, 11);
  });

  test("after a crash before the first anchor update: the whole chain is checked from entry 0", async () => {
    const dir = await makeLog(5);
    fs.writeFileSync(headFile(dir), JSON.stringify({ seq: -1, hash: ZERO_HASH }));
    const log = await AuditLog.open(dir);
    assert.equal(log.head.seq, 4);
    await log.close();
    const bad = await makeLog(5);
    writeLines(bad, readLines(bad).slice(1));
    fs.writeFileSync(headFile(bad), JSON.stringify({ seq: -1, hash: ZERO_HASH }));
    await assert.rejects(AuditLog.open(bad), isVigil("unavailable", "AUDIT_LOG_CORRUPT"));
  });
});

describe("vigil audit verify | head | tail", () => {
  test("formatEntry: one readable line", () => {
    const line = formatEntry({
      seq: 3,
      time: "2026-01-01T00:00:00.000Z",
      client: "teku-1",
      pubkey: PUBKEY,
      type: "BLOCK_V2",
      summary: "block slot 123\nproposer 7",
      signingRoot: "0x" + "11".repeat(32),
      ruleId: "no-fee-recipient-change",
      outcome: "refused",
      code: "POLICY_DENIED",
      message: "fee recipient 0xdead… is not allowed",
      prev: ZERO_HASH,
      hash: ZERO_HASH,
    });
    assert.equal(
      line,
      "2026-01-01T00:00:00.000Z  REFUSED            rule=no-fee-recipient-change  client=teku-1  BLOCK_V2  0xa99aa99a…a99a  block slot 123 proposer 7  [POLICY_DENIED: fee recipient 0xdead… is not allowed]",
    );
    assert.ok(!line.includes("\n"));
  });

  test("verify prints OK or the problems and sets the exit code; head prints <seq>:<hash>", async () => {
    const dir = await makeLog(5);
    const out = new Collect();
    const saved = process.exitCode;
    try {
      assert.equal(await auditVerify({ dataDir: dir, out }), true);
      assert.match(out.text, /: OK, 5 entries, head 4:[0-9a-f]{64}\n$/);
      assert.equal(process.exitCode, saved);

      const headOut = new Collect();
      const head = await auditHead({ dataDir: dir, out: headOut });
      assert.equal(headOut.text, head + "\n");
      assert.equal(head, `4:${(await verifyAuditLog(dir)).head.hash}`);
      const ok = new Collect();
      assert.equal(await auditVerify({ dataDir: dir, out: ok, anchor: head }), true);
      assert.match(ok.text, /external anchor 4 matches/);

      const l = readLines(dir);
      writeLines(dir, [l[0], l[2], l[3], l[4]]);
      const bad = new Collect();
      assert.equal(await auditVerify({ dataDir: dir, out: bad }), false);
      assert.equal(process.exitCode, 1);
      assert.match(bad.text, /NOT OK, 1 problem \(4 entries\)\n {2}line 2: entry 1 missing before this line: a line was deleted\n/);
      await assert.rejects(auditVerify({ dataDir: dir, out: bad, anchor: "nope" }), isVigil("bad_request", "INVALID_ANCHOR"));
      // Nothing to verify (a mistyped --data-dir, or the log deleted with its anchor) is not OK.
      process.exitCode = 0;
      const empty = new Collect();
      assert.equal(await auditVerify({ dataDir: freshDir(), out: empty }), false);
      assert.equal(process.exitCode, 1);
      assert.match(empty.text, /NOT OK, no audit log and no anchor/);
    } finally {
      process.exitCode = saved;
    }
    const none = new Collect();
    assert.equal(await auditHead({ dataDir: freshDir(), out: none }), `-1:${ZERO_HASH}`);
  });

  test("tail prints the last N entries readably", async () => {
    const dir = await makeLog(30);
    const out = new Collect();
    await auditTail({ dataDir: dir, lines: 3, out });
    const lines = out.text.split("\n").slice(0, -1);
    assert.equal(lines.length, 3);
    assert.deepEqual(
      lines.map((x) => /attestation slot (\d+)/.exec(x)?.[1]),
      ["1027", "1028", "1029"],
    );
    assert.match(lines[0], /^\d{4}-\d\d-\d\dT\S+Z {2}ALLOWED {12}rule=attest-any {2}client=\S+ {2}ATTESTATION {2}0xa99aa99a…a99a {2}attestation slot 1027/);
    const all = new Collect();
    await auditTail({ dataDir: dir, out: all });
    assert.equal(all.text.split("\n").length - 1, 20, "20 by default");
    const empty = new Collect();
    await auditTail({ dataDir: freshDir(), out: empty });
    assert.equal(empty.text, "");
  });

  test("tail --follow prints entries appended later, until stopped", async () => {
    const dir = await makeLog(2);
    const out = new Collect();
    const ac = new AbortController();
    const following = auditTail({ dataDir: dir, lines: 1, follow: true, out, signal: ac.signal, pollMs: 50 });
    const waitFor = async (n: number): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (out.text.split("\n").length - 1 < n) {
        assert.ok(Date.now() < deadline, `timed out waiting for ${n} lines; got:\n${out.text}`);
        await sleep(10);
      }
    };
    await waitFor(1);
    const log = await AuditLog.open(dir);
    await Promise.all([log.record(rec(2)), log.record(rec(3))]);
    await waitFor(3);
    await log.record(rec(4, { outcome: "approval_required", ruleId: "exits-need-approval", type: "VOLUNTARY_EXIT", summary: "exit validator 7" }));
    await waitFor(4);
    await log.close();
    ac.abort();
    await following;
    const lines = out.text.split("\n").slice(0, -1);
    assert.equal(lines.length, 4);
    assert.match(lines[0], /attestation slot 1001/);
    assert.match(lines[1], /attestation slot 1002/);
    assert.match(lines[2], /attestation slot 1003/);
    assert.match(lines[3], /APPROVAL_REQUIRED {2}rule=exits-need-approval .* VOLUNTARY_EXIT .* exit validator 7$/);
  });
});
