/**
 * End to end with a real consensus client: a local Lodestar v1.5.1 devnet (minimal preset, 2 s
 * slots, 8 interop validators, all on 127.0.0.1) whose validator client holds no keys and signs
 * every duty through Vigil (`--network minimal`).
 *
 * 1. the chain finalizes (epoch >= 2) with Vigil signing ATTESTATION and BLOCK_V2;
 * 2. the validator client is SIGKILLed and restarted (same data dir); then Vigil is SIGKILLed
 *    (crash) and restarted on the same data dir and port; duties continue: the head advances, both
 *    processes sign again, and finalization goes on to a higher epoch;
 * 3. `vigil slashing export`: every validator has signed blocks and attestations, every canonical
 *    block of the chain is in the history at its slot (with the signing root the chain implies),
 *    and the history holds no slashable pair.
 *
 * Every process is killed at the end, and on failure (process groups for Lodestar; logs in the
 * temp dir, their tails printed, the dir kept). VIGIL_E2E_KEEP=1 keeps the temp dir after a pass too.
 * Lodestar is installed into .cache/lodestar on first use (npm ci, about a minute).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, test } from "node:test";
import { killVigils, runVigil, spawnVigil, stopVigil, writeKeystores, type VigilProcess } from "../helpers/cli.js";
import {
  BeaconApi,
  childPids,
  countLines,
  countsText,
  freePorts,
  pidAlive,
  signCounts,
  sleep,
  spawnGroup,
  stopAllGroups,
  stopGroup,
  tail,
  waitFor,
  type GroupProcess,
} from "./devnet.js";
import { INTEROP_PUBKEY_0, interopSecrets } from "./interop.js";
import { ensureLodestar } from "./lodestar.js";
import { describeViolations, findSlashable, type Interchange } from "./slashable.js";

// ---- chain shape (must match what lodestar is given) ----
const VALIDATORS = 8;
const SECONDS_PER_SLOT = 2;
const SLOTS_PER_EPOCH = 8; // minimal preset
const EPOCH_S = SECONDS_PER_SLOT * SLOTS_PER_EPOCH; // 16 s
const GENESIS_DELAY_S = 20; // launch -> genesis: time for the beacon node and validator client to start on 2 busy cores
const PARAMS = ["--params.SECONDS_PER_SLOT", String(SECONDS_PER_SLOT), "--params.ALTAIR_FORK_EPOCH", "0", "--params.BELLATRIX_FORK_EPOCH", "1"];

// ---- bounds ----
const FIRST_FINALIZED = 2; // earliest possible: at the epoch-4 boundary, genesis + 64 s
const FIRST_FINALIZED_BY_S = 64 + 4 * EPOCH_S; // genesis + 128 s: 4 epochs of margin
const RESUME_WITHIN_S = 3 * EPOCH_S; // a restarted process signs again within 48 s
const FINAL_FINALIZED_MIN = 5;
const FINALIZE_MORE = 2; // after both restarts, finalized must pass (finalized at Vigil's restart) + 2
const FINAL_PHASE_S = 8 * EPOCH_S; // ... within 128 s of Vigil's restart (4 epochs needed, 4 of margin)
const TEST_TIMEOUT_MS = 7.5 * 60_000; // node:test's hard timeout
const OWN_DEADLINE_MS = 7 * 60_000; // every wait inside gives up before that

const t0 = Date.now();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-e2e-"));
const timelineFile = path.join(tmp, "timeline.txt");
let genesisTime = 0; // unix seconds

const since = (ms: number): string => `${((ms - t0) / 1000).toFixed(1)}s`;
function log(msg: string): void {
  const now = Date.now();
  const g = genesisTime ? ` genesis${now / 1000 - genesisTime >= 0 ? "+" : ""}${(now / 1000 - genesisTime).toFixed(1)}s` : "";
  const line = `[e2e t+${since(now)}${g}] ${msg}`;
  console.log(line);
  fs.appendFileSync(timelineFile, line + "\n");
}
/** The slot the wall clock is in (fractional). */
const clockSlot = (): number => (Date.now() / 1000 - genesisTime) / SECONDS_PER_SLOT;

