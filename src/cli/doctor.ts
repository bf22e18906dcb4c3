/**
 * `vigil doctor`: inspect a deployment (data dir, slashing-protection database, keystores and
 * passwords, API token, listen address, clock, user) and print findings, each problem with a
 * concrete command that fixes it. Read-only: it changes nothing on disk.
 *
 * Like the CLI entry, this module imports nothing from Lodestar or BLS (no preset needs choosing):
 * DEV_DIR below mirrors src/keys/dev.ts, and a test checks that they stay equal.
 */
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { ACCEPTED_POLICY_FILE, API_TOKEN_FILE, APPROVALS_FILE, AUDIT_HEAD_FILE, AUDIT_LOG_FILE, DB_FILE, KEY_STORE_FILE, POLICY_HISTORY_FILE } from "../config/files.js";
import { isLoopback, resolveStartOptions, type StartOptions } from "../config/options.js";
export { isLoopback };
import { parsePolicy } from "../policy/policy.js";
import { EIP2335_SCRYPT, scryptAreaTime, scryptMemory, STORE_SCRYPT, type ScryptParams } from "../keys/scrypt-cost.js";

export { API_TOKEN_FILE, DB_FILE, KEY_STORE_FILE };

export type FindingLevel = "ok" | "warn" | "error";

export interface Finding {
  level: FindingLevel;
  /** Stable identifier, e.g. `data-dir-permissions`. */
  id: string;
  message: string;
  /** A command (or concrete step) that resolves the finding; set for warn and error. */
  fix?: string;
}

export interface DoctorOptions extends StartOptions {
  /** `prompt`, `stdin`, `env:VAR` or `file:<path>`: how the sealed key store is unlocked. */
  unlock?: string;
  /** The signing API is served behind TLS with client authentication. */
  tls?: boolean;
  /** Keymanager API bearer token file (default <data-dir>/api-token.txt). */
  keymanagerTokenFile?: string;
}

export interface DoctorIo {
  /** Wall clock in ms (default Date.now). */
  now?: () => number;
  /** The mount table to read (default /proc/mounts). */
  mountsFile?: string;
  /** Runs a clock tool; resolves its stdout on exit status 0, else null (default: execFile, 2 s timeout). */
  exec?: (cmd: string, args: string[]) => Promise<string | null>;
  /** The user id Vigil runs as (default process.getuid()). */
  uid?: number;
}

export const DEV_DIR = "dev-keystores";
export const PUBLIC_NETWORKS: readonly string[] = ["mainnet", "hoodi", "sepolia", "holesky"];
/** A clock reading before this is wrong whatever the network (this release is newer). */
export const CLOCK_FLOOR_MS = Date.UTC(2025, 0, 1);
/** Beacon-chain gossip tolerates this much clock disparity (MAXIMUM_GOSSIP_CLOCK_DISPARITY). */
const MAX_CLOCK_OFFSET_S = 0.5;
const CLOCK_TOOL_TIMEOUT_MS = 2000;

// ---------------------------------------------------------------- helpers

/** Quote for a POSIX shell when needed, so that a fix can be pasted as is. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_\/.,:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

const octal = (mode: number): string => (mode & 0o777).toString(8).padStart(4, "0");

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

function realOrResolved(p: string): string {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
}

/** The real path of `p`, resolving the nearest existing ancestor when `p` does not exist yet. */
function realPathOfNearest(p: string): string {
  let cur = path.resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(cur), ...rest);
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) return path.resolve(p);
      rest.unshift(path.basename(cur));
      cur = parent;
    }
  }
}

/** `child` is `parent` or lies below it. */
function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === "" || (!rel.startsWith("..") && !path.isAbsolute(rel));
}

/** `chmod <mode> a b c`, or `chmod <mode> <dir>/*<ext>` when many files share a directory. */
function chmodFix(mode: string, files: string[], ext?: string): string {
  const dirs = new Set(files.map((f) => path.dirname(f)));
  if (files.length > 4 && dirs.size === 1 && ext) return `chmod ${mode} ${shellQuote([...dirs][0])}/*${ext}`;
  return `chmod ${mode} ${files.map(shellQuote).join(" ")}`;
}

const who = (mode: number, bits: number): string => {
  const g = mode & bits & 0o070;
  const o = mode & bits & 0o007;
  return g && o ? "group and others" : g ? "group" : "others";
};

// ---------------------------------------------------------------- mounts

export interface MountEntry {
  device: string;
  mountPoint: string;
  fsType: string;
  options: string[];
}

const unescapeMount = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function parseMounts(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    out.push({ device: unescapeMount(f[0]), mountPoint: unescapeMount(f[1]), fsType: f[2], options: f[3].split(",") });
  }
  return out;
}

