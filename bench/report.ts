/** The result document (bench/results/<timestamp>.json) and its markdown rendering. */
import type { Ceiling } from "./ceiling.js";
import type { RunResult } from "./loadgen.js";
import type { Pipeline } from "./metrics.js";

export interface Cpu {
  /** CPU cores used on average (CPU seconds / wall seconds) */
  http: number;
  vault: number;
  loadgen: number;
  /** PostgreSQL's server processes on this machine (any run; the database of PostgreSQL-backed runs) */
  db: number;
  /** everything else on the machine (machine-wide busy time minus ours and PostgreSQL's); steal = the hypervisor's */
  others: number;
  steal: number;
  /** the vault's threads, busiest first ("main" = the vault's event-loop thread) */
  vaultThreads: { name: string; threads: number; cores: number }[];
  /** sampled every 20 ms: share of wall time per scheduler state + wait channel of each main thread */
  httpMainState: ThreadStates;
  vaultMainState: ThreadStates;
}

export interface ThreadStates {
  samples: number;
  shares: { state: string; share: number }[];
}

export interface SigningRun extends RunResult {
  name: string;
  /** offered requests/s (open loop) or requests in flight (closed loop) */
  offered: string;
  ratioToCeiling: number;
  /** saturation: blst's one-core median (µs) measured right before and after the run; absent in older results */
  adjacentBlst?: { beforeUs: number; afterUs: number };
  cpu: Cpu;
  /** Vigil's vigil_sign_duration_seconds histogram over the run (bucket bounds), if /metrics has it */
  server: { n: number; p50LeMs: number; p99LeMs: number; maxLeMs: number } | null;
  /** What the run's requests became inside the vault (its /metrics counters over the run); absent in older results */
  pipeline?: Pipeline | null;
}

export interface Startup {
  label: string;
  keys: number;
  /** spawn → ready line; spawn → first 200 of a sign request (ms) */
  readyMs: number;
  firstSignMs: number;
  extrapolated?: boolean;
  note?: string;
  /** cores used by other processes during the measurement */
  others?: number;
}

export interface Memory {
  httpPeakMiB: number;
  httpRssMiB: number;
  vaultPeakMiB: number;
  vaultRssMiB: number;
  totalPeakMiB: number;
  /** PSS now (shared pages, such as the node binary's code, counted once across processes); absent in older results */
  httpPssMiB?: number;
  vaultPssMiB?: number;
}

export interface SigningSection {
  keys: number;
  /** The protection store: SQLite in the data dir, or a shared PostgreSQL (--pg). */
  engine?: "sqlite" | "postgres";
  storeWriteMs: number;
  warmup: RunResult;
  runs: SigningRun[];
  /** right after the first signature (the unlock's peak included) and after all the runs */
  memoryAtStart: Memory;
  /** VmHWM was reset after memoryAtStart, so `memory` peaks are those of the signing phase alone */
  peakReset: boolean;
  memory: Memory;
  recordsInDb: number;
}

export interface Target {
  measure: string;
  target: string;
  measured: string;
  pass: boolean | null;
}

export interface Results {
  mode: "quick" | "full";
  command: string;
  startedAt: string;
  finishedAt: string;
  machine: Record<string, unknown>;
  settings: Record<string, unknown>;
  ceiling: Ceiling | null;
  /** cores used by other processes while the ceiling was measured */
  ceilingOthers?: number;
  signing: SigningSection[];
  startup: Startup[];
  interchange: {
    validators: number;
    blocksPerValidator: number;
    attestationsPerValidator: number;
    fileMiB: number;
    writeFileMs: number;
    exitCode: number | null;
    timedOut: boolean;
    wallMs: number;
    peakRssMiB: number;
    /** cores used by other processes during the import */
    others: number;
    output: string;
  } | null;
  targets: Target[];
  /** measurements that could not be made */
  failures: string[];
  /** measurements made under disturbance (other workloads on the machine) */
  warnings: string[];
}

/** Cores used by other workloads above which a run is flagged as disturbed. */
export const DISTURBED = 0.25;

const n0 = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–");
const f1 = (x: number): string => (Number.isFinite(x) ? x.toFixed(1) : "–");
const f2 = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : "–");
const ms = (x: number): string =>
  !Number.isFinite(x) ? "–" : x < 1000 ? `${x.toFixed(x < 10 ? 2 : 1)} ms` : x < 120_000 ? `${(x / 1000).toFixed(2)} s` : `${(x / 60_000).toFixed(1)} min`;