const hex = (b: Uint8Array): string => "0x" + Buffer.from(b).toString("hex");
const bytes = (h: string): Buffer => Buffer.from(h.replace(/^0x/, ""), "hex");
const sha256 = (...parts: Buffer[]): Buffer => createHash("sha256").update(Buffer.concat(parts)).digest();

/** compute_signing_root(block_root, compute_domain(DOMAIN_BEACON_PROPOSER, fork_version, genesis_validators_root)). */
function blockSigningRoot(blockRoot: string, forkVersion: string, gvr: string): string {
  const forkDataRoot = sha256(Buffer.concat([bytes(forkVersion), Buffer.alloc(28)]), bytes(gvr));
  const domain = Buffer.concat([Buffer.from([0, 0, 0, 0]), forkDataRoot.subarray(0, 28)]);
  return hex(sha256(bytes(blockRoot), domain));
}

/** The fork version of `epoch` from the beacon node's /eth/v1/config/spec. */
function forkVersionAt(spec: Record<string, string>, epoch: number): string {
  let best = { epoch: -1, version: spec.GENESIS_FORK_VERSION };
  for (const [k, v] of Object.entries(spec)) {
    const m = /^([A-Z0-9]+)_FORK_EPOCH$/.exec(k);
    if (!m || !spec[`${m[1]}_FORK_VERSION`]) continue;
    const e = Number(v);
    if (Number.isSafeInteger(e) && e <= epoch && e > best.epoch) best = { epoch: e, version: spec[`${m[1]}_FORK_VERSION`] };
  }
  return best.version;
}

// ---- everything started here, for cleanup ----
let beacon: GroupProcess | undefined;
let validator: GroupProcess | undefined;
let vigil: VigilProcess | undefined;
const vaultPids = new Set<number>();

