/**
 * Lodestar v1.5.1 (the consensus client of the end-to-end devnet), installed once into
 * `<repoRoot>/.cache/lodestar` from the pinned recipe in `<shared>/peers/lodestar`
 * (package.json + package-lock.json, `npm ci`). An install is reused when its lodestar binary
 * exists and its copied lock is byte-identical to the recipe's; otherwise it is redone.
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { repoRoot, sharedDir } from "../helpers/paths.js";

export const lodestarRecipeDir = path.join(sharedDir, "peers", "lodestar");
export const lodestarDir = path.join(repoRoot, ".cache", "lodestar");
export const lodestarBin = path.join(lodestarDir, "node_modules", ".bin", "lodestar");

export interface LodestarInstall {
  /** The lodestar CLI entry (the resolved target of node_modules/.bin/lodestar): run it with `node`. */
  cli: string;
  /** true when `npm ci` ran, false when the existing install was reused. */
  installed: boolean;
  ms: number;
}

const sameBytes = (a: string, b: string): boolean => {
  try {
    return fs.readFileSync(a).equals(fs.readFileSync(b));
  } catch {
    return false;
  }
};

/** Copy `from` over `to` (the recipe files are read-only, and copies keep the mode: replace, then make writable). */
function copyOver(from: string, to: string): void {
  fs.rmSync(to, { force: true });
  fs.copyFileSync(from, to);
  fs.chmodSync(to, 0o644);
}

/**
 * Make sure Lodestar is installed in `dir` (default `.cache/lodestar`); `npm ci --no-audit --no-fund` there when it
 * is missing or its lock differs from the recipe's. `log` gets one line saying what happened and
 * how long it took. Throws (with the tail of npm's output) when npm fails or times out.
 */
export async function ensureLodestar(log: (msg: string) => void, timeoutMs = 300_000, dir = lodestarDir): Promise<LodestarInstall> {
  const t0 = Date.now();
  const bin = path.join(dir, "node_modules", ".bin", "lodestar");
  const recipeLock = path.join(lodestarRecipeDir, "package-lock.json");
  const recipePkg = path.join(lodestarRecipeDir, "package.json");
  if (!fs.existsSync(recipeLock) || !fs.existsSync(recipePkg)) {
    throw new Error(`no Lodestar recipe at ${lodestarRecipeDir} (package.json + package-lock.json); set VIGIL_SHARED_DIR`);
  }
  const lock = path.join(dir, "package-lock.json");
  const pkg = path.join(dir, "package.json");
  if (fs.existsSync(bin) && sameBytes(lock, recipeLock) && sameBytes(pkg, recipePkg)) {
    const ms = Date.now() - t0;
    log(`lodestar: reusing ${dir} (lock unchanged), checked in ${ms} ms`);
    return { cli: fs.realpathSync(bin), installed: false, ms };
  }

  log(`lodestar: installing into ${dir} (npm ci) ...`);
  fs.mkdirSync(dir, { recursive: true });
  copyOver(recipePkg, pkg);
  copyOver(recipeLock, lock);
  const logFile = path.join(dir, "npm-ci.log");
  const out = fs.openSync(logFile, "w");
  try {
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const proc = spawn("npm", ["ci", "--no-audit", "--no-fund"], { cwd: dir, env, stdio: ["ignore", out, out], detached: true });
    const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }>((resolve, reject) => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          process.kill(-proc.pid!, "SIGKILL");
        } catch {
          /* already gone */
        }
      }, timeoutMs);
      proc.once("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot run npm: ${e.message}`));
      });
      proc.once("exit", (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, timedOut });
      });
    });
    if (result.code !== 0 || !fs.existsSync(bin)) {
      const tail = fs.readFileSync(logFile, "utf8").split("\n").slice(-40).join("\n");
      // A failed install must not be mistaken for a good one next time.
      fs.rmSync(lock, { force: true });
      throw new Error(
        `npm ci in ${dir} failed (code ${result.code}, signal ${result.signal}${result.timedOut ? `, timed out after ${timeoutMs} ms` : ""}):\n${tail}`,
      );
    }
  } finally {
    fs.closeSync(out);
  }
  const ms = Date.now() - t0;
  log(`lodestar: npm ci took ${(ms / 1000).toFixed(1)} s (log ${logFile})`);
  return { cli: fs.realpathSync(bin), installed: true, ms };
}