/** The mount holding `p` (an absolute real path): the longest mount-point prefix; the last listed wins a tie (stacked mounts). */
export function mountFor(p: string, mounts: MountEntry[]): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const m of mounts) {
    if (!isInside(p, m.mountPoint)) continue;
    if (!best || m.mountPoint.length >= best.mountPoint.length) best = m;
  }
  return best;
}

// ---------------------------------------------------------------- checks

function checkDataDir(dataDir: string, uid: number | undefined, io: DoctorIo, out: Finding[]): boolean {
  const st = statOrNull(dataDir);
  if (!st) {
    out.push({
      level: "warn",
      id: "data-dir-exists",
      message: `data dir ${dataDir} does not exist: the first start creates it (mode 0700) with an EMPTY slashing-protection history`,
      fix: `if these validators have signed before, point --data-dir at their existing data dir, or import their history: vigil slashing import <interchange.json> --data-dir ${shellQuote(dataDir)}`,
    });
  } else if (!st.isDirectory()) {
    out.push({
      level: "error",
      id: "data-dir-exists",
      message: `data dir ${dataDir} exists but is not a directory`,
      fix: `give --data-dir a directory (mkdir -m 700 <dir>) or move ${shellQuote(dataDir)} away`,
    });
    return false;
  } else {
    out.push({ level: "ok", id: "data-dir-exists", message: `data dir ${dataDir} exists` });
    const mode = st.mode & 0o777;
    if (mode & 0o022) {
      out.push({
        level: "error",
        id: "data-dir-permissions",
        message: `data dir ${dataDir} is writable by ${who(mode, 0o022)} (mode ${octal(mode)}): another user can replace or delete the slashing-protection history`,
        fix: `chmod 700 ${shellQuote(dataDir)}`,
      });
    } else if (mode & 0o055) {
      out.push({
        level: "warn",
        id: "data-dir-permissions",
        message: `data dir ${dataDir} is open to ${who(mode, 0o055)} (mode ${octal(mode)}): it holds the API token, key store and protection database`,
        fix: `chmod 700 ${shellQuote(dataDir)}`,
      });
    } else {
      out.push({ level: "ok", id: "data-dir-permissions", message: `data dir mode ${octal(mode)}` });
    }
    if (uid !== undefined) {
      if (st.uid === uid) {
        out.push({ level: "ok", id: "data-dir-owner", message: `data dir owned by the current user (uid ${uid})` });
      } else if (st.uid === 0 || uid === 0) {
        out.push({
          level: "warn",
          id: "data-dir-owner",
          message: `data dir ${dataDir} is owned by uid ${st.uid}, but Vigil runs as uid ${uid}`,
          fix: `chown -R ${uid === 0 ? "<vigil-user>" : uid}: ${shellQuote(dataDir)}   # and run Vigil as its owner`,
        });
      } else {
        out.push({
          level: "error",
          id: "data-dir-owner",
          message: `data dir ${dataDir} is owned by another user (uid ${st.uid}, Vigil runs as uid ${uid}): that user controls the slashing-protection history`,
          fix: `chown -R ${uid}: ${shellQuote(dataDir)}`,
        });
      }
    }
  }
  checkFilesystem(dataDir, io, out);
  return true;
}

function checkFilesystem(dataDir: string, io: DoctorIo, out: Finding[]): void {
  const mountsFile = io.mountsFile ?? "/proc/mounts";
  let text: string;
  try {
    text = fs.readFileSync(mountsFile, "utf8");
  } catch {
    out.push({
      level: "warn",
      id: "data-dir-filesystem",
      message: `cannot read ${mountsFile}: the data dir's filesystem was not checked`,
      fix: `make sure ${shellQuote(dataDir)} is on persistent local storage (not tmpfs/ramfs, not a container's writable layer)`,
    });
    return;
  }
  const real = realPathOfNearest(dataDir);
  const m = mountFor(real, parseMounts(text));
  if (!m) {
    out.push({
      level: "warn",
      id: "data-dir-filesystem",
      message: `no mount in ${mountsFile} holds ${real}: its filesystem was not checked`,
      fix: `make sure ${shellQuote(dataDir)} is on persistent local storage`,
    });
    return;
  }
  const where = `${real} is on ${m.fsType} (mounted at ${m.mountPoint})`;
  if (m.fsType === "tmpfs" || m.fsType === "ramfs") {
    out.push({
      level: "error",
      id: "data-dir-filesystem",
      message: `${where}: the slashing-protection history is lost at reboot, and the next start signs with no memory of what was signed`,
      fix: `move the data dir to persistent storage: vigil slashing export /tmp/vigil-history.json --data-dir ${shellQuote(dataDir)} && vigil slashing import /tmp/vigil-history.json --data-dir /var/lib/vigil, then start with --data-dir /var/lib/vigil`,
    });
  } else if (m.options.includes("ro")) {
    out.push({
      level: "error",
      id: "data-dir-filesystem",
      message: `${where}, mounted read-only: the protection database cannot record anything, so nothing can be signed`,
      fix: `use a writable --data-dir, or remount: mount -o remount,rw ${shellQuote(m.mountPoint)}`,
    });
  } else if (m.fsType === "overlay" || m.fsType === "aufs") {
    out.push({
      level: "warn",
      id: "data-dir-filesystem",
      message: `${where}: in a container this is the writable layer, lost (with the slashing-protection history) when the container is recreated`,
      fix: `mount a volume on the data dir, e.g. docker run -v vigil-data:${shellQuote(realOrResolved(dataDir))} …`,
    });
  } else {
    out.push({ level: "ok", id: "data-dir-filesystem", message: where });
  }
}

