/**
 * Orchestration for the end-to-end devnet: free loopback ports, Lodestar processes in their own
 * process groups (logs to files, killed as a group; a process-exit hook SIGKILLs any group still
 * alive), a small beacon REST client, Vigil's metrics, and log tails.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import net from "node:net";

// ---------------------------------------------------------------------------------------------
// ports

/** `count` distinct free TCP ports on 127.0.0.1 (bound to port 0 together, then released). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(0, "127.0.0.1", () => resolve());
      });
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

// ---------------------------------------------------------------------------------------------
// process groups

export interface GroupProcess {
  name: string;
  proc: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive(): boolean;
}

const groups = new Set<GroupProcess>();
let exitHookInstalled = false;

function killGroupNow(g: GroupProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-g.pid, signal);
  } catch {
    /* the group is gone */
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort (an uncaught error, a runner that exits without our cleanup): nothing may outlive us.
  process.on("exit", () => {
    for (const g of groups) killGroupNow(g, "SIGKILL");
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      for (const g of groups) killGroupNow(g, "SIGKILL");
      process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
    });
  }
}

/** The environment for a child: ours minus node:test's marker, plus `extra`. */
export function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === "NODE_TEST_CONTEXT" || k.startsWith("VIGIL_") || k === "LODESTAR_PRESET" || k === "NODE_OPTIONS") continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/**
 * `node script ...args` as the leader of a new process group (detached), stdout and stderr
 * appended to `logFile`. Tracked until it exits.
 */
export function spawnGroup(name: string, script: string, args: string[], opts: { cwd: string; logFile: string; env: Record<string, string> }): GroupProcess {
  installExitHook();
  const fd = fs.openSync(opts.logFile, "a");
  let proc: ChildProcess;
  try {
    fs.writeSync(fd, `# ${new Date().toISOString()} ${name}: node ${script} ${args.join(" ")}\n`);
    proc = spawn(process.execPath, [script, ...args], { cwd: opts.cwd, env: childEnv(opts.env), stdio: ["ignore", fd, fd], detached: true });
  } finally {
    fs.closeSync(fd);
  }
  if (proc.pid === undefined) throw new Error(`cannot start ${name}`);
  const g: GroupProcess = {
    name,
    proc,
    pid: proc.pid,
    logFile: opts.logFile,
    exited: new Promise((resolve) => {
      proc.once("exit", (code, signal) => {
        groups.delete(g);
        resolve({ code, signal });
      });
      proc.once("error", () => {
        groups.delete(g);
        resolve({ code: null, signal: null });
      });
    }),
    alive: () => proc.exitCode === null && proc.signalCode === null,
  };
  groups.add(g);
  return g;
}

/** Signal the whole group, wait for the leader's exit; SIGKILL the group after `graceMs`. Always SIGKILLs leftovers. */
export async function stopGroup(g: GroupProcess, signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  killGroupNow(g, signal);
  const timer = setTimeout(() => killGroupNow(g, "SIGKILL"), graceMs);
  try {
    return await g.exited;
  } finally {
    clearTimeout(timer);
    killGroupNow(g, "SIGKILL"); // any straggler of the group
  }
}

/** Stop every tracked group (SIGTERM, then SIGKILL after `graceMs`). */
export async function stopAllGroups(graceMs = 5_000): Promise<void> {
  await Promise.all([...groups].map((g) => stopGroup(g, "SIGTERM", graceMs)));
}

// ---------------------------------------------------------------------------------------------
// processes by pid (Vigil's vault child)

/** Pids whose parent is `pid` (from /proc). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      // pid (comm) state ppid ...; comm may hold spaces and parentheses
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) out.push(Number(e));
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

export function pidAlive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// time

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Poll `probe` every `everyMs` until it returns a non-undefined value; throws `what` with the
 * last probe error once `deadline` (epoch ms) passes, or as soon as `abort()` returns a reason.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  opts: { deadline: number; everyMs?: number; abort?: () => string | undefined },
): Promise<T> {
  let lastError = "";
  for (;;) {
    const reason = opts.abort?.();
    if (reason) throw new Error(`${what}: ${reason}`);
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = (e as Error).message;
    }
    if (Date.now() >= opts.deadline) throw new Error(`timed out waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}`);
    await sleep(Math.min(opts.everyMs ?? 1000, Math.max(0, opts.deadline - Date.now())));
  }
}

// ---------------------------------------------------------------------------------------------
// beacon REST API

export class BeaconApi {
  constructor(readonly base: string) {}

  /** GET `path`: the parsed JSON, or undefined on 404. Throws on anything else. */
  async get<T = any>(path: string, timeoutMs = 3000): Promise<T | undefined> {
    const res = await fetch(this.base + path, { signal: AbortSignal.timeout(timeoutMs) });
    if (res.status === 404) {
      await res.body?.cancel();
      return undefined;
    }
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  }

  async must<T = any>(path: string, timeoutMs = 3000): Promise<T> {
    const v = await this.get<T>(path, timeoutMs);
    if (v === undefined) throw new Error(`GET ${path}: 404`);
    return v;
  }

  async finality(): Promise<{ justified: number; finalized: number }> {
    const r = await this.must("/eth/v1/beacon/states/head/finality_checkpoints");
    return { justified: Number(r.data.current_justified.epoch), finalized: Number(r.data.finalized.epoch) };
  }

  async headSlot(): Promise<number> {
    const r = await this.must("/eth/v1/beacon/headers/head");
    return Number(r.data.header.message.slot);
  }
}

// ---------------------------------------------------------------------------------------------
// Vigil's metrics

/** `vigil_sign_requests_total` as "TYPE/outcome" → count. */
export async function signCounts(vigilUrl: string): Promise<Map<string, number>> {
  const res = await fetch(`${vigilUrl}/metrics`, { signal: AbortSignal.timeout(3000) });
  if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
  const text = await res.text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^vigil_sign_requests_total\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    out.set(`${labels.type}/${labels.outcome}`, Number(m[2]));
  }
  return out;
}

export const countsText = (c: Map<string, number>): string =>
  [...c]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");

// ---------------------------------------------------------------------------------------------
// logs

/** The last `lines` lines of a file ("" if it does not exist); reads at most the last 256 KiB. */
export function tail(file: string, lines = 60): string {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch {
    return "";
  }
  try {
    const size = fs.fstatSync(fd).size;
    const len = Math.min(size, 256 * 1024);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    return buf
      .toString("utf8")
      .replace(/\x1b\[[0-9;]*m/g, "") // Lodestar colours its log lines
      .split("\n")
      .slice(-lines - 1)
      .join("\n");
  } finally {
    fs.closeSync(fd);
  }
}

/** Count the lines of `file` matching `re` (0 if it does not exist). */
export function countLines(file: string, re: RegExp): number {
  try {
    return fs
      .readFileSync(file, "utf8")
      .split("\n")
      .filter((l) => re.test(l)).length;
  } catch {
    return 0;
  }
}
