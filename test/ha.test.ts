import "./helpers/preset-minimal.js";
/**
 * High availability on PostgreSQL, against real `vigil start` processes: tests that try hard to break it.
 *
 * 1. Two, then three instances (no HA group) on one schema race conflicting requests for the same keys
 *    (double votes, surrounding/surrounded pairs, double blocks, each version sent to another instance
 *    at the same moment): exactly one version of each conflicting set is signed, the others are 412.
 * 2. SIGKILL (of the HTTP process, the vault process or both) at random moments under racing load,
 *    several rounds: every signature a client received is in the exported history; re-sending what was
 *    cut off signs exactly one version of each conflicting set.
 * 3. A private PostgreSQL crashed (pg_ctl stop -m immediate) and restarted under load, twice: 503 with a
 *    database code (never a signature) while it is down, signing again by itself once it is back.
 * 4. Active/standby with fencing: the active instance's vault process frozen (SIGSTOP) with requests in
 *    flight and more sent to it; the standby takes over and signs conflicting versions of them; the
 *    frozen vault, resumed, signs none of them and becomes standby.
 * 5. Moving validators from group A to group B: high watermark on A, export, import into B.
 *
 * Every case checks, for the signatures clients received (verified against the signing root of what was
 * asked) and for the history `vigil slashing export` gives: zero slashable pairs; every received
 * signature is in the history; the history holds only messages that were asked for.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { PublicKey, Signature, verify } from "@chainsafe/blst";
import { resolveNetwork } from "../src/config/networks.js";
import { decodeSignRequest } from "../src/eth2/decode.js";
import { computeRequestSigningRoot } from "../src/eth2/signing-root.js";
import type { Interchange, InterchangeValidator } from "../src/slashing/types.js";
import { exited, killVigils, runVigil, spawnVigil, stopVigil, writeKeystores, type VigilProcess, type WrittenKeystores } from "./helpers/cli.js";
import { interopKeys, sampleRequestsDir } from "./helpers/keys.js";
import { PG_URL, PgScratch } from "./helpers/pg.js";
import { PgServer } from "./helpers/pg-server.js";
import pg from "pg";
import { Lease } from "../src/ha/lease.js";
import { tempDir } from "./helpers/server.js";
import { describeViolations, findSlashable } from "./helpers/slashable.js";

// ---------------------------------------------------------------------------------------------
// Set-up, clean-up
// ---------------------------------------------------------------------------------------------

const tmp = tempDir("vigil-ha-");
const scratch = new PgScratch("ha");
let ks: WrittenKeystores;
let KEYS: string[] = [];
let privatePg: PgServer | null = null;
/** Vault processes seen (pids), SIGKILLed at the end if still there (a SIGSTOPped one never exits alone). */
const vaultPids = new Set<number>();

/** A small seeded PRNG (mulberry32): a failing run can be replayed with VIGIL_HA_SEED. */
const SEED = Number(process.env.VIGIL_HA_SEED ?? Math.floor(Math.random() * 2 ** 31));
let prngState = SEED >>> 0;
function random(): number {
  prngState = (prngState + 0x6d2b79f5) >>> 0;
  let t = prngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const randomInt = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = randomInt(0, i);
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const now = (): number => performance.now();

function isVault(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("child.js");
  } catch {
    return false;
  }
}
function killVaults(): void {
  for (const pid of vaultPids) {
    if (!isVault(pid)) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}
process.on("exit", killVaults);

/**
 * Interop (mock-genesis) secret key `index`: int.from_bytes(sha256(index.to_bytes(32, 'little')), 'little') mod r,
 * 32 bytes big-endian. The conformance data records keys 0..2; key 3 is derived the same way.
 */
function interopSecret(index: number): Uint8Array {
  const r = 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001n;
  const le = Buffer.alloc(32);
  le.writeUInt32LE(index, 0);
  const digest = createHash("sha256").update(le).digest();
  const sk = BigInt("0x" + Buffer.from(digest).reverse().toString("hex")) % r;
  return Uint8Array.from(Buffer.from(sk.toString(16).padStart(64, "0"), "hex"));
}

before(async () => {
  await scratch.ping();
  const recorded = interopKeys();
  recorded.forEach((k, i) => assert.deepEqual(interopSecret(i), k.secret, `interop key ${i}`));
  const secrets = [0, 1, 2, 3].map(interopSecret);
  ks = await writeKeystores(path.join(tmp, "keystores"), secrets, "ha test password");
  KEYS = ks.pubkeys;
  assert.equal(new Set(KEYS).size, 4);
});

after(async () => {
  killVaults();
  await killVigils();
  await privatePg?.destroy();
  await scratch.cleanup();
  fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Messages and their signing roots
// ---------------------------------------------------------------------------------------------

const sample = (file: string): any => JSON.parse(fs.readFileSync(path.join(sampleRequestsDir, file), "utf8"));
const ATTESTATION = sample("ATTESTATION.json");
const BLOCK = sample("BLOCK_V2.BELLATRIX.json");
const GVR_HEX: string = ATTESTATION.fork_info.genesis_validators_root;
const bytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/^0x/, ""), "hex"));
const hex = (b: Uint8Array): string => "0x" + Buffer.from(b).toString("hex");
const NETWORK = resolveNetwork("minimal");
const GVR = bytes(GVR_HEX);

/** A distinct 32-byte root per tag (beacon_block_root / body_root of one version of a message). */
const root32 = (tag: string): string => "0x" + createHash("sha256").update(tag).digest("hex");

type Att = { kind: "att"; pubkey: string; source: number; target: number; bbr: string };
type Blk = { kind: "block"; pubkey: string; slot: number; body: string };
type Msg = Att | Blk;

const att = (pubkey: string, source: number, target: number, tag: string): Att => ({ kind: "att", pubkey, source, target, bbr: root32(tag) });
const blk = (pubkey: string, slot: number, tag: string): Blk => ({ kind: "block", pubkey, slot, body: root32(tag) });
/** The other version of `m`: same slot / epochs, another root. */
const conflicting = (m: Msg, tag: string): Msg => (m.kind === "att" ? { ...m, bbr: root32(tag) } : { ...m, body: root32(tag) });
const describe = (m: Msg): string =>
  m.kind === "att" ? `${m.pubkey.slice(0, 10)}… att ${m.source}→${m.target} (${m.bbr.slice(0, 10)})` : `${m.pubkey.slice(0, 10)}… block ${m.slot} (${m.body.slice(0, 10)})`;

