/**
 * `vigil keys import|export|list|passphrase`: the sealed key store at `<data-dir>/keys.vigil` (see
 * src/keys/sealed-store.ts for the format).
 *
 *   import  EIP-2335 keystores → the store (created on first import; a new passphrase is asked
 *           twice when the unlock source is `prompt`). Keys already in the store are reported as
 *           duplicates, not errors. Keystores that cannot be decrypted are listed with their reason;
 *           the others are imported all the same, and the command then fails (IMPORT_INCOMPLETE)
 *           so that scripts notice.
 *   export  the store → standard EIP-2335 keystores (`keystore-<first 16 hex of pubkey>.json`,
 *           mode 0600, in a 0700 directory), re-encrypted with the password of --password-file.
 *           Existing files are never overwritten.
 *   list    the pubkeys, paths and import times, WITHOUT the passphrase: they are stored in clear.
 *           The listing is checked against the file's checksum (accidental damage), but only
 *           opening the store with its passphrase authenticates it.
 *   passphrase  a new passphrase: every key re-sealed under a new salt and today's KDF parameters.
 */
import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { VigilError } from "../errors.js";
import { writeFileExclusive } from "../fs-atomic.js";
import { encryptKeystore } from "../keys/keystore.js";
import { loadKeystores, type LoadError } from "../keys/load.js";
import { SealedKeyStore, type KeyInfo } from "../keys/sealed-store.js";
import { readPassphrase } from "../keys/unlock.js";

import { KEY_STORE_FILE } from "../config/files.js";

export { KEY_STORE_FILE };

export const keyStorePath = (dataDir: string): string => path.join(dataDir, KEY_STORE_FILE);

type Out = { stdout?: NodeJS.WritableStream };

export interface KeysImportOptions extends Out {
  keystores: string;
  /** Directory of `<keystore basename>.txt` password files. */
  passwords?: string;
  /** One password for every keystore. */
  passwordFile?: string;
  dataDir: string;
  unlock: string;
  /** scrypt n for a NEW store (default DEFAULT_SCRYPT_N); for tests. */
  scryptN?: number;
}

export interface KeysImportSummary {
  file: string;
  created: boolean;
  imported: { pubkey: string; source: string }[];
  duplicate: { pubkey: string; source: string }[];
  failed: LoadError[];
  total: number;
}

export async function keysImport(opts: KeysImportOptions): Promise<KeysImportSummary> {
  const out = opts.stdout ?? process.stdout;
  if ((opts.passwords === undefined) === (opts.passwordFile === undefined)) {
    throw new VigilError("bad_request", "NO_PASSWORD_SOURCE", "give exactly one of --passwords <dir> or --password-file <file> for the keystores");
  }
  // Cheap checks first: no passphrase is asked for nothing.
  let names: string[];
  try {
    names = (await fsp.readdir(opts.keystores)).filter((n) => n.endsWith(".json"));
  } catch (e) {
    throw new VigilError("bad_request", "KEYSTORE_DIR_UNREADABLE", `cannot read keystore directory ${opts.keystores}: ${(e as Error).message}`);
  }
  if (names.length === 0) throw new VigilError("bad_request", "NO_KEYSTORES", `no keystores (*.json) in ${opts.keystores}`);

  const file = keyStorePath(opts.dataDir);
  const exists = SealedKeyStore.exists(file);
  const passphrase = await readPassphrase(opts.unlock, {
    prompt: exists ? `Passphrase of ${file}: ` : `New passphrase for ${file}: `,
    confirm: !exists,
  });
  // An existing store is opened first, so that a wrong passphrase fails before minutes of keystore KDFs.
  let store: SealedKeyStore | null = exists ? await SealedKeyStore.open(file, passphrase) : null;
  let created = false;
  try {
    const loaded = await loadKeystores({ dir: opts.keystores, passwordsDir: opts.passwords, passwordFile: opts.passwordFile });
    const summary: KeysImportSummary = { file, created: false, imported: [], duplicate: [], failed: [], total: 0 };
    try {
      for (const e of loaded.errors) {
        if (e.code === "DUPLICATE_PUBKEY") summary.duplicate.push({ pubkey: /0x[0-9a-f]{96}/.exec(e.message)?.[0] ?? "?", source: e.file });
        else summary.failed.push(e);
      }
      if (loaded.keys.length > 0) {
        if (store === null) {
          await fsp.mkdir(opts.dataDir, { recursive: true, mode: 0o700 });
          store = await SealedKeyStore.create(file, passphrase, { scryptN: opts.scryptN });
          created = true;
        }
        const paths = await keystorePaths(loaded.keys.map((k) => k.source));
        const results = await store.add(loaded.keys.map((k) => ({ secret: k.secret, path: paths.get(k.source) })));
        results.forEach((r, i) => (r.status === "imported" ? summary.imported : summary.duplicate).push({ pubkey: r.pubkey, source: loaded.keys[i].source }));
      }
    } finally {
      for (const k of loaded.keys) k.secret.fill(0);
    }
    summary.created = created;
    summary.total = store?.size ?? 0;

    const rel = (f: string): string => path.relative(opts.keystores, f) || f;
    for (const k of summary.imported) out.write(`imported   ${k.pubkey}  ${rel(k.source)}\n`);
    for (const k of summary.duplicate) out.write(`duplicate  ${k.pubkey}  ${rel(k.source)} (already in the key store)\n`);
    for (const f of summary.failed) out.write(`failed     ${rel(f.file)}: ${f.code}: ${f.message}\n`);
    out.write(
      `${created ? "created" : store ? "updated" : "did not create"} key store ${file}: ${summary.imported.length} imported, ` +
        `${summary.duplicate.length} duplicate, ${summary.failed.length} failed; ${summary.total} keys in the store\n`,
    );
    if (summary.failed.length > 0) {
      throw new VigilError(
        "bad_request",
        "IMPORT_INCOMPLETE",
        `${summary.failed.length} of ${names.length} keystores could not be imported (listed above); the others were`,
      );
    }
    return summary;
  } finally {
    store?.close();
  }
}