const pct = (x: number): string => (Number.isFinite(x) ? `${(x * 100).toFixed(0)} %` : "–");
const errs = (e: Record<string, number>): string => Object.entries(e).map(([k, v]) => `${v}× ${k}`).join(", ") || "0";
const row = (cells: (string | number)[]): string => `| ${cells.join(" | ")} |`;
const table = (head: string[], rows: (string | number)[][]): string[] => [row(head), row(head.map(() => "---")), ...rows.map(row)];

/** Peak RSS of the whole life of the instance (start-up and signing), HTTP + vault. */
export const overallPeakMiB = (s: SigningSection): number =>
  Math.max(s.memoryAtStart.httpPeakMiB, s.memory.httpPeakMiB) + Math.max(s.memoryAtStart.vaultPeakMiB, s.memory.vaultPeakMiB);

export function renderMarkdown(r: Results): string {
  const m = r.machine;
  const L: string[] = [];
  L.push(`# Vigil benchmark (${r.mode}) — ${r.startedAt}`, "");
  const sync = m.fdatasync4KiB as { medianMs: number; p99Ms: number } | undefined;
  L.push(
    `\`${r.command}\` · ${m.cpuModel} × ${m.cores} cores · node ${m.node} · commit ${m.gitCommit}${m.gitDirty ? " (+ uncommitted changes)" : ""} · ` +
      `data dir on ${m.dataDirFs}, append 4 KiB + fdatasync: median ${sync ? ms(sync.medianMs) : "?"}, p99 ${sync ? ms(sync.p99Ms) : "?"} · ${r.startedAt} → ${r.finishedAt}`,
    "",
  );

  L.push("## Targets", "");
  L.push(...table(["measure", "target", "measured", ""], r.targets.map((t) => [t.measure, t.target, t.measured, t.pass === null ? "n/a" : t.pass ? "✅ met" : "❌ missed"])), "");

  if (r.ceiling) {
    const c = r.ceiling;
    L.push("## Ceiling: raw blst `SecretKey.sign` (32-byte message)", "");
    L.push(
      `One core: median ${f1(c.oneCore.p50Ms * 1000)} µs (p99 ${f1(c.oneCore.p99Ms * 1000)} µs) over ${n0(c.signatures)} signatures = **${n0(c.oneCore.perSecond)} signatures/s** ` +
        `(count / wall time: ${n0(c.oneCore.wallPerSecond)}/s; other processes used ${f2(r.ceilingOthers ?? NaN)} cores meanwhile). ` +
        `× ${c.cores} cores = **${n0(c.ceilingPerSecond)} signatures/s** (the ceiling; measured on ${c.cores} threads at once: ${n0(c.measuredParallelPerSecond)}/s).` +
        (c.roundsUs ? ` Medians of the ${c.roundsUs.length} rounds (the fastest counts): ${c.roundsUs.map((u) => f1(u)).join(", ")} µs.` : ""),
      "",
    );
  }

  for (const s of r.signing) {
    L.push(`## Attestation signing, ${n0(s.keys)} keys (${engineLabel(s)})`, "");
    L.push(
      `Warm-up (one request per key, 64 in flight): ${n0(s.warmup.ok)}/${n0(s.warmup.sent)} signed, ${n0(s.warmup.okPerSecond)}/s, p99 ${ms(s.warmup.latency.p99Ms)}, errors ${errs(s.warmup.errors)}.`,
      "",
    );
    L.push(
      ...table(
        ["load", "offered", "signed/s", "of ceiling", "p50", "p99", "max", "errors", "client lag p99", "Vigil's p50 / p99", "CPU http", "CPU vault", "CPU loadgen", "CPU postgres", "CPU others"],
        s.runs.map((x) => [
          x.name,
          x.offered,
          x.burst ? "–" : n0(x.okPerSecond),
          x.burst ? "–" : pct(x.ratioToCeiling),
          ms(x.latency.p50Ms),
          ms(x.latency.p99Ms),
          ms(x.latency.maxMs),
          errs(x.errors),
          x.sendLag ? ms(x.sendLag.p99Ms) : "–",
          x.server ? `≤ ${x.server.p50LeMs} / ≤ ${x.server.p99LeMs} ms` : "–",
          f2(x.cpu.http),
          f2(x.cpu.vault),
          f2(x.cpu.loadgen),
          x.cpu.db === undefined ? "–" : x.cpu.db < 0.05 ? "≈0" : f2(x.cpu.db),
          (x.cpu.others < 0.05 ? "≈0" : f2(x.cpu.others)) + (x.cpu.others > DISTURBED ? " ⚠ disturbed" : ""),
        ]),
      ),
      "",
    );
    const piped = s.runs.filter((x) => x.pipeline);
    if (piped.length > 0) {
      const per = (a: number, b: number): string => (b > 0 ? f1(a / b) : "–");
      const rate = (x: SigningRun, n: number): string => {
        const r = n / (x.wallMs / 1000);
        return r < 10 ? f1(r) : n0(r);
      };
      L.push(
        "Inside the vault (its /metrics counters over each run): how many requests shared each step.",
        "",
        ...table(
          ["load", "decisions per group commit", "WAL fdatasyncs/s", "signatures per BLS batch", "audit entries per fdatasync", "audit anchor rewrites/s"],
          piped.map((x) => {
            const p = x.pipeline!;
            return [x.name, per(p.decisions, p.groupCommits), rate(x, p.walSyncs), per(p.signatures, p.blsBatches), per(p.auditRecords, p.auditSyncs), rate(x, p.anchorWrites)];
          }),
        ),
        "",
      );
    }
    const burst = s.runs.find((x) => x.burst)?.burst;
    if (burst) {
      const floorMs = r.ceiling ? (burst.size / r.ceiling.measuredParallelPerSecond) * 1000 : NaN;
      L.push(
        `Slot bursts: ${burst.completion.n} bursts of ${n0(burst.size)} attestations sent at once (one slot's worth for ${n0(s.keys)} validators on mainnet), ${burst.intervalMs / 1000} s apart: ` +
          `the last signature of a burst came ${ms(burst.completion.p50Ms)} after its start (median; max ${ms(burst.completion.maxMs)}); ` +
          `BLS alone on ${r.ceiling?.cores ?? "all"} threads would need ${ms(floorMs)}.`,
        "",
      );
    }
    const sat = s.runs.find((x) => x.name === "saturation");
    if (sat) {
      const states = (t: ThreadStates): string => t.shares.filter((x) => x.share >= 0.01).map((x) => `${x.state} ${pct(x.share)}`).join(", ");
      const us = (cores: number): string => f1((cores / sat.okPerSecond) * 1e6);
      const main = sat.cpu.vaultThreads.find((t) => t.name === "main")?.cores ?? 0;
      const db = s.engine === "postgres" ? (sat.cpu.db ?? 0) : 0;
      const perReq = (sat.cpu.http + sat.cpu.vault + sat.cpu.loadgen + db) / sat.okPerSecond;
      const cores = Number(r.machine.availableParallelism);
      L.push(
        `CPU per signed request at saturation: HTTP process ${us(sat.cpu.http)} µs, vault main thread ${us(main)} µs, other vault threads (BLS workers …) ${us(sat.cpu.vault - main)} µs, ` +
          `load generator ${us(sat.cpu.loadgen)} µs${db ? `, PostgreSQL ${us(db)} µs` : ""}; total ${f1(perReq * 1e6)} µs → CPU-bound limit on ${cores} cores ≈ ${n0(cores / perReq)}/s with the load generator on the same machine, ` +
          `≈ ${n0(cores / (perReq - sat.cpu.loadgen / sat.okPerSecond))}/s without it.`,
        "",
        ...(sat.adjacentBlst
          ? [
              `blst on one core right before / after this run: ${f1(sat.adjacentBlst.beforeUs)} / ${f1(sat.adjacentBlst.afterUs)} µs per signature (opening ceiling: ${f1((r.ceiling?.oneCore.p50Ms ?? NaN) * 1000)} µs): ` +
                `${pct(adjacentRatio(sat, r.ceiling?.cores ?? cores))} of the faster × ${r.ceiling?.cores ?? cores} cores` +
                (r.ceiling ? `; ${pct(sat.okPerSecond / r.ceiling.measuredParallelPerSecond)} of blst measured on ${r.ceiling.cores} threads at once (${n0(r.ceiling.measuredParallelPerSecond)}/s).` : "."),
              "",
            ]
          : []),
        `During saturation — vault threads (cores): ${sat.cpu.vaultThreads.map((t) => `${t.name} ${f2(t.cores)}`).join(", ")}.`,
        "",
        `Vault main thread's wall time (schedstat; sleeping split by sampled state + wait channel, D = uninterruptible e.g. disk, S do_epoll_wait = idle): ${states(sat.cpu.vaultMainState)}.`,
        "",
        `HTTP main thread: ${states(sat.cpu.httpMainState)}.`,
        "",
      );
    }
    const a = s.memoryAtStart;
    const b = s.memory;
    L.push(
      "Memory (VmHWM = peak, VmRSS = now, from /proc/<pid>/status):",
      "",
      ...table(
        ["RSS (MiB)", "HTTP peak", "HTTP now", "vault peak", "vault now", "sum of peaks"],
        [
          ["start-up, at the first signature", f1(a.httpPeakMiB), f1(a.httpRssMiB), f1(a.vaultPeakMiB), f1(a.vaultRssMiB), f1(a.totalPeakMiB)],
          [`${s.peakReset ? "signing phase (VmHWM reset after start-up)" : "whole run"}, after the runs (${n0(s.recordsInDb)} attestations in the database)`, f1(b.httpPeakMiB), f1(b.httpRssMiB), f1(b.vaultPeakMiB), f1(b.vaultRssMiB), f1(b.totalPeakMiB)],
          ["whole run (larger of the two, per process)", f1(Math.max(a.httpPeakMiB, b.httpPeakMiB)), "", f1(Math.max(a.vaultPeakMiB, b.vaultPeakMiB)), "", `**${f1(overallPeakMiB(s))}**`],
        ],
      ),
      "",
    );
    if (b.httpPssMiB !== undefined && b.vaultPssMiB !== undefined) {
      L.push(
        `The sum of RSS counts pages shared by the two processes (the node binary's code, ≈ 40–45 MiB) twice. Proportional set size after the runs (each shared page divided among the processes mapping it): HTTP ${f1(b.httpPssMiB)}, vault ${f1(b.vaultPssMiB)}, sum ${f1(b.httpPssMiB + b.vaultPssMiB)} MiB (sum of RSS now: ${f1(b.httpRssMiB + b.vaultRssMiB)} MiB).`,
        "",
      );
    }
  }

  if (r.startup.length) {
    L.push("## Start-up to ready-to-sign (spawn → first 200 of an ATTESTATION sign request)", "");
    const others = (x: Startup): string => (x.others === undefined ? "–" : (x.others < 0.05 ? "≈0" : f2(x.others)) + (x.others > DISTURBED ? " ⚠ disturbed" : ""));
    L.push(
      ...table(
        ["key source", "keys", "ready line", "first signature", "CPU others", ""],
        r.startup.map((x) => [x.label, n0(x.keys), x.extrapolated ? "–" : ms(x.readyMs), ms(x.firstSignMs), others(x), x.extrapolated ? `**extrapolated** ${x.note ?? ""}` : (x.note ?? "measured")]),
      ),
      "",
    );
  }

  if (r.interchange) {
    const x = r.interchange;
    L.push("## Interchange import (`vigil slashing import`, fresh data dir)", "");
    L.push(
      `${n0(x.validators)} validators × (${x.blocksPerValidator} blocks + ${x.attestationsPerValidator} attestations) = ${n0(x.validators * (x.blocksPerValidator + x.attestationsPerValidator))} records, ${f1(x.fileMiB)} MiB: ` +
        `**${ms(x.wallMs)}** wall, **peak RSS ${f1(x.peakRssMiB)} MiB**, exit ${x.timedOut ? "TIMED OUT" : x.exitCode}; other processes used ${f2(x.others)} cores meanwhile${x.others > DISTURBED ? " ⚠ disturbed" : ""}. Output: \`${x.output.trim().split("\n").pop()}\``,
      "",
    );
  }

  L.push("## Notes", "");
  L.push(
    "- All traffic on 127.0.0.1. Load generator: its own process, a keep-alive HTTP/1.1 client on raw sockets (at most 64 connections, one request in flight on each); unique non-slashable ATTESTATION requests, keys round-robin, target epoch +1 per key per request.",
    "- Open-loop latency is measured from each request's *scheduled* send time (client-side queueing included); closed-loop latency from the send; slot-burst latency from the burst's start (waiting for one of the load generator's 64 connections included). Every sample counts: nothing is capped or dropped. Any non-200 is an error. " +
      "\"client lag\" = how late the load generator issued requests against their schedule (part of the latency). " +
      "\"Vigil's p50 / p99\" = bucket bounds from Vigil's own `vigil_sign_duration_seconds` histogram (sign route handler in the HTTP process: vault round trip included, HTTP parsing excluded).",
    "- CPU = (utime+stime delta from /proc/<pid>/stat) / wall time, in cores. The load generator shares the machine's cores with Vigil. " +
      "\"CPU postgres\" = PostgreSQL's server processes on this machine (the store of the PostgreSQL runs). \"CPU others\" = machine-wide busy time (/proc/stat) minus ours (Vigil, load generator, this orchestrator) and PostgreSQL's: anything well above 0 means another workload disturbed that run.",
    "- Peak RSS = VmHWM from /proc/<pid>/status (HTTP process and its child, the vault); import peak RSS from /usr/bin/time -v when present.",
  );
  if (r.warnings.length) L.push("", "## Warnings", "", ...r.warnings.map((w) => "- " + w));
  if (r.failures.length) L.push("", "## Failures", "", ...r.failures.map((f) => "- " + f.split("\n")[0]));
  return L.join("\n") + "\n";
}

