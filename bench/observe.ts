/** Observing the runs: machine facts, the load generator process, CPU and memory of Vigil's processes. */
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Command, RunResult } from "./loadgen.js";
import { cpuSeconds, memory, pidsNamed, pss, StateSampler, systemCpu, threadCpu } from "./proc.js";
import type { Cpu, Memory } from "./report.js";
import { profileArgs, repoRoot, type Running } from "./vigil.js";

/** Machine facts for the result document. */
export function machine(repoRoot: string): Record<string, unknown> {
  const git = (...a: string[]): string => {
    try {
      return execFileSync("git", a, { cwd: repoRoot, encoding: "utf8" }).trim();
    } catch {
      return "?";
    }
  };
  const version = (pkg: string): string => JSON.parse(fs.readFileSync(path.join(repoRoot, "node_modules", pkg, "package.json"), "utf8")).version;
  let fsType = "?";
  try {
    fsType = execFileSync("df", ["-T", repoRoot], { encoding: "utf8" }).trim().split("\n")[1].split(/\s+/)[1];
  } catch {
    /* no df */
  }
  const dirty = git("status", "--porcelain");
  return {
    cores: os.cpus().length,
    availableParallelism: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? "?",
    memTotalMiB: Math.round(os.totalmem() / 2 ** 20),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    gitCommit: git("rev-parse", "--short=12", "HEAD"),
    gitDirty: dirty !== "" && dirty !== "?",
    gitDirtyFiles: dirty === "?" ? [] : dirty.split("\n").filter(Boolean),
    dataDirFs: fsType,
    blst: version("@chainsafe/blst"),
    betterSqlite3: version("better-sqlite3"),
    uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? "default (4)",
  };
}

/** The load generator process; one command at a time. */
export class LoadGen {
  readonly child: ChildProcess = fork(path.join(repoRoot, "dist", "bench", "loadgen.js"), [], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    execArgv: profileArgs(),
    serialization: "advanced", // keeps NaN (the summary of a run without one success)
  });
  call<T = RunResult>(cmd: Command): Promise<T> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`load generator exited (${code})`));
      this.child.once("exit", onExit);
      this.child.once("message", (m: { result?: T; error?: string }) => {
        this.child.off("exit", onExit);
        if (m.error) reject(new Error(m.error));
        else resolve(m.result as T);
      });
      this.child.send(cmd);
    });
  }
}

/**
 * Over `fn`: CPU of Vigil's processes, of the vault's threads and of the load generator, and the
 * sampled scheduler state of both Vigil main threads (running, disk wait, idle...).
 */
export async function withCpu<T>(v: Running, lg: LoadGen, fn: () => Promise<T>): Promise<{ value: T; cpu: Cpu }> {
  const { http, vault } = v.pids();
  const sum = (pids: number[]): number => pids.reduce((a, p) => a + (cpuSeconds(p) ?? 0), 0);
  // PostgreSQL (when it runs here) is part of what a PostgreSQL-backed run measures, not a disturbance.
  const db = pidsNamed("postgres");
  const dbCpu = (): number => db.reduce((a, p) => a + (cpuSeconds(p) ?? 0), 0);
  const b = { http: sum([http]), vault: sum(vault), lg: sum([lg.child.pid!]), db: dbCpu(), threads: threadCpu(vault[0] ?? -1) };
  const samplers = { http: new StateSampler(http, http), vault: new StateSampler(vault[0] ?? -1, vault[0] ?? -1) };
  const sys0 = systemCpu();
  const self0 = cpuSeconds(process.pid)!;
  const t0 = performance.now();
  const value = await fn();
  const wall = (performance.now() - t0) / 1000;
  const sys1 = systemCpu();
  const dbS = Math.max(0, dbCpu() - b.db);
  const ours = sum([http]) - b.http + (sum(vault) - b.vault) + (sum([lg.child.pid!]) - b.lg) + (cpuSeconds(process.pid)! - self0) + dbS;
  const vaultThreads = [...threadCpu(vault[0] ?? -1)]
    .map(([tid, t]) => ({ name: tid === vault[0] ? "main" : `${t.comm}[${tid}]`, threads: 1, cores: (t.cpuS - (b.threads.get(tid)?.cpuS ?? 0)) / wall }))
    .filter((g) => g.cores >= 0.005)
    .sort((x, y) => y.cores - x.cores);
  return {
    value,
    cpu: {
      http: (sum([http]) - b.http) / wall,
      vault: (sum(vault) - b.vault) / wall,
      loadgen: (sum([lg.child.pid!]) - b.lg) / wall,
      db: dbS / wall,
      others: (sys1.busyS - sys0.busyS - ours) / wall,
      steal: (sys1.stealS - sys0.stealS) / wall,
      vaultThreads,
      httpMainState: samplers.http.stop(),
      vaultMainState: samplers.vault.stop(),
    },
  };
}

/** VmHWM / VmRSS of the HTTP process and of the vault. */
export function vigilMemory(v: Running): Memory {
  const { http, vault } = v.pids();
  const hm = memory(http);
  const vm = vault.map(memory).filter((x) => x !== null);
  const vaultPeak = vm.reduce((a, x) => a + x.peakMiB, 0);
  return {
    httpPeakMiB: hm?.peakMiB ?? NaN,
    httpRssMiB: hm?.rssMiB ?? NaN,
    vaultPeakMiB: vaultPeak,
    vaultRssMiB: vm.reduce((a, x) => a + x.rssMiB, 0),
    totalPeakMiB: (hm?.peakMiB ?? NaN) + vaultPeak,
    httpPssMiB: pss(http) ?? NaN,
    vaultPssMiB: vault.reduce((a, p) => a + (pss(p) ?? 0), 0),
  };
}