async function cleanup(): Promise<void> {
  await stopAllGroups(5_000);
  await killVigils();
  for (const pid of vaultPids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}
after(cleanup); // also after a node:test timeout, when the test body may still be waiting

/** `vigil start ...args`, its output going to `file`, its vault process remembered for cleanup. */
async function startVigil(args: string[], file: string): Promise<VigilProcess> {
  const v = await spawnVigil(args, { timeoutMs: 60_000 });
  logVigilTo(v, file);
  for (const pid of childPids(v.proc.pid!)) vaultPids.add(pid);
  return v;
}

/** Vigil's output into `file`: what it printed so far, then everything it prints. */
function logVigilTo(v: VigilProcess, file: string): void {
  const stream = fs.createWriteStream(file, { flags: "a" });
  stream.write(`# ${new Date().toISOString()} vigil pid ${v.proc.pid}\n` + v.output());
  v.proc.stdout!.on("data", (d) => stream.write(d));
  v.proc.stderr!.on("data", (d) => stream.write(d));
  v.proc.once("close", () => stream.end());
}

test("Lodestar devnet signing through Vigil: finality, restarts of the validator client and of Vigil (SIGKILL), complete non-slashable history", { timeout: TEST_TIMEOUT_MS }, async () => {
  const deadline = t0 + OWN_DEADLINE_MS;
  const by = (ms: number): number => Math.min(ms, deadline);
  const logs = {
    beacon: path.join(tmp, "beacon.log"),
    validator: path.join(tmp, "validator.log"),
    vigil: path.join(tmp, "vigil.log"),
  };
  let ok = false;
  try {
    log(`temp dir ${tmp}`);

    // ---- 1. Lodestar ----
    const lodestar = await ensureLodestar(log, 4 * 60_000);

    // ---- 2. Vigil with interop keys 0..7 ----
    const secrets = interopSecrets(VALIDATORS);
    const keystores = await writeKeystores(path.join(tmp, "keystores"), secrets, "vigil e2e devnet");
    assert.equal(keystores.pubkeys[0], INTEROP_PUBKEY_0, "interop key 0");
    const [restPort, p2pPort, vigilPort] = await freePorts(3);
    const vigilData = path.join(tmp, "vigil-data");
    const vigilArgs = ["--network", "minimal", "--keystores", keystores.dir, "--password-file", keystores.passwordFile, "--data-dir", vigilData, "--port", String(vigilPort)];
    vigil = await startVigil(vigilArgs, logs.vigil);
    const vigilUrl = vigil.url;
    assert.equal(vigilUrl, `http://127.0.0.1:${vigilPort}`);
    const listed = (await (await fetch(`${vigilUrl}/api/v1/eth2/publicKeys`)).json()) as string[];
    assert.deepEqual([...listed].sort(), [...keystores.pubkeys].sort(), "Vigil lists the 8 interop keys");
    log(`vigil up on ${vigilUrl} (pid ${vigil.proc.pid}) with ${listed.length} keys`);

    // ---- 3. beacon node ----
    const beaconDir = path.join(tmp, "beacon");
    const validatorDir = path.join(tmp, "validator");
    const env = { LODESTAR_PRESET: "minimal" };
    genesisTime = Math.floor(Date.now() / 1000) + GENESIS_DELAY_S;
    beacon = spawnGroup(
      "beacon",
      lodestar.cli,
      [
        "dev",
        "--genesisValidators", String(VALIDATORS),
        "--genesisTime", String(genesisTime),
        "--dataDir", beaconDir,
        ...PARAMS,
        "--rest.address", "127.0.0.1",
        "--rest.port", String(restPort),
        "--listenAddress", "127.0.0.1",
        "--port", String(p2pPort),
        "--discv5", "false",
        "--mdns", "false",
        "--eth1", "false",
        "--execution.engineMock",
        "--logFile", "none",
      ],
      { cwd: tmp, logFile: logs.beacon, env },
    );
    const api = new BeaconApi(`http://127.0.0.1:${restPort}`);
    const beaconAlive = (): string | undefined => (beacon!.alive() ? undefined : `the beacon node exited (code ${beacon!.proc.exitCode}, signal ${beacon!.proc.signalCode})`);
    log(`beacon node pid ${beacon.pid}, REST ${api.base}, p2p ${p2pPort}, genesis at ${genesisTime}`);
    const genesis = await waitFor<any>("the beacon REST API", () => api.get("/eth/v1/beacon/genesis"), { deadline: by(Date.now() + 60_000), everyMs: 500, abort: beaconAlive });
    assert.equal(Number(genesis.data.genesis_time), genesisTime, "the dev genesis uses our genesis time");
    const gvr: string = genesis.data.genesis_validators_root;
    log(`beacon REST up; genesis validators root ${gvr}`);
    const spec = (await api.must("/eth/v1/config/spec")).data as Record<string, string>;
    assert.equal(spec.SLOTS_PER_EPOCH, String(SLOTS_PER_EPOCH));
    assert.equal(spec.SECONDS_PER_SLOT, String(SECONDS_PER_SLOT));

    // ---- 4. validator client: no keys, every signature from Vigil ----
    const validatorArgs = [
      "validator",
      "--network", "dev",
      "--dataDir", validatorDir,
      ...PARAMS,
      "--beaconNodes", api.base,
      "--externalSigner.url", vigilUrl,
      "--externalSigner.fetch",
      "--logFile", "none",
    ];
    const startValidator = (): GroupProcess => spawnGroup("validator", lodestar.cli, validatorArgs, { cwd: tmp, logFile: logs.validator, env });
    validator = startValidator();
    log(`validator client pid ${validator.pid}`);

    const alive = (): string | undefined =>
      beaconAlive() ??
      (validator!.alive() ? undefined : `the validator client exited (code ${validator!.proc.exitCode}, signal ${validator!.proc.signalCode})`) ??
      (vigil!.proc.exitCode === null && vigil!.proc.signalCode === null ? undefined : `vigil exited (code ${vigil!.proc.exitCode}, signal ${vigil!.proc.signalCode})`);

    let last = "";
    const finality = async (): Promise<{ justified: number; finalized: number }> => {
      const f = await api.finality();
      const s = `justified=${f.justified} finalized=${f.finalized}`;
      if (s !== last) {
        log(`${s} (head slot ${await api.headSlot()}, clock slot ${clockSlot().toFixed(1)})`);
        last = s;
      }
      return f;
    };
    const finalizedAtLeast = (epoch: number, deadlineMs: number): Promise<number> =>
      waitFor(
        `finalized epoch >= ${epoch}`,
        async () => {
          const f = await finality();
          return f.finalized >= epoch ? f.finalized : undefined;
        },
        { deadline: by(deadlineMs), everyMs: 1000, abort: alive },
      );
    const signed = async (type: string): Promise<number> => (await signCounts(vigil!.url)).get(`${type}/signed`) ?? 0;

    // ---- 5. first finalization ----
    const firstFinalized = await finalizedAtLeast(FIRST_FINALIZED, (genesisTime + FIRST_FINALIZED_BY_S) * 1000);
    log(`FIRST FINALIZED epoch ${firstFinalized}`);
    const counts1 = await signCounts(vigilUrl);
    log(`vigil #1 sign counts: ${countsText(counts1)}`);
    assert.ok((counts1.get("ATTESTATION/signed") ?? 0) > 0, "Vigil signed attestations");
    assert.ok((counts1.get("BLOCK_V2/signed") ?? 0) > 0, "Vigil signed blocks");

    // ---- 6. validator client: SIGKILL, restart on the same data dir ----
    const vcKill = await stopGroup(validator, "SIGKILL");
    const attsAtVcKill = await signed("ATTESTATION");
    log(`validator client SIGKILLed (${vcKill.signal}); head slot ${await api.headSlot()}; ATTESTATION signed so far ${attsAtVcKill}`);
    validator = startValidator();
    log(`validator client restarted, pid ${validator.pid}`);
    await waitFor(
      "the restarted validator client to attest through Vigil",
      async () => ((await signed("ATTESTATION")) > attsAtVcKill ? true : undefined),
      { deadline: by(Date.now() + RESUME_WITHIN_S * 1000), everyMs: 500, abort: alive },
    );
    log(`restarted validator client signs again (ATTESTATION signed ${await signed("ATTESTATION")})`);

    // ---- 7. Vigil: SIGKILL (crash) in the middle of the next epoch, restart on the same data dir and port ----
    const killSlot = (Math.floor(clockSlot() / SLOTS_PER_EPOCH) + 1) * SLOTS_PER_EPOCH + 3;
    const vigil1 = vigil;
    const vaults = childPids(vigil1.proc.pid!);
    // a third into the slot, when the slot's attestation and sync-committee messages go out
    await sleep(Math.max(0, (genesisTime + (killSlot + 1 / 3) * SECONDS_PER_SLOT) * 1000 - 100 - Date.now()));
    const finalizedAtCrash = (await api.finality()).finalized;
    const headAtCrash = await api.headSlot();
    await sleep(Math.max(0, (genesisTime + (killSlot + 1 / 3) * SECONDS_PER_SLOT) * 1000 + 20 - Date.now()));
    const countsBeforeCrash = await signCounts(vigilUrl); // signatures given out before the crash: at least these
    await stopVigil(vigil1.proc, "SIGKILL");
    log(`vigil SIGKILLed at clock slot ${clockSlot().toFixed(1)} (head ${headAtCrash}, finalized ${finalizedAtCrash}); counts a moment before: ${countsText(countsBeforeCrash)}`);
    await waitFor("Vigil's vault process to exit with its parent", async () => (vaults.every((p) => !pidAlive(p)) ? true : undefined), {
      deadline: by(Date.now() + 10_000),
      everyMs: 100,
    });
    log(`vault process(es) ${vaults.join(",") || "(none found)"} gone`);
    vigil = await startVigil(vigilArgs, logs.vigil);
    assert.equal(vigil.url, vigilUrl, "restarted on the same port");
    const vigilRestartSlot = Math.floor(clockSlot());
    log(`vigil restarted (pid ${vigil.proc.pid}) at clock slot ${clockSlot().toFixed(1)}`);
    const headAtVigilRestart = await api.headSlot();
    await waitFor(
      "the restarted Vigil to sign attestations and blocks",
      async () => ((await signed("ATTESTATION")) > 0 && (await signed("BLOCK_V2")) > 0 ? true : undefined),
      { deadline: by(Date.now() + RESUME_WITHIN_S * 1000), everyMs: 500, abort: alive },
    );
    log(`restarted Vigil signs again: ${countsText(await signCounts(vigilUrl))}`);

    // ---- 8. finalization continues ----
    const target = Math.max(FINAL_FINALIZED_MIN, finalizedAtCrash + FINALIZE_MORE);
    const finalFinalized = await finalizedAtLeast(target, Date.now() + FINAL_PHASE_S * 1000);
    const finalHead = await api.headSlot();
    log(`FINALIZED epoch ${finalFinalized} (target ${target}); head slot ${finalHead}`);
    assert.ok(finalHead > headAtVigilRestart, "the head advanced after both restarts");
    const counts2 = await signCounts(vigilUrl);
    log(`vigil #2 sign counts: ${countsText(counts2)}`);
    assert.ok((counts2.get("ATTESTATION/signed") ?? 0) > 0 && (counts2.get("BLOCK_V2/signed") ?? 0) > 0);

    // ---- 9. stop signing; read the canonical chain ----
    await stopGroup(validator, "SIGTERM", 10_000);
    log("validator client stopped");
    const head = await api.headSlot();
    const canonical: { slot: number; proposer: number; root: string }[] = [];
    for (let slot = 1; slot <= head; slot++) {
      const h = await api.get(`/eth/v1/beacon/headers/${slot}`);
      if (!h || Number(h.data.header.message.slot) !== slot) continue;
      canonical.push({ slot, proposer: Number(h.data.header.message.proposer_index), root: h.data.root });
    }
    await stopGroup(beacon, "SIGTERM", 10_000);
    log(`beacon node stopped; canonical chain: ${canonical.length} blocks in slots 1..${head} (${head - canonical.length} empty slots)`);

    // ---- 10. Vigil's history ----
    const counts3 = await signCounts(vigilUrl);
    await stopVigil(vigil.proc, "SIGTERM");
    log(`vigil stopped; final counts of vigil #2: ${countsText(counts3)}`);
    const exportFile = path.join(tmp, "interchange.json");
    const exp = await runVigil(["slashing", "export", exportFile, "--data-dir", vigilData]);
    assert.equal(exp.code, 0, `vigil slashing export failed:\n${exp.stdout}${exp.stderr}`);
    log(exp.stdout.trim());
    const doc = JSON.parse(fs.readFileSync(exportFile, "utf8")) as Interchange;
    assert.equal(doc.metadata.genesis_validators_root, gvr, "the history is bound to the devnet's genesis validators root");

    type Signed = { blocks: Map<number, Set<string | undefined>>; targets: number[] };
    const history = new Map<string, Signed>();
    for (const d of doc.data) {
      const e: Signed = history.get(d.pubkey.toLowerCase()) ?? { blocks: new Map(), targets: [] };
      for (const b of d.signed_blocks) {
        const s = e.blocks.get(Number(b.slot)) ?? new Set();
        s.add(b.signing_root?.toLowerCase());
        e.blocks.set(Number(b.slot), s);
      }
      for (const a of d.signed_attestations) e.targets.push(Number(a.target_epoch));
      history.set(d.pubkey.toLowerCase(), e);
    }
    const restartEpoch = Math.floor(vigilRestartSlot / SLOTS_PER_EPOCH);
    keystores.pubkeys.forEach((pk, i) => {
      const e = history.get(pk.toLowerCase());
      assert.ok(e, `validator ${i} is in the history`);
      assert.ok(e.blocks.size > 0, `validator ${i} has signed blocks`);
      assert.ok(e.targets.length > 0, `validator ${i} has signed attestations`);
      assert.ok(Math.max(...e.targets) > restartEpoch, `validator ${i} attested after Vigil's restart (epoch ${restartEpoch})`);
    });

    const missing: string[] = [];
    for (const b of canonical) {
      const pk = keystores.pubkeys[b.proposer];
      assert.ok(pk, `block at slot ${b.slot}: proposer ${b.proposer} is not an interop validator`);
      const roots = history.get(pk.toLowerCase())?.blocks.get(b.slot);
      const expected = blockSigningRoot(b.root, forkVersionAt(spec, Math.floor(b.slot / SLOTS_PER_EPOCH)), gvr);
      if (!roots) missing.push(`slot ${b.slot} (proposer ${b.proposer}): not in the history`);
      else if (!roots.has(expected)) missing.push(`slot ${b.slot} (proposer ${b.proposer}): history has ${[...roots].join(",")}, chain implies ${expected}`);
    }
    assert.deepEqual(missing, [], `canonical blocks missing from Vigil's history:\n${missing.join("\n")}`);
    const blocksAfterRestart = canonical.filter((b) => b.slot > vigilRestartSlot).length;
    log(`all ${canonical.length} canonical blocks are in the history with the chain's signing root (${blocksAfterRestart} after Vigil's restart)`);

    const violations = findSlashable(doc);
    assert.deepEqual(violations, [], `slashable pairs in Vigil's history:\n${describeViolations(violations)}`);
    const nBlocks = doc.data.reduce((n, d) => n + d.signed_blocks.length, 0);
    const nAtts = doc.data.reduce((n, d) => n + d.signed_attestations.length, 0);
    log(`no slashable pair among ${nBlocks} blocks and ${nAtts} attestations of ${doc.data.length} validators`);

    const vcErrors = countLines(logs.validator, /\berror\b/i);
    const sample = [...new Set(fs.readFileSync(logs.validator, "utf8").split("\n").filter((l) => /\berror\b/i.test(l)).map((l) => l.replace(/\x1b\[[0-9;]*m/g, "").replace(/^\S+ \S+\s+/, "").slice(0, 160)))];
    if (sample.length) log(`validator error lines (distinct, first 5):\n  ${sample.slice(0, 5).join("\n  ")}`);
    const refused = (c: Map<string, number>): string =>
      [...c].filter(([k]) => !k.endsWith("/signed")).map(([k, v]) => `${k}=${v}`).join(" ") || "none";
    log(`validator log: ${vcErrors} error lines; Vigil refusals: #1 ${refused(countsBeforeCrash)}; #2 ${refused(counts3)}`);
    log(`total ${since(Date.now())}`);
    ok = true;
  } finally {
    await cleanup();
    if (ok && !process.env.VIGIL_E2E_KEEP) {
      fs.rmSync(tmp, { recursive: true, force: true });
    } else if (ok) {
      console.log(`logs and data kept in ${tmp} (VIGIL_E2E_KEEP)`);
    } else {
      for (const [name, file] of Object.entries(logs)) {
        console.log(`\n----- ${name} log (tail of ${file}) -----\n${tail(file, 60)}`);
      }
      console.log(`\n----- timeline -----\n${tail(timelineFile, 200)}\nlogs and data kept in ${tmp}`);
    }
  }
});