function checkSlashingDb(dataDir: string, out: Finding[]): void {
  const db = path.join(dataDir, DB_FILE);
  if (!statOrNull(db)) {
    out.push({ level: "ok", id: "slashing-db", message: `no ${DB_FILE} yet in the data dir: the first start creates it` });
  } else {
    out.push({ level: "ok", id: "slashing-db", message: `slashing-protection database ${db}` });
  }
  checkPrivateFiles([db, `${db}-wal`, `${db}-shm`], out, {
    id: "slashing-db-permissions",
    what: "slashing-protection files",
    harm: "another user can erase the signing history",
  });
}

/** The audit trail, the approval queue and the accepted policy: forging or rewriting one of them defeats the policy. */
function checkStateFiles(dataDir: string, out: Finding[]): void {
  checkPrivateFiles(
    [AUDIT_LOG_FILE, AUDIT_HEAD_FILE, APPROVALS_FILE, ACCEPTED_POLICY_FILE, POLICY_HISTORY_FILE].map((f) => path.join(dataDir, f)),
    out,
    {
      id: "state-file-permissions",
      what: "audit log, approvals or accepted policy files (and the policy history)",
      harm: "another user can rewrite the audit trail, forge approvals, change the policy in force or erase the record of earlier policies",
    },
  );
}

/** Files only Vigil's user may touch (0600): writable by group/others is an error, readable a warning; nothing when none exists. */
function checkPrivateFiles(files: string[], out: Finding[], f: { id: string; what: string; harm: string }): void {
  const writable: string[] = [];
  const readable: string[] = [];
  const notes: string[] = [];
  let present = 0;
  for (const file of files) {
    const st = statOrNull(file);
    if (!st) continue;
    present++;
    const mode = st.mode & 0o777;
    if (mode & 0o022) writable.push(file);
    else if (mode & 0o055) readable.push(file);
    else continue;
    notes.push(`${path.basename(file)} ${octal(mode)}`);
  }
  if (writable.length) {
    out.push({ level: "error", id: f.id, message: `${f.what} writable by group/others (${notes.join(", ")}): ${f.harm}`, fix: chmodFix("600", [...writable, ...readable]) });
  } else if (readable.length) {
    out.push({ level: "warn", id: f.id, message: `${f.what} readable by group/others (${notes.join(", ")}); 0600 expected`, fix: chmodFix("600", readable) });
  } else if (present > 0) {
    out.push({ level: "ok", id: f.id, message: `${f.what} are 0600` });
  }
}

function checkKeyStore(dataDir: string, out: Finding[]): void {
  const file = path.join(dataDir, KEY_STORE_FILE);
  const st = statOrNull(file);
  if (!st) return;
  const mode = st.mode & 0o777;
  if (mode & 0o077) {
    out.push({
      level: "warn",
      id: "key-store-permissions",
      message: `sealed key store ${file} is open to ${who(mode, 0o077)} (mode ${octal(mode)}): sealed, but a copy invites offline passphrase guessing`,
      fix: `chmod 600 ${shellQuote(file)}`,
    });
  } else {
    out.push({ level: "ok", id: "key-store-permissions", message: `sealed key store ${KEY_STORE_FILE} mode ${octal(mode)}` });
  }
  checkKeyStoreKdf(file, out);
}

