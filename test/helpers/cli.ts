/**
 * Driving the real `vigil` CLI (dist/src/cli/index.js) as a child process: a long-running
 * `vigil start`, one-shot commands, and EIP-2335 keystores to start it with.
 * Every process spawned here is tracked; killVigils() (and, as a last resort, process exit)
 * SIGKILLs whatever is still running, so a failing test leaks nothing.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { encryptKeystore, pubkeyFromSecret } from "../../src/keys/keystore.js";
import { repoRoot } from "./paths.js";

export const cliPath = path.join(repoRoot, "dist", "src", "cli", "index.js");

const READY = /Vigil is signing on (http:\/\/\S+) for /;
const MAX_CAPTURE = 1 << 20; // keep at most the last 1 MiB of a child's output

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const p of running) p.kill("SIGKILL");
});

/** The parent's environment minus anything that would change how Vigil starts (VIGIL_*, LODESTAR_PRESET, node:test's). */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith("VIGIL_") || k === "LODESTAR_PRESET" || k === "NODE_TEST_CONTEXT") continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

function launch(args: string[], env?: Record<string, string>, stdin?: string): { proc: ChildProcess; output(): string; stdout(): string; stderr(): string } {
  const proc = spawn(process.execPath, [cliPath, ...args], { cwd: repoRoot, env: childEnv(env), stdio: [stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
  if (stdin !== undefined) proc.stdin!.end(stdin);
  running.add(proc);
  proc.once("exit", () => running.delete(proc));
  proc.once("error", () => running.delete(proc));
  let all = "";
  let out = "";
  let err = "";
  const cap = (s: string): string => (s.length > MAX_CAPTURE ? s.slice(-MAX_CAPTURE) : s);
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
    out = cap(out + d);
    all = cap(all + d);
  });
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => {
    err = cap(err + d);
    all = cap(all + d);
  });
  return { proc, output: () => all, stdout: () => out, stderr: () => err };
}

export interface SpawnOptions {
  /** How long to wait for the ready line (default 30 s). */
  timeoutMs?: number;
  /** Extra environment variables for the child. */
  env?: Record<string, string>;
  /** Text written to the child's standard input (then closed); by default stdin is ignored. */
  stdin?: string;
}

export interface VigilProcess {
  url: string;
  proc: ChildProcess;
  /** Everything the process wrote so far (stdout and stderr interleaved). */
  output(): string;
  stdout(): string;
}

/**
 * `vigil start ...args` (on 127.0.0.1, port 0, unless args say otherwise); resolves once it prints
 * its ready line. Rejects, with the captured output, if it exits first or is not ready in time.
 */
export async function spawnVigil(args: string[], opts: SpawnOptions = {}): Promise<VigilProcess> {
  const full = ["start", ...args];
  if (!args.includes("--host")) full.push("--host", "127.0.0.1");
  if (!args.includes("--port")) full.push("--port", "0");
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const child = launch(full, opts.env, opts.stdin);
  const { proc } = child;
  const url = await new Promise<string>((resolve, reject) => {
    const cleanup = (): void => {
      clearTimeout(timer);
      proc.stdout!.off("data", onData);
      proc.off("exit", onExit);
      proc.off("error", onError);
    };
    const onData = (): void => {
      const m = READY.exec(child.stdout());
      if (m) {
        cleanup();
        resolve(m[1]);
      }
    };
    const onExit = (code: number | null, signal: string | null): void => {
      cleanup();
      reject(new Error(`vigil start exited (code ${code}, signal ${signal}) before it was ready:\n${child.output()}`));
    };
    const onError = (e: Error): void => {
      cleanup();
      proc.kill("SIGKILL");
      reject(new Error(`cannot run vigil start: ${e.message}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      proc.kill("SIGKILL");
      reject(new Error(`vigil start was not ready within ${timeoutMs} ms:\n${child.output()}`));
    }, timeoutMs);
    proc.stdout!.on("data", onData);
    proc.once("exit", onExit);
    proc.once("error", onError);
  });
  if (!/^http:\/\/127\.0\.0\.1:\d+$/.test(url)) {
    proc.kill("SIGKILL");
    throw new Error(`vigil start listens on ${url}, not on 127.0.0.1`);
  }
  return { url, proc, output: child.output, stdout: child.stdout };
}

/** Resolves when `proc` has exited (at once if it already has). */
export function exited(proc: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve({ code: proc.exitCode, signal: proc.signalCode });
  return new Promise((resolve) => proc.once("exit", (code, signal) => resolve({ code, signal })));
}

/** Send `signal` and wait for the exit; SIGKILL if it has not exited after `timeoutMs`. */
export async function stopVigil(
  proc: ChildProcess,
  signal: NodeJS.Signals = "SIGTERM",
  timeoutMs = 10_000,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const done = exited(proc);
  if (proc.exitCode === null && proc.signalCode === null) {
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
    try {
      return await done;
    } finally {
      clearTimeout(timer);
    }
  }
  return done;
}

/** SIGKILL every Vigil process spawned here that is still running, and wait for them to exit. */
export async function killVigils(): Promise<void> {
  const procs = [...running];
  for (const p of procs) p.kill("SIGKILL");
  await Promise.all(procs.map(exited));
}

export interface RunResult {
  /** Exit code; null if the process was killed (see signal, timedOut). */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/** `vigil ...args` to completion (SIGKILLed after `timeoutMs`, default 30 s). */
export async function runVigil(args: string[], opts: SpawnOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const child = launch(args, opts.env, opts.stdin);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.proc.kill("SIGKILL");
  }, timeoutMs);
  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.proc.once("error", reject);
      // 'close' (not 'exit'): all output has been read.
      child.proc.once("close", (code, signal) => resolve({ code, signal }));
    });
    return { code, signal, timedOut, stdout: child.stdout(), stderr: child.stderr() };
  } finally {
    clearTimeout(timer);
  }
}

export interface WrittenKeystores {
  dir: string;
  passwordFile: string;
  pubkeys: string[];
}

/**
 * Write one pbkdf2 EIP-2335 keystore per secret (`keystore-<i>.json`) into `dir`, and `password.txt`
 * (the password, with a trailing newline) beside them, for `--keystores dir --password-file`.
 */
export async function writeKeystores(dir: string, secrets: Uint8Array[], password: string): Promise<WrittenKeystores> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keystores = await Promise.all(secrets.map((s) => encryptKeystore(s, password, { kdf: "pbkdf2" })));
  keystores.forEach((ks, i) => fs.writeFileSync(path.join(dir, `keystore-${i}.json`), JSON.stringify(ks, null, 2), { mode: 0o600 }));
  const passwordFile = path.join(dir, "password.txt");
  fs.writeFileSync(passwordFile, password + "\n", { mode: 0o600 });
  return { dir, passwordFile, pubkeys: secrets.map(pubkeyFromSecret) };
}