/** The run's rate against the ceiling measured next to it (the faster of the two rounds × cores). */
export function adjacentRatio(x: SigningRun, cores: number): number {
  if (!x.adjacentBlst) return NaN;
  const us = Math.min(x.adjacentBlst.beforeUs, x.adjacentBlst.afterUs);
  return x.okPerSecond / ((cores * 1e6) / us);
}

const engineLabel = (s: SigningSection): string =>
  s.engine === "postgres" ? "PostgreSQL, synchronous_commit on" : "SQLite WAL, each commit fdatasynced";

/** The targets, judged on the measurements. */
export function targets(r: Results): Target[] {
  const T: Target[] = [];
  for (const s of r.signing) {
    const pg = s.engine === "postgres";
    const sat = s.runs.find((x) => x.name === "saturation");
    if (sat && !pg) {
      // Judged on the lower of the two ratios: to the run's opening ceiling and to blst measured next to the run.
      const adj = adjacentRatio(sat, r.ceiling?.cores ?? Number(r.machine.availableParallelism));
      const ratio = Number.isFinite(adj) ? Math.min(adj, sat.ratioToCeiling) : sat.ratioToCeiling;
      const both = Number.isFinite(adj) ? ` (${(sat.ratioToCeiling * 100).toFixed(0)} % of the opening ceiling, ${(adj * 100).toFixed(0)} % of blst measured next to the run)` : ` (${(sat.ratioToCeiling * 100).toFixed(0)} %)`;
      T.push({ measure: `attestations/s at saturation, ${s.keys.toLocaleString("en-US")} keys`, target: "≥ 3,500/s and ≥ 70 % of ceiling", measured: `${Math.round(sat.okPerSecond).toLocaleString("en-US")}/s${both}`, pass: sat.okPerSecond >= 3500 && ratio >= 0.7 && Object.keys(sat.errors).length === 0 });
    }
    const at1k = s.runs.find((x) => x.name === "open 1000/s");
    const bound = pg ? 10 : 5;
    if (at1k) T.push({ measure: `p99 at 1,000 req/s, ${s.keys.toLocaleString("en-US")} keys, ${pg ? "PostgreSQL" : "SQLite"}`, target: `< ${bound} ms`, measured: `${at1k.latency.p99Ms.toFixed(2)} ms`, pass: at1k.latency.p99Ms < bound && Object.keys(at1k.errors).length === 0 });
  }
  const x = r.interchange;
  if (x) {
    const full = x.validators === 10_000 && x.blocksPerValidator + x.attestationsPerValidator === 100;
    T.push({ measure: `interchange import ${x.validators.toLocaleString("en-US")} × 100`, target: "< 10 s (10k × 100)", measured: `${(x.wallMs / 1000).toFixed(2)} s, peak RSS ${x.peakRssMiB.toFixed(0)} MiB`, pass: full ? x.exitCode === 0 && x.wallMs < 10_000 : null });
  }
  const s10 = r.signing.find((s) => s.keys === 10_000);
  const mb = (mib: number): number => (mib * 2 ** 20) / 1e6;
  if (s10) {
    const whole = overallPeakMiB(s10);
    const signing = s10.peakReset ? `; ${mb(s10.memory.totalPeakMiB).toFixed(0)} MB during the signing runs alone` : "";
    T.push({ measure: "peak RSS, 10,000 keys (HTTP + vault, sum of VmHWM)", target: "< 300 MB", measured: `${mb(whole).toFixed(0)} MB including start-up${signing}`, pass: mb(whole) < 300 });
  } else T.push({ measure: "peak RSS, 10,000 keys", target: "< 300 MB", measured: "not run", pass: null });
  const st = r.startup.find((x) => x.keys === 10_000 && x.label.startsWith("sealed store (keys.vigil)"));
  T.push(st ? { measure: "start-up to first signature, 10,000 keys in the sealed store", target: "< 5 s", measured: `${(st.firstSignMs / 1000).toFixed(2)} s`, pass: st.firstSignMs < 5000 } : { measure: "start-up, 10,000 keys sealed", target: "< 5 s", measured: "not run", pass: null });
  return T;
}
