/** Running the real CLI (dist/src/cli/index.js) as child processes: `vigil start`, one-shot commands. */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { childrenOf, cpuSeconds, memory } from "./proc.js";
import { NODE_FLAGS } from "../src/config/node-flags.js";

/** The repository root (this file runs as dist/bench/vigil.js). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const cliPath = path.join(repoRoot, "dist", "src", "cli", "index.js");
export const PASSPHRASE_ENV = "VIGIL_BENCH_PASSPHRASE";

const READY = /Vigil is signing on (http:\/\/\S+) for /;
const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of live) {
    try {
      process.kill(-p.pid!, "SIGKILL"); // a detached child's process group
    } catch {
      p.kill("SIGKILL");
    }
  }
});

/** This environment without anything that changes how Vigil starts. */
/**
 * VIGIL_BENCH_PROFILE=<dir>: every Vigil process (and the load generator) writes a V8 CPU profile there.
 * VIGIL_BENCH_NODE_ARGS="--trace-gc …": more node options for them (NODE_OPTIONS refuses most V8 ones).
 */
export const profileArgs = (): string[] => [
  ...(process.env.VIGIL_BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.VIGIL_BENCH_PROFILE}`] : []),
  ...(process.env.VIGIL_BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean),
];

export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // VIGIL_SIGNING_* tune the vault for an experiment; every other VIGIL_ variable is dropped.
  for (const [k, v] of Object.entries(process.env)) if ((!k.startsWith("VIGIL_") || k.startsWith("VIGIL_SIGNING_")) && k !== "LODESTAR_PRESET") env[k] = v;
  return { ...env, ...extra };
}

export interface Running {
  proc: ChildProcess;
  url: string;
  /** performance.now() just before spawn */
  t0: number;
  /** spawn → ready line (ms) */
  readyMs: number;
  output(): string;
  /** the HTTP process and its direct children (the vault) */
  pids(): { http: number; vault: number[] };
}

export async function startVigil(args: string[], env: Record<string, string>, timeoutMs: number): Promise<Running> {
  const t0 = performance.now();
  // As `npm start` runs it (package.json).
  const proc = spawn(process.execPath, [...profileArgs(), ...NODE_FLAGS, cliPath, "start", "--host", "127.0.0.1", "--port", "0", "--log-level", "warn", ...args], {
    cwd: repoRoot,
    env: cleanEnv(env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  live.add(proc);
  proc.once("exit", () => live.delete(proc));
  let out = "";
  const logTo = process.env.VIGIL_BENCH_LOG; // experiments: keep all of Vigil's output (e.g. with --trace-gc)
  const keep = (d: string): void => {
    out = (out + d).slice(-65536);
    if (logTo) fs.appendFileSync(logTo, d);
  };
  proc.stdout!.setEncoding("utf8").on("data", keep);
  proc.stderr!.setEncoding("utf8").on("data", keep);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => fail(`not ready within ${timeoutMs} ms`), timeoutMs);
    const onData = (): void => {
      const m = READY.exec(out);
      if (m) {
        clearTimeout(timer);
        proc.stdout!.off("data", onData);
        proc.off("exit", onExit);
        resolve(m[1]);
      }
    };
    const onExit = (code: number | null, sig: string | null): void => fail(`exited (code ${code}, signal ${sig})`);
    function fail(why: string): void {
      clearTimeout(timer);
      proc.kill("SIGKILL");
      reject(new Error(`vigil start ${why}:\n${out}`));
    }
    proc.stdout!.on("data", onData);
    proc.once("exit", onExit);
  });
  return { proc, url, t0, readyMs: performance.now() - t0, output: () => out, pids: () => ({ http: proc.pid!, vault: childrenOf(proc.pid!) }) };
}

export async function stopVigil(proc: ChildProcess, timeoutMs = 15_000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const done = new Promise<void>((r) => proc.once("exit", () => r()));
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  await done;
  clearTimeout(timer);
}

/**
 * Sign one attestation, retrying while Vigil answers 503 (locked, still loading) or refuses the
 * connection; resolves with the time (ms since `since`) of the first 200. Any other answer throws.
 */
export async function firstSignature(url: string, pubkey: string, body: string, since: number, timeoutMs: number): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  let last = "";
  while (performance.now() < deadline) {
    try {
      const r = await fetch(`${url}/api/v1/eth2/sign/${pubkey}`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json" }, body });
      const text = await r.text();
      if (r.status === 200) return performance.now() - since;
      if (r.status !== 503) throw new Error(`first sign request answered ${r.status}: ${text}`);
      last = `503 ${text}`;
    } catch (e) {
      if ((e as Error).message.startsWith("first sign request")) throw e;
      last = (e as Error).message;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`no signature within ${timeoutMs} ms (last: ${last})`);
}

/**
 * Run a one-shot `vigil ...args` to completion, with its peak RSS: from /usr/bin/time -v when
 * timeVerbose, else by polling /proc/<pid>/status VmHWM every 20 ms.
 */
export function runCli(args: string[], opts: { timeVerbose: boolean; timeoutMs: number }): Promise<{ code: number | null; stdout: string; stderr: string; wallMs: number; timedOut: boolean; peakMiB: number; cpuS: number }> {
  const argv = opts.timeVerbose ? ["/usr/bin/time", "-v", process.execPath, cliPath, ...args] : [process.execPath, cliPath, ...args];
  const t0 = performance.now();
  // its own process group, so that a timeout also kills node under /usr/bin/time
  const proc = spawn(argv[0], argv.slice(1), { cwd: repoRoot, env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true });
  live.add(proc);
  let peakKb = 0; // fallback without /usr/bin/time: poll VmHWM and the CPU time
  let cpuS = 0;
  const poll = opts.timeVerbose
    ? null
    : setInterval(() => {
        peakKb = Math.max(peakKb, (memory(proc.pid!)?.peakMiB ?? 0) * 1024);
        cpuS = Math.max(cpuS, cpuSeconds(proc.pid!) ?? 0);
      }, 20);
  let stdout = "";
  let stderr = "";
  let timedOut = false;
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout = (stdout + d).slice(-65536)));
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr = (stderr + d).slice(-65536)));
  const timer = setTimeout(() => {
    timedOut = true;
    process.kill(-proc.pid!, "SIGKILL");
  }, opts.timeoutMs);
  return new Promise((resolve, reject) => {
    proc.once("error", reject);
    proc.once("close", (code) => {
      clearTimeout(timer);
      if (poll) clearInterval(poll);
      live.delete(proc);
      const timeKb = /Maximum resident set size \(kbytes\): (\d+)/.exec(stderr)?.[1];
      const user = /User time \(seconds\): ([\d.]+)/.exec(stderr)?.[1];
      const sys = /System time \(seconds\): ([\d.]+)/.exec(stderr)?.[1];
      if (user !== undefined && sys !== undefined) cpuS = Number(user) + Number(sys);
      resolve({ code, stdout, stderr, wallMs: performance.now() - t0, timedOut, peakMiB: (timeKb ? Number(timeKb) : peakKb) / 1024, cpuS });
    });
  });
}