/** The store's scrypt: at least EIP-2335's cost to an attacker, and no more memory at unlock than today's default. */
function checkKeyStoreKdf(file: string, out: Finding[]): void {
  let kdf: ScryptParams;
  try {
    const k = (JSON.parse(fs.readFileSync(file, "utf8")) as { kdf?: Record<string, unknown> }).kdf;
    if (!k || k.function !== "scrypt" || ![k.n, k.r, k.p].every((v) => Number.isSafeInteger(v) && (v as number) > 0)) throw new Error("no scrypt parameters");
    kdf = { n: k.n as number, r: k.r as number, p: k.p as number };
  } catch (e) {
    out.push({
      level: "error",
      id: "key-store-kdf",
      message: `cannot read the KDF of ${file} (${(e as Error).message}): Vigil will refuse to unlock it`,
      fix: `restore ${shellQuote(file)} from a backup, or move it away and re-import the keys with \`vigil keys import\``,
    });
    return;
  }
  const mib = (k: ScryptParams): number => scryptMemory(k) / 2 ** 20;
  const params = `scrypt n=${kdf.n}, r=${kdf.r}, p=${kdf.p}`;
  const rekey = `vigil keys passphrase --data-dir ${shellQuote(path.dirname(file))} --unlock prompt --new-passphrase prompt`;
  if (scryptAreaTime(kdf) < scryptAreaTime(EIP2335_SCRYPT)) {
    out.push({ level: "warn", id: "key-store-kdf", message: `the key store's ${params} costs a passphrase guess less than EIP-2335's scrypt`, fix: rekey });
  } else if (scryptMemory(kdf) > scryptMemory(STORE_SCRYPT)) {
    out.push({
      level: "warn",
      id: "key-store-kdf",
      message: `the key store's ${params} holds ${mib(kdf)} MiB while Vigil unlocks it; today's default holds ${mib(STORE_SCRYPT)} MiB at the same cost to an attacker`,
      fix: rekey,
    });
  } else {
    out.push({ level: "ok", id: "key-store-kdf", message: `key store KDF ${params} (${mib(kdf)} MiB at unlock)` });
  }
}

function checkApiToken(file: string, out: Finding[]): void {
  const st = statOrNull(file);
  if (!st) {
    out.push({ level: "ok", id: "api-token-permissions", message: `no Keymanager API token at ${file} yet: start creates it (mode 0600)` });
    return;
  }
  const mode = st.mode & 0o777;
  if (mode & 0o077) {
    out.push({
      level: "error",
      id: "api-token-permissions",
      message: `Keymanager API token ${file} is open to ${who(mode, 0o077)} (mode ${octal(mode)}): whoever reads it can import and delete keys`,
      fix: `chmod 600 ${shellQuote(file)}`,
    });
  } else {
    out.push({ level: "ok", id: "api-token-permissions", message: `Keymanager API token ${file} mode ${octal(mode)}` });
  }
}

function listFiles(dir: string, filter: (name: string) => boolean): string[] {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => (e.isFile() || e.isSymbolicLink()) && filter(e.name))
      .map((e) => path.join(dir, e.name))
      .sort();
  } catch {
    return [];
  }
}

function checkKeystores(opts: DoctorOptions, out: Finding[]): void {
  if (!opts.keystores) return;
  const dir = path.resolve(opts.keystores);
  const st = statOrNull(dir);
  if (!st || !st.isDirectory()) {
    out.push({
      level: "error",
      id: "keystores-dir",
      message: `keystores dir ${dir} ${st ? "is not a directory" : "does not exist"}: no keys would be loaded`,
      fix: `give --keystores the directory holding your EIP-2335 keystore-*.json files`,
    });
    return;
  }
  const keystores = listFiles(dir, (n) => n.endsWith(".json"));
  out.push(
    keystores.length
      ? { level: "ok", id: "keystores-dir", message: `${keystores.length} keystore file(s) in ${dir}` }
      : { level: "warn", id: "keystores-dir", message: `no *.json keystores in ${dir}`, fix: `copy your EIP-2335 keystore-*.json files into ${shellQuote(dir)}` },
  );
  const open: string[] = [];
  const notes: string[] = [];
  for (const f of keystores) {
    const fst = statOrNull(f);
    if (fst && fst.mode & 0o044) {
      open.push(f);
      notes.push(`${path.basename(f)} ${octal(fst.mode)}`);
    }
  }
  const dirOpen = (st.mode & 0o077) !== 0;
  if (open.length || dirOpen) {
    const fixes: string[] = [];
    if (dirOpen) fixes.push(`chmod 700 ${shellQuote(dir)}`);
    if (open.length) fixes.push(chmodFix("600", open, ".json"));
    out.push({
      level: "warn",
      id: "keystore-permissions",
      message: `keystores readable by group/others (${[...(dirOpen ? [`${dir} ${octal(st.mode)}`] : []), ...notes.slice(0, 5)].join(", ")}${notes.length > 5 ? ", …" : ""}): encrypted, but a copy invites offline password guessing`,
      fix: fixes.join(" && "),
    });
  } else if (keystores.length) {
    out.push({ level: "ok", id: "keystore-permissions", message: "keystore files are not readable by group/others" });
  }
}

