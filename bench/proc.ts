/** Linux /proc readings: CPU time (utime+stime), peak and current RSS, child processes, threads. */
import { execFileSync } from "node:child_process";
import fs from "node:fs";

export const CLK_TCK = ((): number => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

const read = (file: string): string | null => {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return null;
  }
};

/** comm and utime+stime (seconds) from a /proc/.../stat line; comm may hold spaces and parentheses. */
function parseStat(text: string): { comm: string; cpuS: number } {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  const f = text.slice(close + 2).split(" "); // f[0] is field 3 (state); utime = field 14, stime = field 15
  return { comm: text.slice(open + 1, close), cpuS: (Number(f[11]) + Number(f[12])) / CLK_TCK };
}

/** CPU seconds used so far by the process (all its threads), or null if it is gone. */
export function cpuSeconds(pid: number): number | null {
  const s = read(`/proc/${pid}/stat`);
  return s === null ? null : parseStat(s).cpuS;
}

/** PIDs of the processes named `comm` (e.g. "postgres": the server and its backends). */
export function pidsNamed(comm: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync("/proc")) {
    if (/^\d+$/.test(d) && read(`/proc/${d}/comm`)?.trim() === comm) out.push(Number(d));
  }
  return out;
}

/** CPU seconds per thread: tid → {comm, cpuS}. */
export function threadCpu(pid: number): Map<number, { comm: string; cpuS: number }> {
  const out = new Map<number, { comm: string; cpuS: number }>();
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    const s = read(`/proc/${pid}/task/${tid}/stat`);
    if (s !== null) out.set(Number(tid), parseStat(s));
  }
  return out;
}

/** Direct children of a process (of all its threads). */
export function childrenOf(pid: number): number[] {
  const kids: number[] = [];
  let tids: string[] = [];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return kids;
  }
  for (const tid of tids) {
    const s = read(`/proc/${pid}/task/${tid}/children`);
    if (s) kids.push(...s.trim().split(/\s+/).filter(Boolean).map(Number));
  }
  return kids;
}

/** VmHWM (peak RSS) and VmRSS in MiB, or null if the process is gone. */
export function memory(pid: number): { peakMiB: number; rssMiB: number } | null {
  const s = read(`/proc/${pid}/status`);
  if (s === null) return null;
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? NaN);
  return { peakMiB: kb("VmHWM") / 1024, rssMiB: kb("VmRSS") / 1024 };
}

/** PSS in MiB (/proc/<pid>/smaps_rollup: shared pages divided among the processes mapping them), or null. */
export function pss(pid: number): number | null {
  const s = read(`/proc/${pid}/smaps_rollup`);
  const kb = s === null ? null : /^Pss:\s+(\d+) kB/m.exec(s);
  return kb ? Number(kb[1]) / 1024 : null;
}

/** Scheduler state (R running, S sleeping, D disk wait, …) and wait channel of one thread. */
export function threadState(pid: number, tid: number): { state: string; wchan: string } | null {
  const s = read(`/proc/${pid}/task/${tid}/stat`);
  if (s === null) return null;
  const state = s.slice(s.lastIndexOf(")") + 2, s.lastIndexOf(")") + 3);
  return { state, wchan: (read(`/proc/${pid}/task/${tid}/wchan`) ?? "?").trim() || "-" };
}

/** /proc/<pid>/task/<tid>/schedstat: seconds on CPU and runnable but waiting for a CPU. */
function schedstat(pid: number, tid: number): { onCpuS: number; runqueueS: number } | null {
  const s = read(`/proc/${pid}/task/${tid}/schedstat`);
  if (s === null) return null;
  const [run, wait] = s.trim().split(/\s+/).map(Number);
  return { onCpuS: run / 1e9, runqueueS: wait / 1e9 };
}

/**
 * Where a thread's wall time goes until stopped: exact on-CPU and run-queue (waiting for a CPU)
 * shares from schedstat; the rest (sleeping) split by sampling its state and wait channel every
 * `everyMs` (D = uninterruptible, e.g. disk; S = sleeping, e.g. do_epoll_wait = idle event loop).
 */