/** The request body of `m`: Lodestar's devnet samples with the fields changed (and its signingRoot replaced). */
function bodyOf(m: Msg): Record<string, unknown> {
  if (m.kind === "att") {
    const body = structuredClone(ATTESTATION);
    delete body.signingRoot;
    const a = body.attestation;
    a.slot = String(m.target * 8); // minimal preset: 8 slots per epoch
    a.beacon_block_root = m.bbr;
    a.source.epoch = String(m.source);
    a.target.epoch = String(m.target);
    return body;
  }
  if (m.slot < 8) throw new Error("BELLATRIX blocks of this devnet start at slot 8");
  const body = structuredClone(BLOCK);
  delete body.signingRoot;
  body.beacon_block.block_header.slot = String(m.slot);
  body.beacon_block.block_header.body_root = m.body;
  return body;
}

const rootCache = new Map<string, string>();
const msgKey = (m: Msg): string => (m.kind === "att" ? `a/${m.pubkey}/${m.source}/${m.target}/${m.bbr}` : `b/${m.pubkey}/${m.slot}/${m.body}`);
/** The signing root of `m`, computed here; the request carries it, so Vigil checks that it computes the same. */
function rootOf(m: Msg): string {
  const k = msgKey(m);
  let r = rootCache.get(k);
  if (r === undefined) {
    r = hex(computeRequestSigningRoot(decodeSignRequest(bodyOf(m), NETWORK.slotsPerEpoch), NETWORK, GVR));
    rootCache.set(k, r);
  }
  return r;
}
/** Signing roots of every message ever sent (the history may hold nothing else). */
const sentRoots = new Set<string>();

// ---------------------------------------------------------------------------------------------
// Instances and requests
// ---------------------------------------------------------------------------------------------

interface Inst {
  name: string;
  vigil: VigilProcess;
  url: string;
  args: string[];
}

async function startInst(name: string, db: { url: string; schema: string }, extra: string[] = []): Promise<Inst> {
  const args = [
    "--network", "minimal",
    "--keystores", ks.dir,
    "--password-file", ks.passwordFile,
    "--data-dir", path.join(tmp, name),
    "--db-url", db.url,
    "--db-schema", db.schema,
    "--log-level", "warn",
    ...extra,
  ];
  return launchInst(name, args);
}
async function launchInst(name: string, args: string[]): Promise<Inst> {
  const vigil = await spawnVigil(args, { env: { VIGIL_SIGNING_THREADS: "1" }, timeoutMs: 60_000 });
  const inst = { name, vigil, url: vigil.url, args };
  vaultPid(inst); // remembered for the clean-up
  return inst;
}
const restartInst = (inst: Inst): Promise<Inst> => launchInst(inst.name, inst.args);

/** The vault process of an instance: the child of its `vigil start` process. */
function vaultPid(inst: Inst): number {
  const pid = inst.vigil.proc.pid!;
  const children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  const vault = children.find(isVault);
  if (vault === undefined) throw new Error(`no vault process under ${pid} (children: ${children.join(", ")})`);
  vaultPids.add(vault);
  return vault;
}

async function stopInsts(insts: Inst[]): Promise<void> {
  await Promise.all(insts.map((i) => stopVigil(i.vigil.proc, "SIGTERM", 10_000)));
}

interface Result {
  msg: Msg;
  inst: string;
  /** HTTP status, or "error" when no answer came (connection refused or cut). */
  status: number | "error";
  code?: string;
  signature?: string;
  error?: string;
  sentAt: number;
  doneAt: number;
}

async function getJson(url: string, timeoutMs = 5000): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

/**
 * Sign `m` on `inst`; the result goes into `sink`. A 200 must carry a signature that verifies against
 * the signing root of `m` for its key (else the test fails at once).
 */