function checkPasswords(opts: DoctorOptions, out: Finding[]): void {
  if (!opts.passwords && !opts.passwordFile) return;
  const source = path.resolve((opts.passwords ?? opts.passwordFile)!);
  const isDir = !!opts.passwords;
  const st = statOrNull(source);
  if (!st || (isDir ? !st.isDirectory() : !st.isFile())) {
    out.push({
      level: "error",
      id: "passwords-missing",
      message: `${isDir ? "passwords dir" : "password file"} ${source} ${st ? `is not a ${isDir ? "directory" : "file"}` : "does not exist"}: the keystores cannot be decrypted`,
      fix: isDir ? `give --passwords the directory of <keystore-basename>.txt files` : `give --password-file the file holding the keystore password`,
    });
  } else {
    const files = isDir ? listFiles(source, (n) => !n.endsWith(".json")) : [source];
    const open: string[] = [];
    const notes: string[] = [];
    if (isDir && st.mode & 0o077) notes.push(`${source} ${octal(st.mode)}`);
    for (const f of files) {
      const fst = statOrNull(f);
      if (fst && fst.mode & 0o077) {
        open.push(f);
        notes.push(`${path.basename(f)} ${octal(fst.mode)}`);
      }
    }
    if (notes.length) {
      const fixes: string[] = [];
      if (isDir && st.mode & 0o077) fixes.push(`chmod 700 ${shellQuote(source)}`);
      if (open.length) fixes.push(chmodFix("600", open, ".txt"));
      out.push({
        level: "error",
        id: "password-permissions",
        message: `plaintext keystore password(s) open to group/others (${notes.slice(0, 5).join(", ")}${notes.length > 5 ? ", …" : ""}): with the keystores, that is the validator keys`,
        fix: fixes.join(" && "),
      });
    } else {
      out.push({ level: "ok", id: "password-permissions", message: `${isDir ? "passwords dir and files" : "password file"} not open to group/others` });
    }
  }

  // A password beside the keystores: one copy of the directory gives away both.
  if (opts.keystores && statOrNull(opts.keystores)?.isDirectory()) {
    const ksReal = realOrResolved(opts.keystores);
    const inside: string[] = [];
    if (isInside(realOrResolved(source), ksReal)) inside.push(source);
    const basenames = new Set(listFiles(ksReal, (n) => n.endsWith(".json")).map((f) => path.basename(f, ".json")));
    for (const f of listFiles(ksReal, (n) => /pass/i.test(n) || (n.endsWith(".txt") && basenames.has(n.slice(0, -4))))) {
      if (!inside.some((p) => realOrResolved(p) === realOrResolved(f)) && !isInside(realOrResolved(f), realOrResolved(source))) inside.push(f);
    }
    if (inside.length) {
      const target = "/etc/vigil/passwords";
      // Move the password files, never a directory (--passwords may be the keystores dir itself).
      const moved = inside.map((p) => (p !== source || !isDir ? shellQuote(p) : realOrResolved(p) === ksReal ? `${shellQuote(ksReal)}/*.txt` : `${shellQuote(p)}/*`));
      const restart = !isInside(realOrResolved(source), ksReal)
        ? ""
        : isDir
          ? `, then start with --passwords ${target}`
          : `, then start with --password-file ${target}/${shellQuote(path.basename(source))}`;
      out.push({
        level: "warn",
        id: "password-in-keystores-dir",
        message: `password file(s) inside the keystores dir ${ksReal}: ${inside.join(", ")}; anyone who copies the directory gets keys and passwords together`,
        fix: `install -d -m 700 ${target} && mv ${moved.join(" ")} ${target}/${restart}`,
      });
    }
  }

  out.push({
    level: "warn",
    id: "passwords-at-rest",
    message: "keystore passwords are stored in plaintext on disk",
    fix: `use the sealed key store instead: start with --unlock prompt|stdin|env:VAR (it keeps the keys in ${KEY_STORE_FILE} in the data dir), import the keystores through the Keymanager API (POST /eth/v1/keystores with the bearer token from ${API_TOKEN_FILE}), drop ${isDir ? "--passwords" : "--password-file"}, then delete the plaintext: shred -u ${isDir ? `${shellQuote(source)}/*` : shellQuote(source)}`,
  });
}

function checkUnlock(opts: DoctorOptions, out: Finding[]): void {
  const u = opts.unlock;
  if (u === undefined) return;
  if (u === "prompt" || u === "stdin") {
    out.push({ level: "ok", id: "unlock", message: `key store passphrase read from ${u === "prompt" ? "a terminal prompt" : "standard input"} (not at rest)` });
  } else if (/^env:[A-Za-z_][A-Za-z0-9_]*$/.test(u)) {
    out.push({ level: "ok", id: "unlock", message: `key store passphrase from environment variable ${u.slice(4)} (keep it out of world-readable unit files and shell history)` });
  } else if (u.startsWith("file:") && u.length > 5) {
    const file = path.resolve(u.slice(5));
    const st = statOrNull(file);
    if (!st || !st.isFile()) {
      out.push({
        level: "error",
        id: "unlock-file-permissions",
        message: `passphrase file ${file} ${st ? "is not a regular file" : "does not exist"}: the key store cannot be unlocked`,
        fix: `install -m 600 /dev/stdin ${shellQuote(file)}   # then type the passphrase and press Ctrl-D`,
      });
      return;
    }
    const mode = st.mode & 0o777;
    if (mode & 0o077) {
      out.push({
        level: "error",
        id: "unlock-file-permissions",
        message: `passphrase file ${file} is open to ${who(mode, 0o077)} (mode ${octal(mode)}): with the key store, that is the validator keys`,
        fix: `chmod 600 ${shellQuote(file)}`,
      });
    } else {
      out.push({ level: "ok", id: "unlock-file-permissions", message: `passphrase file ${file} mode ${octal(mode)} (still a passphrase at rest: --unlock prompt|stdin|env:VAR keeps it off disk)` });
    }
  } else {
    out.push({
      level: "error",
      id: "unlock",
      message: `--unlock ${JSON.stringify(u)} is not one of prompt, stdin, env:VAR, file:<path>`,
      fix: "use --unlock prompt (interactive), --unlock stdin, --unlock env:VIGIL_PASSPHRASE or --unlock file:/etc/vigil/passphrase",
    });
  }
}

function checkDevKeys(opts: DoctorOptions, dataDir: string, out: Finding[]): void {
  if (!opts.unlock && fs.existsSync(path.join(dataDir, KEY_STORE_FILE))) {
    out.push({
      level: "error",
      id: "unlock-required",
      message: `${path.join(dataDir, KEY_STORE_FILE)} holds sealed keys and no --unlock is given: vigil start refuses to start`,
      fix: "add --unlock prompt (or stdin, file:<path>, env:<VAR>)",
    });
    return;
  }
  if (opts.keystores || opts.unlock) return; // DEV keys are made only with neither
  const devDir = path.join(dataDir, DEV_DIR);
  const exists = !!statOrNull(devDir)?.isDirectory();
  const what = exists ? `DEV keys in use (${devDir})` : "no --keystores: the first start generates DEV keys";
  if (PUBLIC_NETWORKS.includes(opts.network)) {
    out.push({
      level: "warn",
      id: "dev-keys-public-network",
      message: `${what} on the public network ${opts.network}: DEV keys are for trying Vigil out, their password sits beside them, never deposit to them`,
      fix: `vigil start --network ${shellQuote(opts.network)} --keystores <dir> --passwords <dir>   # or the sealed key store with --unlock prompt`,
    });
  } else {
    out.push({ level: "ok", id: "dev-keys-public-network", message: `${what} on ${opts.network} (not a public network)` });
  }
}

/** The names of the clients the policy in force admits (--policy, else the accepted one), or null: any client. */
function policyClients(opts: DoctorOptions, dataDir: string): string[] | null {
  const file = opts.policy ?? path.join(dataDir, ACCEPTED_POLICY_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return null; // the built-in default names no clients
  }
  try {
    const clients = parsePolicy(text, file).clients;
    return clients.size > 0 ? [...clients.keys()] : null;
  } catch {
    return null; // reported by start; here: no client authentication can be counted on
  }
}

function checkHost(opts: DoctorOptions, dataDir: string, out: Finding[]): void {
  const clients = isLoopback(opts.host) ? null : policyClients(opts, dataDir);
  if (isLoopback(opts.host)) {
    out.push({ level: "ok", id: "listen-address", message: `signing API bound to loopback (${opts.host}:${opts.port})` });
  } else if (clients && opts.tlsCert) {
    out.push({ level: "ok", id: "listen-address", message: `signing API on ${opts.host}:${opts.port} over TLS, for the policy's clients only (${clients.join(", ")})` });
  } else if (clients) {
    out.push({
      level: "warn",
      id: "listen-address",
      message: `the signing API listens on ${opts.host}:${opts.port} for the policy's clients only, but without TLS: their bearer tokens cross the network in clear`,
      fix: "serve it over TLS (--tls-cert, --tls-key; --tls-client-ca for certificate identities), or bind 127.0.0.1",
    });
  } else if (opts.tls) {
    out.push({ level: "ok", id: "listen-address", message: `signing API on ${opts.host}:${opts.port}: you declare (--tls) that a proxy in front of it serves TLS with client authentication` });
  } else {
    out.push({
      level: "error",
      id: "listen-address",
      message: `the signing API listens on ${opts.host}:${opts.port} and has no TLS or authentication: anyone who reaches it can have Vigil sign`,
      fix: `bind 127.0.0.1 (--host 127.0.0.1) or put it behind TLS with client authentication (e.g. a reverse proxy with ssl_verify_client on)`,
    });
  }
}

// ---------------------------------------------------------------- clock

function defaultExec(cmd: string, args: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    try {
      execFile(
        cmd,
        args,
        { timeout: CLOCK_TOOL_TIMEOUT_MS, killSignal: "SIGKILL", maxBuffer: 256 * 1024, env: { ...process.env, LC_ALL: "C" }, windowsHide: true },
        (err, stdout) => resolve(err ? null : String(stdout)),
      );
    } catch {
      resolve(null);
    }
  });
}

/** Bound any exec to the tool timeout, whatever it does. */
function bounded(p: Promise<string | null>): Promise<string | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), CLOCK_TOOL_TIMEOUT_MS + 500);
    p.then(
      (v) => (clearTimeout(timer), resolve(v)),
      () => (clearTimeout(timer), resolve(null)),
    );
  });
}

