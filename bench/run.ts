/**
 * `npm run bench` (= npm run build && node dist/bench/run.js [--quick] [--keys 1000,10000] [--duration 10]
 * [--rates 500,1000,2000] [--concurrency 64] [--skip signing,keystores,interchange] [--quiet-wait <s>] [--keep]):
 * the ceiling, attestation signing under load, start-up, interchange import and peak RSS of Vigil.
 * Writes bench/results/<timestamp>.{json,md} and bench/results/latest.md, and prints the table.
 */
import fs from "node:fs";
import path from "node:path";
import { measureCeiling, probeOneCore } from "./ceiling.js";
import { histogramDelta, pipelineDelta, scrapePipeline, scrapeSignHistogram } from "./metrics.js";
import { writeInterchange } from "./interchange.js";
import { randomSecrets, writeKeystoreDir, writeSealedStore } from "./keys.js";
import type { Command } from "./loadgen.js";
import { LoadGen, machine, vigilMemory, withCpu } from "./observe.js";
import { cpuSeconds, fdatasyncLatency, otherLoad, OthersMeter, resetPeakRss } from "./proc.js";
import { summarize } from "./stats.js";
import { DISTURBED, renderMarkdown, targets, type Results, type SigningSection, type Startup } from "./report.js";
import { attestationBody, attestationTemplate, type Template } from "./requests.js";
import { firstSignature, PASSPHRASE_ENV, repoRoot, runCli, startVigil, stopVigil, type Running } from "./vigil.js";

const argv = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = argv.includes("--quick");
const S = {
  keyCounts: (flag("--keys") ?? (quick ? "1000" : "1000,10000")).split(",").map(Number),
  durationMs: Number(flag("--duration") ?? (quick ? 3 : 10)) * 1000,
  /** --rates: the open-loop offered loads (req/s); saturation is measured after them. */
  rates: (flag("--rates") ?? "500,1000,2000").split(",").map(Number),
  /** --concurrency: requests in flight during the warm-up and the saturation run. */
  concurrency: Number(flag("--concurrency") ?? 64),
  /** Slot bursts: a slot's attestations (keys / 32: each validator attests once per 32-slot epoch on mainnet) sent at once. */
  burst: { intervalMs: 4000, count: quick ? 3 : 6 },
  ceilingSignatures: quick ? 1000 : 3000,
  /** blst rounds right before and after each saturation run */
  probeSignatures: 500,
  scryptKeystores: quick ? [2, 8] : [4, 16],
  repeats: quick ? 1 : 3, // scrypt keystore start-ups (median)
  pbkdf2Keystores: quick ? 50 : 1000,
  interchange: { validators: quick ? 1000 : 10_000, blocks: 50, attestations: 50 },
  skip: (flag("--skip") ?? "").split(",").filter(Boolean), // signing, keystores, interchange
  /** --pg <url>: also measure signing with the shared PostgreSQL store (a fresh schema per run). */
  pgUrl: flag("--pg"),
  quietCores: DISTURBED,
  quietWaitMs: Number(flag("--quiet-wait") ?? (quick ? 30 : 180)) * 1000, // in all
  startTimeoutMs: 120_000,
  importTimeoutMs: 300_000,
};
const PASSPHRASE = "vigil bench passphrase";
const stamp = new Date().toISOString().replace(/[:.]/g, "-");
const work = path.join(repoRoot, "bench", "work", stamp);
const resultsDir = path.join(repoRoot, "bench", "results");
const log = (s: string): void => void process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

/**
 * Other processes on this machine skew every number here: before each measurement wait until they
 * use less than S.quietCores, for at most S.quietWaitMs over the whole run (the run stays bounded),
 * then go on either way. The load of others is reported per run anyway.
 */
let quietBudgetMs = S.quietWaitMs;
async function waitQuiet(what: string, out: Results, ours: number[] = []): Promise<void> {
  for (;;) {
    const t0 = Date.now();
    const other = await otherLoad(ours, 1000);
    if (other < S.quietCores) return;
    quietBudgetMs -= Date.now() - t0;
    if (quietBudgetMs <= 0) {
      out.warnings.push(`machine busy before ${what}: other processes used ${other.toFixed(2)} cores; measured anyway`);
      return log(`machine still busy (${other.toFixed(2)} cores used by others): measuring ${what} anyway`);
    }
    log(`waiting for a quiet machine before ${what}: others use ${other.toFixed(2)} cores (${Math.round(quietBudgetMs / 1000)} s of waiting left)`);
    await new Promise((r) => setTimeout(r, 2000));
    quietBudgetMs -= 2000;
  }
}