async function send(inst: Inst, m: Msg, sink: Result[], timeoutMs = 90_000): Promise<Result> {
  const sentAt = now();
  const root = rootOf(m);
  sentRoots.add(root);
  const body = { ...bodyOf(m), signingRoot: root };
  let r: Result;
  try {
    const res = await fetch(`${inst.url}/api/v1/eth2/sign/${m.pubkey}`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    r = { msg: m, inst: inst.name, status: res.status, code: json?.code, signature: json?.signature, sentAt, doneAt: now() };
    if (res.status === 200) {
      assert.match(r.signature ?? "", /^0x[0-9a-f]{192}$/, `200 without a signature: ${text}`);
      assert.ok(
        verify(bytes(root), PublicKey.fromBytes(bytes(m.pubkey)), Signature.fromBytes(bytes(r.signature!))),
        `${inst.name} signed something else than ${describe(m)}`,
      );
    } else {
      assert.ok(!/0x[0-9a-f]{192}/.test(text), `a signature in a ${res.status} answer: ${text}`);
    }
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    r = { msg: m, inst: inst.name, status: "error", error: (e as Error).message, sentAt, doneAt: now() };
  }
  sink.push(r);
  return r;
}

const signed = (rs: Result[]): Result[] => rs.filter((r) => r.status === 200);
const tally = (rs: Result[]): string => {
  const c = new Map<string, number>();
  for (const r of rs) {
    const k = r.status === 200 ? "200" : `${r.status}${r.code ? " " + r.code : ""}`;
    c.set(k, (c.get(k) ?? 0) + 1);
  }
  return [...c].sort().map(([k, n]) => `${k}: ${n}`).join(", ");
};

/** The signatures received, as an interchange document (roots computed here). */
function receivedDoc(rs: Result[]): Pick<Interchange, "data"> {
  const by = new Map<string, InterchangeValidator>();
  for (const r of signed(rs)) {
    const m = r.msg;
    let v = by.get(m.pubkey);
    if (!v) by.set(m.pubkey, (v = { pubkey: m.pubkey, signed_blocks: [], signed_attestations: [] }));
    if (m.kind === "att") v.signed_attestations.push({ source_epoch: String(m.source), target_epoch: String(m.target), signing_root: rootOf(m) });
    else v.signed_blocks.push({ slot: String(m.slot), signing_root: rootOf(m) });
  }
  return { data: [...by.values()] };
}

/** `vigil slashing export` of one schema. */
async function exportHistory(dbUrl: string, schema: string): Promise<Interchange> {
  const file = path.join(tmp, `export-${schema}-${Date.now()}-${randomInt(0, 1e9)}.json`);
  const r = await runVigil(["slashing", "export", file, "--db-url", dbUrl, "--db-schema", schema], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `export failed: ${r.stderr}`);
  const doc = JSON.parse(fs.readFileSync(file, "utf8")) as Interchange;
  fs.rmSync(file);
  assert.equal(doc.metadata.genesis_validators_root, GVR_HEX, "the database is bound to the devnet's genesis validators root");
  return doc;
}

const recordKeys = (doc: Pick<Interchange, "data">): Set<string> => {
  const out = new Set<string>();
  for (const v of doc.data) {
    for (const b of v.signed_blocks) out.add(`${v.pubkey}/b/${b.slot}/${b.signing_root}`);
    for (const a of v.signed_attestations) out.add(`${v.pubkey}/a/${a.source_epoch}/${a.target_epoch}/${a.signing_root}`);
  }
  return out;
};
const recordKey = (m: Msg): string => (m.kind === "att" ? `${m.pubkey}/a/${m.source}/${m.target}/${rootOf(m)}` : `${m.pubkey}/b/${m.slot}/${rootOf(m)}`);

/**
 * The invariants of every case: nothing slashable among the signatures received, nor in the history;
 * every received signature recorded; nothing recorded that was not asked for.
 */
function checkSafety(label: string, results: Result[], history: Pick<Interchange, "data">): { received: number; recorded: number } {
  const got = signed(results);
  const vr = findSlashable(receivedDoc(results));
  assert.equal(vr.length, 0, `${label}: clients received slashable signatures:\n${describeViolations(vr)}`);
  const vh = findSlashable(history);
  assert.equal(vh.length, 0, `${label}: the history is slashable:\n${describeViolations(vh)}`);
  const recorded = recordKeys(history);
  const missing = got.filter((r) => !recorded.has(recordKey(r.msg)));
  assert.equal(missing.length, 0, `${label}: signatures received but not in the history: ${missing.slice(0, 5).map((r) => `${r.inst}: ${describe(r.msg)}`).join("; ")}`);
  for (const v of history.data) {
    for (const b of v.signed_blocks) assert.ok(b.signing_root && sentRoots.has(b.signing_root), `${label}: history has block ${b.slot} never asked for`);
    for (const a of v.signed_attestations) {
      assert.ok(a.signing_root && sentRoots.has(a.signing_root), `${label}: history has ${a.source_epoch}→${a.target_epoch} never asked for`);
    }
  }
  return { received: got.length, recorded: recorded.size };
}

// ---------------------------------------------------------------------------------------------
// Conflicting sets
// ---------------------------------------------------------------------------------------------

interface Group {
  /** conflict: at most one version may be signed; identical: the same message everywhere, all signed alike. */
  kind: "conflict" | "identical";
  msgs: Msg[];
  /** The refusal codes expected for the losers. */
  codes: string[];
}

/**
 * Warm-ups and conflicting sets for every key, in epochs [base, base + 200) and slots [slotBase, slotBase + 100):
 * - warm-up: attestation base→base+1 and a block at slotBase (the lowest of everything here, signed first:
 *   EIP-3076's low-watermark conditions then never refuse the raced messages);
 * - double votes: `versions` attestations (t-1)→t with different beacon_block_root;
 * - surround sets: outer s→s+5 and inner s+1→s+3 (and, with 3 versions, a second inner with another root);
 * - double blocks: `versions` blocks at one slot with different body_root;
 * - identical: one attestation sent to every instance (a repeat: all signed, one signature).
 * Sets never interact: double votes span one epoch, surround sets sit 10 epochs apart above them.
 */
function conflictSets(
  tag: string,
  base: number,
  slotBase: number,
  versions: number,
  n: { doubleVotes: number; surrounds: number; blocks: number; identical: number },
): { warmups: Msg[]; groups: Group[] } {
  const warmups: Msg[] = [];
  const groups: Group[] = [];
  KEYS.forEach((pk, k) => {
    warmups.push(att(pk, base, base + 1, `${tag}/w/${k}`), blk(pk, slotBase, `${tag}/wb/${k}`));
    for (let j = 0; j < n.doubleVotes; j++) {
      const t = base + 2 + j;
      groups.push({ kind: "conflict", codes: ["DOUBLE_VOTE"], msgs: Array.from({ length: versions }, (_, v) => att(pk, t - 1, t, `${tag}/dv/${k}/${t}/${v}`)) });
    }
    const s0 = base + n.doubleVotes + 10;
    for (let j = 0; j < n.surrounds; j++) {
      const s = s0 + 10 * j;
      const msgs: Msg[] = [att(pk, s, s + 5, `${tag}/so/${k}/${s}`), att(pk, s + 1, s + 3, `${tag}/si/${k}/${s}`)];
      if (versions >= 3) msgs.push(att(pk, s + 1, s + 3, `${tag}/si2/${k}/${s}`));
      groups.push({ kind: "conflict", codes: ["SURROUNDING_VOTE", "SURROUNDED_VOTE", "DOUBLE_VOTE"], msgs: j % 2 ? msgs.reverse() : msgs });
    }
    for (let j = 0; j < n.blocks; j++) {
      const slot = slotBase + 1 + j;
      groups.push({ kind: "conflict", codes: ["DOUBLE_BLOCK_PROPOSAL"], msgs: Array.from({ length: versions }, (_, v) => blk(pk, slot, `${tag}/db/${k}/${slot}/${v}`)) });
    }
    const i0 = s0 + 10 * n.surrounds + 10;
    for (let j = 0; j < n.identical; j++) {
      const t = i0 + 2 * j;
      const m = att(pk, t - 1, t, `${tag}/id/${k}/${t}`);
      groups.push({ kind: "identical", codes: [], msgs: Array.from({ length: versions }, () => m) });
    }
    assert.ok(i0 + 2 * n.identical < base + 200 && n.blocks < 100, "sets fit their ranges");
  });
  return { warmups, groups: shuffle(groups) };
}

/** Send each version of `g` to another instance (random rotation), all at the same moment. */
function raceGroup(g: Group, insts: Inst[], sink: Result[]): Promise<Result[]> {
  const off = randomInt(0, insts.length - 1);
  return Promise.all(g.msgs.map((m, i) => send(insts[(i + off) % insts.length], m, sink)));
}

/** Race the groups, `window` of them at a time; `onDone` after each. */
async function raceGroups(groups: Group[], insts: () => Inst[], window: number, sink: Result[], onDone?: (g: Group, rs: Result[], done: number) => void): Promise<Map<Group, Result[]>> {
  const out = new Map<Group, Result[]>();
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < groups.length) {
      const g = groups[next++];
      const rs = await raceGroup(g, insts(), sink);
      out.set(g, rs);
      onDone?.(g, rs, ++done);
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  return out;
}

/** Exactly one version of a conflicting set signed, the others refused with the set's codes; identical: all signed alike. */
function assertExactlyOne(g: Group, rs: Result[], label: string): void {
  const what = `${label}: ${g.msgs.map(describe).join(" | ")} → ${rs.map((r) => `${r.inst}:${r.status}${r.code ? " " + r.code : ""}`).join(", ")}`;
  if (g.kind === "identical") {
    assert.ok(rs.every((r) => r.status === 200), what);
    assert.equal(new Set(rs.map((r) => r.signature)).size, 1, `${what}: one message, one signature`);
    return;
  }
  assert.equal(signed(rs).length, 1, `exactly one version signed: ${what}`);
  for (const r of rs) if (r.status !== 200) assert.ok(r.status === 412 && g.codes.includes(r.code ?? ""), what);
}

async function warmUp(warmups: Msg[], insts: Inst[], sink: Result[]): Promise<void> {
  for (const [i, m] of warmups.entries()) {
    const r = await send(insts[i % insts.length], m, sink);
    assert.equal(r.status, 200, `warm-up ${describe(m)}: ${r.status} ${r.code ?? r.error ?? ""}`);
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Active/active races
// ---------------------------------------------------------------------------------------------

test("active/active: 2 then 3 instances on one schema race conflicting requests; exactly one version of each set is signed", { timeout: 150_000 }, async (t) => {
  t.diagnostic(`seed ${SEED} (VIGIL_HA_SEED to replay)`);
  const db = { url: PG_URL, schema: scratch.schema() };
  const results: Result[] = [];
  const insts: Inst[] = [];
  t.after(() => stopInsts(insts));

  let started = Date.now();
  // Started together: the migrations run once, under the advisory lock.
  insts.push(...(await Promise.all([startInst("race-0", db), startInst("race-1", db)])));
  t.diagnostic(`2 instances up in ${Date.now() - started} ms`);

  for (const phase of [
    { n: 2, base: 100, counts: { doubleVotes: 24, surrounds: 8, blocks: 12, identical: 3 } },
    { n: 3, base: 1000, counts: { doubleVotes: 20, surrounds: 6, blocks: 10, identical: 3 } },
  ]) {
    if (insts.length < phase.n) insts.push(await startInst(`race-${insts.length}`, db));
    started = Date.now();
    const { warmups, groups } = conflictSets(`race${phase.n}`, phase.base, phase.base * 8, phase.n, phase.counts);
    await warmUp(warmups, insts, results);
    const phaseResults: Result[] = [];
    const outcomes = await raceGroups(groups, () => insts, 12, phaseResults);
    results.push(...phaseResults);
    for (const [g, rs] of outcomes) assertExactlyOne(g, rs, `${phase.n} instances`);
    const perInst = insts.map((i) => `${i.name} ${signed(phaseResults.filter((r) => r.inst === i.name)).length}`).join(", ");
    t.diagnostic(
      `${phase.n} instances: ${groups.length} sets, ${phaseResults.length} requests raced in ${Date.now() - started} ms (${tally(phaseResults)}); signed per instance: ${perInst}`,
    );
    const history = await exportHistory(db.url, db.schema);
    const s = checkSafety(`${phase.n} instances`, results, history);
    // Exactly what was signed is recorded: warm-ups, one version of each conflicting set, each identical message once.
    const expected = new Set(signed(results).map((r) => recordKey(r.msg)));
    assert.equal(s.recorded, expected.size, "the history holds exactly the signed messages");
  }
});

// ---------------------------------------------------------------------------------------------
// 2. SIGKILL under load
// ---------------------------------------------------------------------------------------------

test("SIGKILL at random moments under racing load (PostgreSQL, 2 instances, 4 rounds): every received signature is recorded, nothing slashable", { timeout: 150_000 }, async (t) => {
  const db = { url: PG_URL, schema: scratch.schema() };
  const results: Result[] = [];
  let insts: Inst[] = await Promise.all([startInst("kill-0", db), startInst("kill-1", db)]);
  t.after(() => stopInsts(insts));
  const modes = ["http", "vault", "both"] as const;

  for (let round = 0; round < 4; round++) {
    const started = Date.now();
    const base = 10_000 + 1000 * round;
    const { warmups, groups } = conflictSets(`kill${round}`, base, base * 8, 2, { doubleVotes: 10, surrounds: 4, blocks: 6, identical: 2 });
    const roundResults: Result[] = [];
    await warmUp(warmups, insts, roundResults);

    const victim = insts[randomInt(0, 1)];
    const survivor = insts.find((i) => i !== victim)!;
    const mode = modes[(round + randomInt(0, 2)) % 3];
    const victimVault = vaultPid(victim);
    const killAfter = randomInt(8, Math.floor(groups.length * 0.7));
    let killedAt = Infinity;
    const kill = (): void => {
      killedAt = now();
      if (mode !== "http") process.kill(victimVault, "SIGKILL");
      if (mode !== "vault") victim.vigil.proc.kill("SIGKILL");
    };
    let scheduled = false;
    const outcomes = await raceGroups(groups, () => insts, 12, roundResults, (_g, _rs, done) => {
      if (!scheduled && done >= killAfter) {
        scheduled = true;
        setTimeout(kill, randomInt(0, 5)); // requests in flight at every stage
      }
    });
    assert.ok(scheduled && killedAt < Infinity, "the victim was killed mid-stream");
    if (mode === "vault") victim.vigil.proc.kill("SIGKILL"); // its HTTP process exits by itself; make sure
    await exited(victim.vigil.proc);
    for (let i = 0; i < 100 && isVault(victimVault); i++) await sleep(50);
    assert.ok(!isVault(victimVault), "the victim's vault process is gone");

    // Answers: the survivor only signs or refuses; the victim too until it was killed.
    for (const r of roundResults) {
      const ok = r.status === 200 || r.status === 412;
      if (r.inst === survivor.name || r.doneAt < killedAt) assert.ok(ok, `${r.inst}: ${r.status} ${r.code ?? r.error ?? ""} for ${describe(r.msg)}`);
      else assert.ok(ok || r.status === "error" || (r.status === 503 && r.code === "VAULT_DOWN"), `${r.inst} after the kill: ${r.status} ${r.code}`);
    }
    for (const [g, rs] of outcomes) {
      if (g.kind === "conflict") assert.ok(signed(rs).length <= 1, `at most one version signed: ${g.msgs.map(describe).join(" | ")}`);
      for (const r of rs) if (r.status === 412) assert.ok(g.codes.includes(r.code!), `${r.code} for ${describe(r.msg)}`);
    }
    results.push(...roundResults);
    let history = await exportHistory(db.url, db.schema);
    checkSafety(`round ${round}`, results, history);
    const recorded = recordKeys(history);
    // The victim's requests cut off by the kill (in flight at that moment), and those of them already recorded.
    const cutOff = roundResults.filter((r) => r.inst === victim.name && r.sentAt < killedAt && r.status !== 200 && r.status !== 412);
    const receivedKeys = new Set(signed(results).map((r) => recordKey(r.msg)));
    const unanswered = cutOff.filter((r) => recorded.has(recordKey(r.msg)) && !receivedKeys.has(recordKey(r.msg)));

    // Restart the victim; re-race every set nobody received a signature for: exactly one version is signed
    // now (the one recorded but never answered, if any, as a repeat).
    const restarted = await restartInst(victim);
    insts = insts.map((i) => (i === victim ? restarted : i));
    const unresolved = [...outcomes].filter(([g, rs]) => signed(rs).length === 0).map(([g]) => g);
    const retryResults: Result[] = [];
    const retried = await raceGroups(unresolved, () => insts, 8, retryResults);
    for (const [g, rs] of retried) assertExactlyOne(g, rs, `round ${round} retry`);
    results.push(...retryResults);
    history = await exportHistory(db.url, db.schema);
    checkSafety(`round ${round} after the retries`, results, history);
    t.diagnostic(
      `round ${round}: killed ${victim.name} (${mode}) after ${killAfter}/${groups.length} sets; ${tally(roundResults)}; ` +
        `${cutOff.length} cut off in flight, ${unanswered.length} of them recorded but never answered; ${unresolved.length} sets re-raced after the restart (${tally(retryResults)}); ${Date.now() - started} ms`,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// 3. The database crashes and comes back
// ---------------------------------------------------------------------------------------------

test("PostgreSQL crashed and restarted under load (private server, twice): 503 naming the database while down, never a signature; signing resumes by itself", { timeout: 150_000 }, async (t) => {
  let started = Date.now();
  privatePg = await PgServer.create();
  t.diagnostic(`private PostgreSQL (initdb + start) on port ${privatePg.port} in ${Date.now() - started} ms`);
  const pgs = privatePg;
  const db = { url: pgs.url, schema: "vigil_ha" };
  const insts = await Promise.all([startInst("crash-0", db), startInst("crash-1", db)]);
  t.after(() => stopInsts(insts));

  const results: Result[] = [];
  const base = 100;
  const slotBase = 800;
  await warmUp(
    KEYS.flatMap((pk, k) => [att(pk, base, base + 1, `crash/w/${k}`), blk(pk, slotBase, `crash/wb/${k}`)]),
    insts,
    results,
  );

  // Load: per key, one-epoch attestations and blocks at ever higher targets / slots (never surrounding each
  // other); a third of them single, the others two versions raced across both instances.
  const counters = KEYS.map(() => 0);
  let seq = 0;
  const nextGroup = (): Group => {
    const k = seq % KEYS.length;
    const pk = KEYS[k];
    const c = counters[k]++;
    const kind = Math.floor(seq++ / KEYS.length) % 3;
    const a = att(pk, base + 1 + c, base + 2 + c, `crash/a/${k}/${c}`);
    if (kind === 0) return { kind: "conflict", codes: [], msgs: [a] };
    if (kind === 1) return { kind: "conflict", codes: ["DOUBLE_VOTE"], msgs: [a, conflicting(a, `crash/a2/${k}/${c}`)] };
    const b = blk(pk, slotBase + 1 + c, `crash/b/${k}/${c}`);
    return { kind: "conflict", codes: ["DOUBLE_BLOCK_PROPOSAL"], msgs: [b, conflicting(b, `crash/b2/${k}/${c}`)] };
  };
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      const g = nextGroup();
      const rs = await raceGroup(g, insts, results);
      assert.ok(signed(rs).length <= 1, `two versions signed: ${g.msgs.map(describe).join(" | ")}`);
      if (rs.some((r) => r.status === 503)) await sleep(50); // the database is down: do not spin
    }
  };
  const load = Promise.all(Array.from({ length: 6 }, worker));
  load.catch(() => undefined); // awaited below; a failure must not surface as an unhandled rejection first

  const cycles: string[] = [];
  const downWindows: { from: number; to: number }[] = [];
  try {
    for (let cycle = 0; cycle < 2; cycle++) {
      await sleep(1500 + randomInt(0, 500));
      const before = signed(results).length;
      assert.ok(before > 0, "signing under load before the crash");
      await pgs.crash();
      const downFrom = now();
      // While it is down: health says so, and sign requests are refused by code.
      await sleep(500);
      for (const inst of insts) {
        const h = await getJson(`${inst.url}/healthcheck`);
        assert.equal(h.status, 503, `${inst.name} healthcheck while the database is down: ${h.text}`);
        assert.equal(h.json.checks.find((c: { id: string }) => c.id === "slashing-protection-db")?.status, "DOWN", h.text);
        assert.equal((await getJson(`${inst.url}/upcheck`)).status, 200);
      }
      await sleep(2500);
      const downTo = now();
      downWindows.push({ from: downFrom, to: downTo });
      await pgs.start();
      const upAt = now();
      // Back by itself: each instance signs a request sent after the restart, within 30 s.
      const recovery: number[] = [];
      for (const inst of insts) {
        const deadline = upAt + 30_000;
        let first: Result | undefined;
        while (!first && now() < deadline) {
          first = results.find((r) => r.inst === inst.name && r.status === 200 && r.sentAt >= upAt);
          if (!first) await sleep(50);
        }
        assert.ok(first, `${inst.name} signs again after the database came back:\n${inst.vigil.output().slice(-2000)}`);
        recovery.push(Math.round(first.doneAt - upAt));
        assert.equal((await getJson(`${inst.url}/healthcheck`)).status, 200, `${inst.name} healthy again`);
      }
      const during = results.filter((r) => r.sentAt >= downFrom && r.doneAt <= downTo);
      cycles.push(`cycle ${cycle}: down ${Math.round(downTo - downFrom)} ms, ${during.length} requests answered meanwhile (${tally(during)}); first signature after restart: ${recovery.join(" / ")} ms`);
    }
  } finally {
    stop = true;
    await load;
  }

  // While down (sent after the crash, answered before the restart): no signature, 503 with a database code.
  for (const w of downWindows) {
    const during = results.filter((r) => r.sentAt >= w.from && r.doneAt <= w.to);
    assert.ok(during.length > 0, "requests were answered while the database was down");
    for (const r of during) {
      assert.equal(r.status, 503, `while the database was down: ${r.inst} answered ${r.status} ${r.code ?? r.error ?? ""} for ${describe(r.msg)}`);
      assert.match(r.code ?? "", /DB/, `a 503 naming the database, not ${r.code}`);
    }
  }
  // Vigil never crashed and never answered anything else than sign / slashing refusal / database unavailable.
  for (const r of results) {
    assert.ok(r.status === 200 || r.status === 412 || (r.status === 503 && /DB/.test(r.code ?? "")), `${r.inst}: ${r.status} ${r.code ?? r.error ?? ""}`);
  }
  for (const inst of insts) assert.equal(inst.vigil.proc.exitCode, null, `${inst.name} is still running`);

  const history = await exportHistory(db.url, db.schema);
  const s = checkSafety("database crash", results, history);
  for (const c of cycles) t.diagnostic(c);
  t.diagnostic(`${results.length} requests (${tally(results)}); ${s.received} signatures received, ${s.recorded} records`);
});

// ---------------------------------------------------------------------------------------------
// 4. Active/standby, a frozen primary
// ---------------------------------------------------------------------------------------------

/** Local TCP ports of `pid`'s connections to port `serverPort` (from /proc: works on a stopped process too). */
function clientPorts(pid: number, serverPort: number): number[] {
  const inodes = new Set<string>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      /* closed meanwhile */
    }
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = fs.readFileSync(table, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9])) continue;
      if (parseInt(f[2].split(":")[1], 16) === serverPort) ports.push(parseInt(f[1].split(":")[1], 16));
    }
  }
  return ports;
}