interface ClockReading {
  tool: string;
  synced: boolean;
  /** Seconds, when the tool tells. */
  offset?: number;
}

export function parseChronyTracking(text: string): ClockReading | null {
  const leap = /^Leap status\s*:\s*(.+)$/m.exec(text)?.[1]?.trim();
  if (!leap) return null;
  const sys = /^System time\s*:\s*([0-9.]+) seconds (fast|slow)/m.exec(text);
  const offset = sys ? Number(sys[1]) * (sys[2] === "slow" ? -1 : 1) : undefined;
  return { tool: "chronyc tracking", synced: leap !== "Not synchronised", offset };
}

export function parseTimedatectl(text: string): ClockReading | null {
  const v = text.trim().toLowerCase();
  if (v !== "yes" && v !== "no") return null;
  return { tool: "timedatectl", synced: v === "yes" };
}

export function parseNtpq(text: string): ClockReading | null {
  if (!/^\s*remote\s+refid/m.test(text)) return null;
  // The tally code in column 0: '*' system peer, 'o' PPS peer.
  const sel = text.split("\n").find((l) => l.startsWith("*") || l.startsWith("o"));
  if (!sel) return { tool: "ntpq", synced: false };
  const ms = Number(sel.slice(1).trim().split(/\s+/)[8]); // remote refid st t when poll reach delay offset jitter
  return { tool: "ntpq", synced: true, offset: Number.isFinite(ms) ? ms / 1000 : undefined };
}