/** CPU seconds used by a Vigil instance since it was spawned (HTTP process + vault). */
const vigilCpuS = (v: Running): number => {
  const { http, vault } = v.pids();
  return [http, ...vault].reduce((a, p) => a + (cpuSeconds(p) ?? 0), 0);
};

async function stopAll(v: Running): Promise<void> {
  const vault = v.pids().vault;
  await stopVigil(v.proc);
  const deadline = Date.now() + 10_000; // the vault exits after its parent
  while (vault.some((p) => fs.existsSync(`/proc/${p}`)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}

/** Start Vigil on a sealed store of `keys` keys: start-up, warm-up, the loads, memory, then a restart. */
async function signingSection(keys: number, t: Template, lg: LoadGen, ceiling: number, out: Results, engine: "sqlite" | "postgres" = "sqlite"): Promise<void> {
  const dataDir = path.join(work, `sealed-${keys}-${engine}`);
  log(`${keys} keys: generating and sealing`);
  const { pubkeys, ms: storeWriteMs } = await writeSealedStore(dataDir, randomSecrets(keys), PASSPHRASE);
  const args = ["--network", "minimal", "--data-dir", dataDir, "--unlock", `env:${PASSPHRASE_ENV}`];
  if (engine === "postgres") args.push("--db-url", S.pgUrl!, "--db-schema", `bench_${stamp.toLowerCase().replace(/[^a-z0-9]/g, "_")}_${keys}`);
  const env = { [PASSPHRASE_ENV]: PASSPHRASE };

  await waitQuiet(`${keys} keys`, out);
  log(`${keys} keys: start-up`);
  let meter = new OthersMeter();
  let v = await startVigil(args, env, S.startTimeoutMs);
  try {
    const first = await firstSignature(v.url, pubkeys[0], attestationBody(t, 1, 0xb000_0001), v.t0, S.startTimeoutMs);
    out.startup.push({ label: "sealed store (keys.vigil), empty database", keys, readyMs: v.readyMs, firstSignMs: first, others: meter.stop(vigilCpuS(v)) });
    const memAtStart = vigilMemory(v);
    // From here VmHWM is the peak of the signing phase alone (the unlock's scrypt buffer is in memAtStart).
    const { http: h0, vault: v0 } = v.pids();
    const peakReset = [h0, ...v0].map(resetPeakRss).every(Boolean);
    await lg.call({ op: "init", url: v.url, pubkeys, template: t, firstEpoch: 2 });
    log(`${keys} keys: warm-up (one request per key)`);
    const warmup = await lg.call({ op: "each", concurrency: S.concurrency });
    const section: SigningSection = { keys, engine, storeWriteMs, warmup, runs: [], memoryAtStart: memAtStart, peakReset, memory: null as never, recordsInDb: 1 + warmup.ok };
    out.signing.push(section);
    const loads: { name: string; offered: string; cmd: Command }[] = [
      ...S.rates.map((rate) => ({ name: `open ${rate}/s`, offered: `${rate}/s`, cmd: { op: "open", rate, durationMs: S.durationMs } as Command })),
      { name: "saturation", offered: `${S.concurrency} in flight`, cmd: { op: "closed", concurrency: S.concurrency, durationMs: S.durationMs } },
      {
        name: "slot bursts",
        offered: `${Math.ceil(keys / 32)} at once every ${S.burst.intervalMs / 1000} s`,
        cmd: { op: "burst", size: Math.ceil(keys / 32), intervalMs: S.burst.intervalMs, count: S.burst.count },
      },
    ];
    let maxEpoch = warmup.maxTargetEpoch;
    for (const l of loads) {
      const { http, vault } = v.pids();
      await waitQuiet(`${keys} keys ${l.name}`, out, [http, ...vault, lg.child.pid!]);
      log(`${keys} keys: ${l.name}${l.cmd.op === "burst" ? ` (${l.cmd.count} × ${l.cmd.size})` : ` for ${S.durationMs / 1000} s`}`);
      const closed = l.cmd.op === "closed";
      // blst's speed right before and after a saturation run (Vigil idle meanwhile): the host's speed drifts.
      const blstBeforeUs = closed ? probeOneCore(S.probeSignatures) : NaN;
      const before = await scrapeSignHistogram(v.url);
      const pipeBefore = await scrapePipeline(v.url);
      const { value: r, cpu } = await withCpu(v, lg, () => lg.call(l.cmd));
      const server = histogramDelta(before, await scrapeSignHistogram(v.url));
      const pipeline = pipelineDelta(pipeBefore, await scrapePipeline(v.url));
      const adjacent = closed ? { beforeUs: blstBeforeUs, afterUs: probeOneCore(S.probeSignatures) } : undefined;
      section.runs.push({ ...r, name: l.name, offered: l.offered, ratioToCeiling: r.okPerSecond / ceiling, adjacentBlst: adjacent, cpu, server, pipeline });
      section.recordsInDb += r.ok;
      maxEpoch = r.maxTargetEpoch;
      if (r.burst) log(`  bursts of ${r.burst.size}: last signature after ${r.burst.completion.p50Ms.toFixed(1)} ms (median), ${r.burst.completion.maxMs.toFixed(1)} ms (max)`);
      log(`  ${Math.round(r.okPerSecond)} signed/s, p50 ${r.latency.p50Ms.toFixed(2)} ms, p99 ${r.latency.p99Ms.toFixed(2)} ms, errors ${JSON.stringify(r.errors)}, CPU http ${cpu.http.toFixed(2)} vault ${cpu.vault.toFixed(2)} loadgen ${cpu.loadgen.toFixed(2)} others ${cpu.others.toFixed(2)}`);
    }
    section.memory = vigilMemory(v);
    await stopAll(v);

    log(`${keys} keys: restart with ${section.recordsInDb} attestations in the database`);
    meter = new OthersMeter();
    v = await startVigil(args, env, S.startTimeoutMs);
    const again = await firstSignature(v.url, pubkeys[0], attestationBody(t, maxEpoch + 1, 0xb000_0002), v.t0, S.startTimeoutMs);
    out.startup.push({ label: `sealed store, restart (${section.recordsInDb.toLocaleString("en-US")} attestations in the database)`, keys, readyMs: v.readyMs, firstSignMs: again, others: meter.stop(vigilCpuS(v)) });
  } finally {
    await stopAll(v);
  }
}

/** Start-up on EIP-2335 keystore directories: measured (median of S.repeats), and extrapolated linearly for scrypt. */
async function keystoreStartup(t: Template, out: Results): Promise<void> {
  const measure = async (kdf: "scrypt" | "pbkdf2", n: number, repeats: number): Promise<Startup> => {
    log(`keystores: writing ${n} ${kdf} keystores`);
    const dir = path.join(work, `keystores-${kdf}-${n}`);
    const { pubkeys, passwordFile } = await writeKeystoreDir(dir, n, kdf, "keystore password");
    const runs: { readyMs: number; firstSignMs: number; others: number }[] = [];
    for (let i = 0; i < repeats; i++) {
      log(`keystores: start-up on ${n} ${kdf} keystores (${i + 1}/${repeats})`);
      const meter = new OthersMeter();
      const v = await startVigil(["--network", "minimal", "--data-dir", path.join(work, `data-${kdf}-${n}-${i}`), "--keystores", dir, "--password-file", passwordFile], {}, S.startTimeoutMs + n * 1000);
      try {
        const firstSignMs = await firstSignature(v.url, pubkeys[0], attestationBody(t, 1, 0xb000_0003), v.t0, S.startTimeoutMs);
        runs.push({ readyMs: v.readyMs, firstSignMs, others: meter.stop(vigilCpuS(v)) });
      } finally {
        await stopAll(v);
      }
    }
    const med = (xs: number[]): number => summarize(xs).p50Ms;
    const all = runs.map((r) => (r.firstSignMs / 1000).toFixed(2)).join(", ");
    return {
      label: `EIP-2335 keystores, ${kdf} (default cost)`,
      keys: n,
      readyMs: med(runs.map((r) => r.readyMs)),
      firstSignMs: med(runs.map((r) => r.firstSignMs)),
      others: Math.max(...runs.map((r) => r.others)),
      note: runs.length > 1 ? `median of ${runs.length} (${all} s); CPU others = the most of the ${runs.length}` : undefined,
    };
  };
  await waitQuiet("keystore start-up", out);
  const [a, b] = S.scryptKeystores;
  const small = await measure("scrypt", a, S.repeats);
  const big = await measure("scrypt", b, S.repeats);
  out.startup.push(small, big);
  const slope = (big.firstSignMs - small.firstSignMs) / (b - a);
  for (const n of [1000, 10_000]) {
    out.startup.push(
      slope > 0
        ? { label: "EIP-2335 keystores, scrypt (default cost)", keys: n, readyMs: NaN, firstSignMs: big.firstSignMs + slope * (n - b), extrapolated: true, note: `(linear from ${a} and ${b} keystores: ${(slope / 1000).toFixed(3)} s per keystore)` }
        : { label: "EIP-2335 keystores, scrypt (default cost)", keys: n, readyMs: NaN, firstSignMs: NaN, extrapolated: true, note: `(not possible: ${b} keystores started no slower than ${a}; too noisy)` },
    );
  }
  if (S.pbkdf2Keystores > 0) out.startup.push(await measure("pbkdf2", S.pbkdf2Keystores, 1));
}

async function interchangeImport(t: Template, out: Results): Promise<void> {
  const { validators, blocks, attestations } = S.interchange;
  const file = path.join(work, "interchange.json");
  log(`interchange: writing ${validators} validators × ${blocks + attestations} records`);
  const w = await writeInterchange(file, t.fork_info.genesis_validators_root, validators, blocks, attestations);
  const dataDir = path.join(work, "import");
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const timeVerbose = fs.existsSync("/usr/bin/time");
  await waitQuiet("interchange import", out);
  log(`interchange: vigil slashing import (${(w.bytes / 2 ** 20).toFixed(0)} MiB)`);
  const meter = new OthersMeter();
  const r = await runCli(["slashing", "import", file, "--data-dir", dataDir], { timeVerbose, timeoutMs: S.importTimeoutMs });
  const others = meter.stop(r.cpuS);
  const expected = `${validators} validators (${validators} new), ${validators * blocks} blocks (0 already known), ${validators * attestations} attestations (0 already known)`;
  if (r.code !== 0 || !r.stdout.includes(expected)) out.failures.push(`interchange import: exit ${r.code}${r.timedOut ? " (timed out)" : ""}, expected "${expected}", got: ${r.stdout.trim()} ${r.stderr.split("\n")[0]}`);
  out.interchange = {
    validators,
    blocksPerValidator: blocks,
    attestationsPerValidator: attestations,
    fileMiB: w.bytes / 2 ** 20,
    writeFileMs: w.ms,
    exitCode: r.code,
    timedOut: r.timedOut,
    wallMs: r.wallMs,
    peakRssMiB: r.peakMiB,
    others,
    output: r.stdout.trim() || r.stderr.trim(),
  };
  fs.rmSync(file, { force: true });
}

async function main(): Promise<void> {
  const results: Results = {
    mode: quick ? "quick" : "full",
    command: `npm run bench${argv.length ? " -- " + argv.join(" ") : ""}`,
    startedAt: new Date().toISOString(),
    finishedAt: "",
    machine: machine(repoRoot),
    settings: S,
    ceiling: null,
    signing: [],
    startup: [],
    interchange: null,
    targets: [],
    failures: [],
    warnings: [],
  };
  fs.mkdirSync(work, { recursive: true, mode: 0o700 });
  const sync = summarize(fdatasyncLatency(work, 200));
  results.machine.fdatasync4KiB = { medianMs: sync.p50Ms, p99Ms: sync.p99Ms, maxMs: sync.maxMs };
  log(`disk: append 4 KiB + fdatasync: median ${sync.p50Ms.toFixed(2)} ms, p99 ${sync.p99Ms.toFixed(2)} ms`);
  const template = attestationTemplate();
  const step = async (name: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e) {
      log(`FAILED ${name}: ${(e as Error).stack}`);
      results.failures.push(`${name}: ${(e as Error).message}`);
    }
  };
  await waitQuiet("the ceiling", results);
  log(`ceiling: ${S.ceilingSignatures} signatures`);
  await step("ceiling", async () => {
    const meter = new OthersMeter();
    results.ceiling = await measureCeiling(S.ceilingSignatures);
    results.ceilingOthers = meter.stop(0);
  });
  const ceiling = results.ceiling?.ceilingPerSecond ?? NaN;
  const lg = new LoadGen();
  if (!S.skip.includes("signing")) for (const keys of S.keyCounts) await step(`signing with ${keys} keys`, () => signingSection(keys, template, lg, ceiling, results));
  if (!S.skip.includes("signing") && S.pgUrl) {
    for (const keys of S.keyCounts) await step(`signing with ${keys} keys on PostgreSQL`, () => signingSection(keys, template, lg, ceiling, results, "postgres"));
  }
  lg.child.disconnect();
  if (!S.skip.includes("keystores")) await step("keystore start-up", () => keystoreStartup(template, results));
  if (!S.skip.includes("interchange")) await step("interchange import", () => interchangeImport(template, results));
  results.finishedAt = new Date().toISOString();
  results.targets = targets(results);

  const md = renderMarkdown(results);
  fs.mkdirSync(resultsDir, { recursive: true });
  fs.writeFileSync(path.join(resultsDir, `${stamp}.json`), JSON.stringify(results, null, 2) + "\n");
  fs.writeFileSync(path.join(resultsDir, `${stamp}.md`), md);
  fs.writeFileSync(path.join(resultsDir, "latest.md"), md);
  if (!argv.includes("--keep")) {
    fs.rmSync(work, { recursive: true, force: true });
    if (fs.readdirSync(path.dirname(work)).length === 0) fs.rmdirSync(path.dirname(work));
  }
  process.stdout.write("\n" + md + `\nwritten: bench/results/${stamp}.json, bench/results/${stamp}.md, bench/results/latest.md\n`);
  if (results.failures.length) process.exitCode = 1;
}

await main();