export class StateSampler {
  private counts = new Map<string, number>();
  private n = 0;
  private timer: NodeJS.Timeout;
  private readonly t0 = performance.now();
  private readonly sched0: { onCpuS: number; runqueueS: number } | null;
  // Every 20 ms: two samplers at 2 ms used 0.09 cores of the two being measured, and woke 1,000 times a second.
  constructor(private readonly pid: number, private readonly tid: number, everyMs = 20) {
    this.sched0 = schedstat(pid, tid);
    this.timer = setInterval(() => this.sample(), everyMs);
  }
  private sample(): void {
    const s = threadState(this.pid, this.tid);
    if (s === null) return;
    this.n++;
    if (s.state === "R") return; // counted exactly by schedstat
    const key = `${s.state} ${s.wchan}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }
  /** Shares of wall time: "on CPU", "waiting for a CPU", then the sleeping states ("S do_epoll_wait", …) by sampling. */
  stop(): { samples: number; shares: { state: string; share: number }[] } {
    clearInterval(this.timer);
    const wall = (performance.now() - this.t0) / 1000;
    const s1 = schedstat(this.pid, this.tid);
    const shares: { state: string; share: number }[] = [];
    let asleep = 1;
    if (this.sched0 && s1) {
      const on = (s1.onCpuS - this.sched0.onCpuS) / wall;
      const rq = (s1.runqueueS - this.sched0.runqueueS) / wall;
      shares.push({ state: "on CPU", share: on }, { state: "waiting for a CPU", share: rq });
      asleep = Math.max(0, 1 - on - rq);
    }
    const sleeping = [...this.counts.values()].reduce((a, b) => a + b, 0);
    for (const [state, c] of this.counts) shares.push({ state, share: (asleep * c) / Math.max(1, sleeping) });
    return { samples: this.n, shares: shares.sort((a, b) => b.share - a.share) };
  }
}

/** Append 4 KiB + fdatasync, `n` times, in `dir`: the disk's durable-commit latency (ms). */
export function fdatasyncLatency(dir: string, n: number): number[] {
  const file = `${dir}/fsync-probe.bin`;
  const fd = fs.openSync(file, "w");
  const buf = Buffer.alloc(4096, 0xab);
  const out: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      fs.writeSync(fd, buf);
      fs.fdatasyncSync(fd);
      out.push(performance.now() - t);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(file, { force: true });
  }
  return out;
}

/** Machine-wide CPU seconds from /proc/stat: busy (not idle, not iowait), steal, iowait. */
export function systemCpu(): { busyS: number; stealS: number; iowaitS: number } {
  const f = (read("/proc/stat") ?? "cpu 0 0 0 0 0 0 0 0").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  return { busyS: (user + nice + system + irq + softirq + (steal ?? 0)) / CLK_TCK, stealS: (steal ?? 0) / CLK_TCK, iowaitS: (iowait ?? 0) / CLK_TCK };
}

/**
 * CPU cores used by processes other than `ours` (and this one) over `ms`: is the machine quiet?
 * (Machine-wide busy time minus the CPU time of our processes.)
 */
export async function otherLoad(ours: number[], ms: number): Promise<number> {
  const mine = (): number => ours.reduce((a, p) => a + (cpuSeconds(p) ?? 0), 0) + cpuSeconds(process.pid)!;
  const s0 = systemCpu().busyS;
  const m0 = mine();
  await new Promise((r) => setTimeout(r, ms));
  return (systemCpu().busyS - s0 - (mine() - m0)) / (ms / 1000);
}

/** Reset a process's VmHWM to its current RSS (/proc/<pid>/clear_refs "5", Linux ≥ 4.0); false if not possible. */
export function resetPeakRss(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** Cores used by other processes over an interval: machine-wide busy time minus ours and this process's. */
export class OthersMeter {
  private readonly t0 = performance.now();
  private readonly sys0 = systemCpu().busyS;
  private readonly self0 = cpuSeconds(process.pid) ?? 0;
  /** `oursS`: CPU seconds our other processes used over the interval. */
  stop(oursS: number): number {
    const wall = (performance.now() - this.t0) / 1000;
    return (systemCpu().busyS - this.sys0 - oursS - ((cpuSeconds(process.pid) ?? 0) - this.self0)) / wall;
  }
}