async function roleOf(inst: Inst, timeoutMs = 2000): Promise<{ status: number; role: string | null; fence: number | null } | null> {
  try {
    const h = await getJson(`${inst.url}/healthcheck`, timeoutMs);
    const ha = h.json?.checks?.find((c: { id: string }) => c.id === "ha");
    return { status: h.status, role: h.json?.role ?? null, fence: ha?.fence ?? null };
  } catch {
    return null; // no answer in time (a frozen vault does not answer)
  }
}

test("active/standby with fencing: a frozen (SIGSTOP) primary loses the lease, the standby signs conflicting versions, the resumed primary signs nothing", { timeout: 150_000 }, async (t) => {
  const LEASE_MS = 2000;
  const db = { url: PG_URL, schema: scratch.schema() };
  const ha = ["--ha-group", "g", "--ha-lease-ms", String(LEASE_MS)];
  // Started together: they race for the lease.
  const insts = await Promise.all([startInst("ha-0", db, ha), startInst("ha-1", db, ha)]);
  let frozen = false; // also ends the load when the test fails half-way
  t.after(async () => {
    frozen = true;
    for (const i of insts) {
      try {
        process.kill(vaultPid(i), "SIGCONT");
      } catch {
        /* gone */
      }
    }
    await stopInsts(insts);
  });

  // Exactly one active (once the first renewals have settled).
  let roles: ({ status: number; role: string | null; fence: number | null } | null)[] = [];
  for (let i = 0; i < 50; i++) {
    roles = await Promise.all(insts.map((x) => roleOf(x)));
    if (roles.filter((r) => r?.role === "active").length === 1 && roles.filter((r) => r?.role === "standby").length === 1) break;
    await sleep(100);
  }
  assert.deepEqual(roles.map((r) => r?.role).sort(), ["active", "standby"], `one active, one standby: ${JSON.stringify(roles)}`);
  const active = insts[roles.findIndex((r) => r?.role === "active")];
  const standby = insts.find((i) => i !== active)!;
  const oldFence = roles.find((r) => r?.role === "active")!.fence;
  assert.ok(typeof oldFence === "number" && oldFence > 0, `the active instance shows its fence: ${JSON.stringify(roles)}`);

  const results: Result[] = [];
  // The standby answers /upcheck and /healthcheck, refuses to sign (and records nothing).
  assert.equal((await getJson(`${standby.url}/upcheck`)).status, 200);
  assert.equal(roles.find((r) => r?.role === "standby")!.status, 200, "a healthy standby is UP");
  const probe = await send(standby, att(KEYS[0], 50, 51, "ha/probe"), results);
  assert.equal(probe.status, 503);
  assert.equal(probe.code, "STANDBY");

  const base = 100;
  const slotBase = 800;
  await warmUp(KEYS.flatMap((pk, k) => [att(pk, base, base + 1, `ha/w/${k}`), blk(pk, slotBase, `ha/wb/${k}`)]), [active], results);

  // Load on the active: one-epoch attestations and blocks at ever higher targets / slots.
  const counters = KEYS.map(() => 0);
  let seq = 0;
  const nextMsg = (): Msg => {
    const k = seq++ % KEYS.length;
    const c = counters[k]++;
    return c % 3 === 2 ? blk(KEYS[k], slotBase + 1 + c, `ha/b/${k}/${c}`) : att(KEYS[k], base + 1 + c, base + 2 + c, `ha/a/${k}/${c}`);
  };
  const sentToActive: { msg: Msg; sentAt: number; promise: Promise<Result> }[] = [];
  const sendToActive = (): Promise<Result> => {
    const msg = nextMsg();
    const entry = { msg, sentAt: now(), promise: send(active, msg, results) };
    sentToActive.push(entry);
    return entry.promise;
  };
  const worker = async (): Promise<void> => {
    while (!frozen) await sendToActive();
  };
  const load = Promise.all(Array.from({ length: 10 }, worker));
  load.catch(() => undefined); // awaited below
  await sleep(800 + randomInt(0, 400));
  assert.ok(signed(results).length > 2 * KEYS.length + 8, "the active instance signs under load");

  // Freeze its vault with requests in flight, then send it more.
  const vault = vaultPid(active);
  process.kill(vault, "SIGSTOP");
  const frozenAt = now();
  frozen = true;
  const stuck = sentToActive.filter((e) => !results.some((r) => r.msg === e.msg));
  for (let i = 0; i < 16; i++) sendToActive();
  const later = sentToActive.filter((e) => e.sentAt >= frozenAt);
  assert.ok(stuck.length > 0, "requests were in flight at the freeze");
  // What the frozen vault's database sessions were left doing (diagnostic: an open transaction holds locks).
  await sleep(300);
  const ports = clientPorts(vault, Number(new URL(PG_URL).port || 5432));
  const sessions = (
    await scratch
      .admin()
      .query("SELECT state, left(regexp_replace(query, '\\s+', ' ', 'g'), 60) AS q FROM pg_stat_activity WHERE client_port = ANY($1::int[])", [ports])
  ).rows.map((r: { state: string; q: string }) => (r.state === "idle in transaction" ? `IDLE IN TRANSACTION after "${r.q}"` : r.state));

  // The standby takes over: measured from the freeze to its healthcheck saying "active".
  let takeover = Infinity;
  let newFence: number | null = null;
  while (now() - frozenAt < 20_000) {
    const r = await roleOf(standby);
    if (r?.role === "active") {
      takeover = now() - frozenAt;
      newFence = r.fence;
      break;
    }
    await sleep(50);
  }
  assert.ok(takeover <= 10_000, `the standby took over within 10 s (took ${Math.round(takeover)} ms; lease ${LEASE_MS} ms)\n${standby.vigil.output().slice(-2000)}`);
  assert.ok(newFence !== null && newFence > oldFence, `a new fencing number (${oldFence} → ${newFence})`);

  // It signs conflicting versions (same slot / epochs, another root) of everything stuck in the frozen one.
  // A 503 is retried: the frozen session may still hold validator locks until the server ends it.
  const bOutcome = new Map<Msg, Result>();
  let firstB = Infinity;
  let retries503 = 0;
  await Promise.all(
    [...stuck, ...later].map(async (e, i) => {
      const b = conflicting(e.msg, `ha/B/${i}`);
      const deadline = now() + 30_000;
      for (;;) {
        const r = await send(standby, b, results);
        if (r.status === 200) firstB = Math.min(firstB, r.doneAt - frozenAt);
        if (r.status !== 503 || now() > deadline) {
          bOutcome.set(e.msg, r);
          return;
        }
        retries503++;
        await sleep(200);
      }
    }),
  );
  const signedB = [...bOutcome.values()].filter((r) => r.status === 200).length;
  // Bound: the frozen vault's open transaction, if any, holds its validator locks until the server ends it:
  // after 3 s once its fence check ran (SET LOCAL), after the pool's 10 s idle timeout if it was frozen before.
  assert.ok(firstB <= 15_000, `the new active signed within 15 s of the freeze (took ${Math.round(firstB)} ms)`);
  for (const e of later) {
    const r = bOutcome.get(e.msg)!;
    assert.equal(r.status, 200, `the new active signs the other version of ${describe(e.msg)} sent to the frozen one: ${r.status} ${r.code}`);
  }
  for (const e of stuck) {
    const r = bOutcome.get(e.msg)!;
    assert.ok(r.status === 200 || (r.status === 412 && ["DOUBLE_VOTE", "DOUBLE_BLOCK_PROPOSAL"].includes(r.code!)), `${describe(r.msg)}: ${r.status} ${r.code}`);
  }

  // Resume the frozen vault: none of its stuck or later requests is signed, unless its decision had been
  // committed before the freeze (then the history has it and the other version above was refused).
  const resumedAt = now();
  process.kill(vault, "SIGCONT");
  const aResults = await Promise.all([...stuck, ...later].map((e) => e.promise));
  await load;
  const history = await exportHistory(db.url, db.schema);
  const recorded = recordKeys(history);
  let committedBeforeFreeze = 0;
  for (const [i, e] of [...stuck, ...later].entries()) {
    const a = aResults[i];
    const b = bOutcome.get(e.msg)!;
    if (i >= stuck.length) {
      assert.notEqual(a.status, 200, `the resumed primary signed ${describe(e.msg)}, sent to it while frozen`);
    }
    if (a.status === 200) {
      committedBeforeFreeze++;
      assert.ok(recorded.has(recordKey(e.msg)) && b.status === 412, `the resumed primary signed ${describe(e.msg)} without a decision committed before the freeze`);
    } else {
      assert.equal(a.status, 503, `${describe(e.msg)}: ${a.status} ${a.code}`);
      assert.match(a.code ?? "", /^(STANDBY|SLASHING_DB_[A-Z_]+)$/);
    }
    if (b.status === 412) assert.ok(recorded.has(recordKey(e.msg)), `the other version of ${describe(e.msg)} was refused, so it must be recorded`);
  }

  // Its role becomes standby; it refuses new requests; the new active keeps signing.
  let resumedRole: string | null = null;
  for (let i = 0; i < 100 && resumedRole !== "standby"; i++) {
    resumedRole = (await roleOf(active))?.role ?? null;
    if (resumedRole !== "standby") await sleep(50);
  }
  assert.equal(resumedRole, "standby", "the resumed primary is a standby");
  const after1 = await send(active, nextMsg(), results);
  assert.equal(after1.status, 503);
  assert.equal(after1.code, "STANDBY");
  const after2 = await send(standby, nextMsg(), results);
  assert.equal(after2.status, 200, `${after2.status} ${after2.code}`);
  // Exactly one active still.
  const finalRoles = await Promise.all(insts.map((x) => roleOf(x)));
  assert.deepEqual(finalRoles.map((r) => r?.role).sort(), ["active", "standby"]);
  assert.equal(standby === insts[finalRoles.findIndex((r) => r?.role === "active")], true, "the former standby is the active one");

  const final = await exportHistory(db.url, db.schema);
  checkSafety("frozen primary", results, final);
  assert.ok(!recordKeys(final).has(recordKey(probe.msg)), "the standby's refusal recorded nothing");
  t.diagnostic(
    `failover: standby ACTIVE ${Math.round(takeover)} ms after the SIGSTOP (lease ${LEASE_MS} ms, fence ${oldFence} → ${newFence}); ` +
      `first conflicting version signed by it ${Math.round(firstB)} ms after the SIGSTOP (${retries503} retries after 503); vault resumed after ${Math.round(resumedAt - frozenAt)} ms`,
  );
  t.diagnostic(`the frozen vault's database sessions 300 ms after the SIGSTOP: ${sessions.join("; ") || "none"}`);
  t.diagnostic(
    `${stuck.length} requests in flight at the freeze + ${later.length} sent to the frozen vault; ${committedBeforeFreeze} had been committed before the freeze ` +
      `(answered 200 after SIGCONT, their other version refused); the standby signed ${signedB} other versions; the frozen vault's answers: ${tally(aResults)}`,
  );
});