async function checkClock(dataDir: string, io: DoctorIo, out: Finding[]): Promise<void> {
  const exec = io.exec ?? defaultExec;
  const now = (io.now ?? Date.now)();

  // Sanity of the reading itself: measurable without any network.
  const future: string[] = [];
  for (const f of [DB_FILE, `${DB_FILE}-wal`, KEY_STORE_FILE, API_TOKEN_FILE]) {
    const st = statOrNull(path.join(dataDir, f));
    if (st && st.mtimeMs > now + 60_000) future.push(`${f} (${new Date(st.mtimeMs).toISOString()})`);
  }
  if (now < CLOCK_FLOOR_MS) {
    out.push({
      level: "error",
      id: "clock-sanity",
      message: `the system clock reads ${new Date(now).toISOString()}, before this Vigil release existed`,
      fix: "set the clock and keep it synchronised: run chrony or systemd-timesyncd (timedatectl set-ntp true)",
    });
  } else if (future.length) {
    out.push({
      level: "warn",
      id: "clock-sanity",
      message: `data-dir files were written in the future relative to the clock (now ${new Date(now).toISOString()}): ${future.join(", ")}; the clock has gone backwards`,
      fix: "find why the clock jumped and keep it synchronised: run chrony or systemd-timesyncd (timedatectl set-ntp true)",
    });
  } else {
    out.push({ level: "ok", id: "clock-sanity", message: `clock reads ${new Date(now).toISOString()}` });
  }

  // Synchronisation: only local tools can tell (Node cannot reach an NTP server from here).
  const [chrony, timedatectl, ntpq] = await Promise.all([
    bounded(exec("chronyc", ["-n", "tracking"])).then((t) => (t === null ? null : parseChronyTracking(t))),
    bounded(exec("timedatectl", ["show", "-p", "NTPSynchronized", "--value"])).then((t) => (t === null ? null : parseTimedatectl(t))),
    bounded(exec("ntpq", ["-pn"])).then((t) => (t === null ? null : parseNtpq(t))),
  ]);
  const readings = [chrony, timedatectl, ntpq].filter((r): r is ClockReading => r !== null);
  const synced = readings.find((r) => r.synced);
  if (synced) {
    if (synced.offset !== undefined && Math.abs(synced.offset) > MAX_CLOCK_OFFSET_S) {
      out.push({
        level: "warn",
        id: "clock-sync",
        message: `clock synchronised (${synced.tool}) but ${Math.abs(synced.offset).toFixed(3)} s ${synced.offset > 0 ? "fast" : "slow"}, beyond the ${MAX_CLOCK_OFFSET_S} s the beacon chain tolerates`,
        fix: "chronyc makestep   # and check the time sources: chronyc sources",
      });
    } else {
      const off = synced.offset !== undefined ? `, offset ${(synced.offset * 1000).toFixed(1)} ms` : "";
      out.push({ level: "ok", id: "clock-sync", message: `clock synchronised (${synced.tool}${off})` });
    }
  } else if (readings.length) {
    out.push({
      level: "warn",
      id: "clock-sync",
      message: `clock not synchronised (${readings.map((r) => r.tool).join(", ")}): validator duties go out at the wrong time`,
      fix: readings.some((r) => r.tool === "timedatectl") && !chrony ? "timedatectl set-ntp true   # systemd-timesyncd" : "check the NTP sources: chronyc sources (or ntpq -p); run chrony or systemd-timesyncd",
    });
  } else {
    out.push({
      level: "warn",
      id: "clock-sync",
      message: "clock sync not measurable (no answer from chronyc, timedatectl or ntpq)",
      fix: "run chrony or systemd-timesyncd (apt-get install chrony, or timedatectl set-ntp true)",
    });
  }
}