/** The EIP-2335 `path` of each keystore file (best effort: the files were just loaded). */
async function keystorePaths(files: string[]): Promise<Map<string, string | undefined>> {
  const out = new Map<string, string | undefined>();
  for (const f of files) {
    try {
      const p = (JSON.parse(await fsp.readFile(f, "utf8")) as { path?: unknown }).path;
      out.set(f, typeof p === "string" && p !== "" ? p : undefined);
    } catch {
      out.set(f, undefined);
    }
  }
  return out;
}

export interface KeysExportOptions extends Out {
  dataDir: string;
  unlock: string;
  /** Output directory (created 0700 if missing). */
  out: string;
  /** Password of the exported keystores (same rules as a passphrase file: mode 0600). */
  passwordFile: string;
  /** Only these keys (default: all). */
  pubkeys?: string[];
  /** Keystore KDF (default scrypt n=2^18 as EIP-2335 recommends; pbkdf2 c=2^18 is faster). */
  kdf?: "scrypt" | "pbkdf2";
}

export async function keysExport(opts: KeysExportOptions): Promise<{ pubkey: string; file: string }[]> {
  const out = opts.stdout ?? process.stdout;
  const file = keyStorePath(opts.dataDir);
  if (!SealedKeyStore.exists(file)) throw new VigilError("not_found", "NO_KEY_STORE", `no key store at ${file}`);
  if (opts.kdf !== undefined && opts.kdf !== "scrypt" && opts.kdf !== "pbkdf2") {
    throw new VigilError("bad_request", "INVALID_OPTIONS", `kdf must be scrypt or pbkdf2 (got ${JSON.stringify(opts.kdf)})`);
  }
  const password = await readPassphrase(`file:${opts.passwordFile}`); // before unlocking anything
  const passphrase = await readPassphrase(opts.unlock, { prompt: `Passphrase of ${file}: ` });
  const store = await SealedKeyStore.open(file, passphrase);
  try {
    const all = store.list();
    let chosen: KeyInfo[];
    if (opts.pubkeys && opts.pubkeys.length > 0) {
      const byKey = new Map(all.map((k) => [k.pubkey, k]));
      const missing: string[] = [];
      chosen = [];
      for (const p of new Set(opts.pubkeys.map((p) => p.toLowerCase()))) {
        const k = byKey.get(p);
        if (k) chosen.push(k);
        else missing.push(p);
      }
      if (missing.length > 0) throw new VigilError("not_found", "KEY_NOT_FOUND", `not in the key store: ${missing.join(", ")}`);
    } else chosen = all;

    // File names: 16 hex digits of the pubkey; the full pubkey if two chosen keys share them.
    const prefix = (p: string): string => p.slice(2, 18);
    const count = new Map<string, number>();
    for (const k of chosen) count.set(prefix(k.pubkey), (count.get(prefix(k.pubkey)) ?? 0) + 1);
    const targets = chosen.map((k) => ({
      key: k,
      file: path.join(opts.out, `keystore-${count.get(prefix(k.pubkey))! > 1 ? k.pubkey.slice(2) : prefix(k.pubkey)}.json`),
    }));

    const made = await fsp.mkdir(opts.out, { recursive: true, mode: 0o700 });
    if (made !== undefined) await fsp.chmod(opts.out, 0o700); // whatever the umask
    const clash = targets.filter((t) => fs.existsSync(t.file)).map((t) => t.file);
    if (clash.length > 0) throw new VigilError("conflict", "FILE_EXISTS", `refusing to overwrite ${clash.join(", ")}`);

    // Bounded parallelism: KDFs run on the libuv pool; at most this many secrets are unsealed at once.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < targets.length) {
        const t = targets[next++];
        const secret = store.unseal(t.key.pubkey);
        let json;
        try {
          json = await encryptKeystore(secret, password, { kdf: opts.kdf ?? "scrypt", path: t.key.path, description: "exported from a Vigil key store" });
        } finally {
          secret.fill(0);
        }
        // Whole or not at all under its name (a crash or ENOSPC leaves no torn keystore); the directory is synced below.
        try {
          await writeFileExclusive(t.file, JSON.stringify(json, null, 2) + "\n", 0o600, false);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new VigilError("conflict", "FILE_EXISTS", `refusing to overwrite ${t.file}`);
          throw new VigilError("bad_request", "EXPORT_WRITE_FAILED", `cannot write ${t.file}: ${(e as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(Math.max(2, os.availableParallelism()), targets.length) }, worker));
    try {
      const dh = await fsp.open(opts.out, "r");
      await dh.sync().finally(() => dh.close());
    } catch {
      // best effort (not possible on every platform)
    }
    out.write(`exported ${targets.length} keys from ${file} to ${opts.out} as EIP-2335 keystores (${opts.kdf ?? "scrypt"})\n`);
    return targets.map((t) => ({ pubkey: t.key.pubkey, file: t.file }));
  } finally {
    store.close();
  }
}

export interface KeysListOptions extends Out {
  dataDir: string;
}

/**
 * Lists the store's keys without the passphrase (tab-separated: pubkey, path or "-", added).
 * Not authenticated: see the module comment.
 */
export async function keysList(opts: KeysListOptions): Promise<KeyInfo[]> {
  const out = opts.stdout ?? process.stdout;
  const file = keyStorePath(opts.dataDir);
  let keys: KeyInfo[];
  try {
    keys = (await SealedKeyStore.inspect(file)).keys;
  } catch (e) {
    if (e instanceof VigilError && e.code === "NO_KEY_STORE") {
      throw new VigilError("not_found", "NO_KEY_STORE", `no key store at ${file} (create it with \`vigil keys import\`)`);
    }
    throw e;
  }
  for (const k of keys) out.write(`${k.pubkey}\t${k.path ?? "-"}\t${k.added}\n`);
  return keys;
}

export interface KeysPassphraseOptions extends Out {
  dataDir: string;
  /** The current passphrase. */
  unlock: string;
  /** The new passphrase (asked twice with `prompt`). */
  newPassphrase: string;
  /** scrypt n for the new key derivation (default DEFAULT_SCRYPT_N); for tests. */
  scryptN?: number;
}

/**
 * Changes the store's passphrase: new salt, new key derivation with today's default parameters,
 * every key re-sealed, one atomic rewrite (a crash leaves the old file or the new one).
 */
export async function keysPassphrase(opts: KeysPassphraseOptions): Promise<{ kdf: { n: number; r: number; p: number } }> {
  const out = opts.stdout ?? process.stdout;
  const file = keyStorePath(opts.dataDir);
  if (opts.unlock === "stdin" && opts.newPassphrase === "stdin") {
    throw new VigilError("bad_request", "INVALID_UNLOCK_SOURCE", "--unlock and --new-passphrase cannot both read stdin: give one of them as prompt, file:<path> or env:<VAR>");
  }
  if (!SealedKeyStore.exists(file)) throw new VigilError("not_found", "NO_KEY_STORE", `no key store at ${file} (create it with \`vigil keys import\`)`);
  const current = await readPassphrase(opts.unlock, { prompt: `Current passphrase of ${file}: ` });
  const store = await SealedKeyStore.open(file, current); // a wrong passphrase fails before the new one is asked
  try {
    const next = await readPassphrase(opts.newPassphrase, { prompt: `New passphrase for ${file}: `, confirm: true });
    const { kdf } = await store.changePassphrase(next, { scryptN: opts.scryptN });
    out.write(
      `changed the passphrase of ${file} (${store.size} key${store.size === 1 ? "" : "s"} re-sealed; scrypt n=${kdf.n}, r=${kdf.r}, p=${kdf.p}).\n` +
        `Running Vigil instances on this data directory refuse key-store changes (KEY_STORE_CHANGED) until restarted with the new passphrase.\n`,
    );
    return { kdf };
  } finally {
    store.close();
  }
}