// ---------------------------------------------------------------------------------------------
// 5. Moving validators between groups
// ---------------------------------------------------------------------------------------------

test("moving validators from group A to group B: high watermark retires A, export from A, import into B; B refuses A's conflicts and signs on", { timeout: 120_000 }, async (t) => {
  const started = Date.now();
  const schemaA = scratch.schema();
  const schemaB = scratch.schema();
  const results: Result[] = [];
  const A = await startInst("move-a", { url: PG_URL, schema: schemaA });
  const insts = [A];
  t.after(() => stopInsts(insts));
  const [k0, k1, k2] = KEYS;

  // A signs epochs 1..5 (attestations e-1→e, a block in each epoch) for k0, and a little for k1.
  const aMsgs: Msg[] = [];
  for (let e = 1; e <= 5; e++) aMsgs.push(att(k0, e - 1, e, `move/a/${e}`), blk(k0, 8 * e, `move/ab/${e}`));
  aMsgs.push(att(k1, 2, 3, "move/k1/3"), blk(k1, 20, "move/k1b/20"));
  for (const m of aMsgs) {
    const r = await send(A, m, results);
    assert.equal(r.status, 200, `A signs ${describe(m)}: ${r.status} ${r.code}`);
  }

  // Retire A: a global high watermark at epoch 6 / slot 48, set while A runs.
  const wm = await runVigil(["slashing", "watermark", "--high", "--epoch", "6", "--slot", "48", "--db-url", PG_URL, "--db-schema", schemaA]);
  assert.equal(wm.code, 0, wm.stderr);
  assert.match(wm.stdout, /high all validators: slot 48, epoch 6/);

  // A refuses target 6+ and slot 48+, for every key (also one it never signed for), even racing.
  const refusedByA: Msg[] = [
    att(k0, 5, 6, "move/a/6"),
    att(k0, 6, 7, "move/a/7"),
    att(k0, 5, 60, "move/a/60"),
    blk(k0, 48, "move/ab/48"),
    blk(k0, 49, "move/ab/49"),
    att(k2, 5, 6, "move/k2/6"),
    blk(k2, 100, "move/k2b/100"),
  ];
  for (let i = 0; i < 12; i++) refusedByA.push(att(KEYS[i % 4], 6 + i, 7 + i, `move/ar/${i}`), blk(KEYS[i % 4], 48 + 8 * i, `move/arb/${i}`));
  const exportFile = path.join(tmp, "move-a.json");
  // Export while A is hammered with requests it must refuse.
  const [refusals, exp] = await Promise.all([
    Promise.all(refusedByA.map((m) => send(A, m, results))),
    runVigil(["slashing", "export", exportFile, "--db-url", PG_URL, "--db-schema", schemaA]),
  ]);
  assert.equal(exp.code, 0, exp.stderr);
  for (const r of refusals) {
    assert.equal(r.status, 412, `A after retirement, ${describe(r.msg)}: ${r.status} ${r.code}`);
    assert.equal(r.code, "AT_OR_ABOVE_HIGH_WATERMARK");
  }
  // Below the watermark, an exact repeat is still signed (the same signature).
  const repeat = await send(A, aMsgs[8], results);
  assert.equal(repeat.status, 200);
  assert.equal(repeat.signature, results.find((r) => r.msg === aMsgs[8] && r !== repeat)?.signature);

  // Import into B (its own schema), then start B.
  const imp = await runVigil(["slashing", "import", exportFile, "--db-url", PG_URL, "--db-schema", schemaB, "--network", "minimal"]);
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stdout, /imported .*: 2 validators/);
  const B = await startInst("move-b", { url: PG_URL, schema: schemaB });
  insts.push(B);

  // B refuses anything conflicting with A's history.
  const refusedByB: [Msg, string][] = [
    [conflicting(aMsgs[8], "move/b/x5"), "DOUBLE_VOTE"], // target 5, another root
    [conflicting(aMsgs[4], "move/b/x3"), "DOUBLE_VOTE"], // target 3
    [att(k0, 0, 7, "move/b/s07"), "SURROUNDING_VOTE"], // surrounds 1→2 … 4→5
    [conflicting(aMsgs[9], "move/b/xb40"), "DOUBLE_BLOCK_PROPOSAL"], // slot 40
    [conflicting(aMsgs[10], "move/b/xk1"), "DOUBLE_VOTE"], // k1 target 3
    [conflicting(aMsgs[11], "move/b/xk1b"), "DOUBLE_BLOCK_PROPOSAL"], // k1 slot 20
  ];
  for (const [m, code] of refusedByB) {
    const r = await send(B, m, results);
    assert.equal(r.status, 412, `B, ${describe(m)}: ${r.status} ${r.code}`);
    assert.equal(r.code, code, describe(m));
  }
  // ... re-signs A's exact messages (repeats: same signature) and signs epoch 6+ and slot 48+,
  // while the same messages sent to A at the same moment are refused there.
  const againOnB = await send(B, aMsgs[8], results);
  assert.equal(againOnB.status, 200);
  assert.equal(againOnB.signature, repeat.signature);
  const onward: Msg[] = [att(k0, 5, 6, "move/b/6"), att(k0, 6, 7, "move/b/7"), blk(k0, 48, "move/bb/48"), blk(k0, 56, "move/bb/56"), att(k2, 5, 6, "move/b/k2/6")];
  for (const m of onward) {
    const [onB, onA] = await Promise.all([send(B, m, results), send(A, m, results)]);
    assert.equal(onB.status, 200, `B signs ${describe(m)}: ${onB.status} ${onB.code}`);
    assert.equal(onA.status, 412, `A still refuses ${describe(m)}`);
    assert.equal(onA.code, "AT_OR_ABOVE_HIGH_WATERMARK");
  }

  // One validator, one history over both groups: nothing slashable, every signature recorded in A or B.
  const [histA, histB] = await Promise.all([exportHistory(PG_URL, schemaA), exportHistory(PG_URL, schemaB)]);
  checkSafety("A ∪ B", results, { data: [...histA.data, ...histB.data] });
  const inA = recordKeys(histA);
  for (const m of [...refusedByA, ...onward]) assert.ok(!inA.has(recordKey(m)), `A recorded ${describe(m)} after its retirement`);
  t.diagnostic(`A: ${tally(results.filter((r) => r.inst === "move-a"))}; B: ${tally(results.filter((r) => r.inst === "move-b"))}; ${Date.now() - started} ms`);
});

test("a short lease (--ha-lease-ms 1000) is renewed often enough that its lone holder never drops to standby", async () => {
  const schema = scratch.schema();
  await scratch.admin().query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  const pool = new pg.Pool({ connectionString: PG_URL, max: 2 });
  const lease = new Lease(pool, { group: "short", ttlMs: 1000, schema });
  try {
    assert.ok(lease.renewMs <= 250, `renewed every ${lease.renewMs} ms`);
    await lease.start();
    let standby = 0;
    let samples = 0;
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      samples++;
      if (lease.role !== "active") standby++;
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(standby, 0, `standby in ${standby} of ${samples} samples`);
  } finally {
    await lease.stop();
    await pool.end();
  }
});