function checkUser(uid: number | undefined, dataDir: string, out: Finding[]): void {
  if (uid === undefined) return;
  if (uid === 0) {
    out.push({
      level: "warn",
      id: "running-as-root",
      message: "running as root: a compromise of the signer is a compromise of the host",
      fix: `useradd --system --home ${shellQuote(dataDir)} vigil && chown -R vigil: ${shellQuote(dataDir)}, then run Vigil as that user (systemd: User=vigil)`,
    });
  } else {
    out.push({ level: "ok", id: "running-as-root", message: `running as uid ${uid}` });
  }
}

// ---------------------------------------------------------------- entry points

export async function runDoctor(opts: DoctorOptions, io: DoctorIo = {}): Promise<Finding[]> {
  const out: Finding[] = [];
  const uid = io.uid ?? (typeof process.getuid === "function" ? process.getuid() : undefined);
  const dataDir = path.resolve(opts.dataDir);
  const dirOk = checkDataDir(dataDir, uid, io, out);
  if (dirOk) {
    checkSlashingDb(dataDir, out);
    checkStateFiles(dataDir, out);
    checkKeyStore(dataDir, out);
  }
  checkApiToken(opts.keymanagerTokenFile ? path.resolve(opts.keymanagerTokenFile) : path.join(dataDir, API_TOKEN_FILE), out);
  checkKeystores(opts, out);
  checkPasswords(opts, out);
  checkUnlock(opts, out);
  checkDevKeys(opts, dataDir, out);
  checkHost(opts, dataDir, out);
  await checkClock(dataDir, io, out);
  checkUser(uid, dataDir, out);
  return out;
}

const LABEL: Record<FindingLevel, string> = { ok: "ok   ", warn: "WARN ", error: "ERROR" };

export function formatFindings(findings: Finding[]): string {
  const lines: string[] = [];
  for (const f of findings) {
    lines.push(`${LABEL[f.level]} ${f.id}: ${f.message}`);
    if (f.fix) lines.push(`      fix: ${f.fix}`);
  }
  const count = (l: FindingLevel): number => findings.filter((f) => f.level === l).length;
  const errors = count("error");
  const warns = count("warn");
  lines.push("");
  lines.push(`${errors} error${errors === 1 ? "" : "s"}, ${warns} warning${warns === 1 ? "" : "s"}, ${count("ok")} ok`);
  return lines.join("\n") + "\n";
}

/**
 * `vigil doctor [start options] [--unlock <how>]`: resolves the options as `vigil start` does,
 * prints the findings; exit status 1 if any is an error. Option errors throw (OptionsError).
 */
export async function doctorCommand(
  flags: Partial<Record<keyof StartOptions, unknown>> & { config?: string; unlock?: unknown; tls?: unknown },
): Promise<Finding[]> {
  const { tls, ...startFlags } = flags; // a boolean is not a start option
  const opts: DoctorOptions = resolveStartOptions(startFlags);
  if (typeof flags.unlock === "string") opts.unlock = flags.unlock;
  if (tls === true) opts.tls = true;
  const findings = await runDoctor(opts);
  process.stdout.write(formatFindings(findings));
  if (findings.some((f) => f.level === "error")) process.exitCode = 1;
  return findings;
}
