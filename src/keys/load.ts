/**
 * Loads every EIP-2335 keystore (*.json) of a directory, decrypting in parallel with
 * bounded concurrency. One bad file never stops the others: it is reported in `errors`.
 */
import { readdir, readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { VigilError, badRequest } from "../errors.js";
import { decryptKeystore, parseKeystore, pubkeyFromSecret } from "./keystore.js";

export interface LoadedKey {
  pubkey: string; // 0x lower-case hex
  secret: Uint8Array;
  source: string; // keystore file path
}

export interface LoadError {
  file: string;
  code: string;
  message: string;
}

export interface LoadOptions {
  dir: string;
  /** Per-keystore passwords: `<passwordsDir>/<keystore basename without .json>.txt`. */
  passwordsDir?: string;
  /** One password for every keystore. */
  passwordFile?: string;
  /** Keystores decrypted at once; default max(2, os.availableParallelism()). */
  concurrency?: number;
}

/** File contents minus one trailing "\n" or "\r\n" (nothing else is trimmed). */
async function readPassword(file: string): Promise<string> {
  const text = await readFile(file, "utf8");
  if (text.endsWith("\r\n")) return text.slice(0, -2);
  if (text.endsWith("\n")) return text.slice(0, -1);
  return text;
}

const errorOf = (file: string, e: unknown, fallbackCode: string): LoadError =>
  e instanceof VigilError
    ? { file, code: e.code, message: e.message }
    : { file, code: fallbackCode, message: e instanceof Error ? e.message : String(e) };

export async function loadKeystores(opts: LoadOptions): Promise<{ keys: LoadedKey[]; errors: LoadError[] }> {
  if ((opts.passwordsDir === undefined) === (opts.passwordFile === undefined)) {
    throw badRequest("NO_PASSWORD_SOURCE", "exactly one of passwordsDir or passwordFile is required");
  }
  const concurrency = opts.concurrency ?? Math.max(2, os.availableParallelism());
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw badRequest("INVALID_OPTIONS", `concurrency must be a positive integer (got ${concurrency})`);
  }

  let sharedPassword: string | undefined;
  if (opts.passwordFile !== undefined) {
    try {
      sharedPassword = await readPassword(opts.passwordFile);
    } catch (e) {
      throw badRequest("PASSWORD_FILE_UNREADABLE", `cannot read password file ${opts.passwordFile}: ${(e as Error).message}`);
    }
  }

  let names: string[];
  try {
    const entries = await readdir(opts.dir, { withFileTypes: true });
    names = entries
      .filter((d) => (d.isFile() || d.isSymbolicLink()) && d.name.endsWith(".json"))
      .map((d) => d.name)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)); // stable, locale-independent
  } catch (e) {
    throw badRequest("KEYSTORE_DIR_UNREADABLE", `cannot read keystore directory ${opts.dir}: ${(e as Error).message}`);
  }

  type Result = { key: LoadedKey } | { error: LoadError };
  const loadOne = async (name: string): Promise<Result> => {
    const file = path.join(opts.dir, name);
    let json: unknown;
    try {
      json = JSON.parse(await readFile(file, "utf8"));
    } catch (e) {
      const code = e instanceof SyntaxError ? "INVALID_KEYSTORE" : "READ_FAILED";
      return { error: errorOf(file, e, code) };
    }
    let keystore;
    try {
      keystore = parseKeystore(json); // reject bad files before looking for a password
    } catch (e) {
      return { error: errorOf(file, e, "INVALID_KEYSTORE") };
    }
    let password = sharedPassword;
    if (password === undefined) {
      const pwFile = path.join(opts.passwordsDir!, `${name.slice(0, -".json".length)}.txt`);
      try {
        password = await readPassword(pwFile);
      } catch (e) {
        const missing = (e as NodeJS.ErrnoException).code === "ENOENT";
        return {
          error: {
            file,
            code: missing ? "MISSING_PASSWORD" : "READ_FAILED",
            message: missing ? `no password file ${pwFile}` : `cannot read password file ${pwFile}: ${(e as Error).message}`,
          },
        };
      }
    }
    try {
      const secret = await decryptKeystore(keystore, password);
      // decryptKeystore already checked a declared pubkey against the secret
      return { key: { pubkey: keystore.pubkey ?? pubkeyFromSecret(secret), secret, source: file } };
    } catch (e) {
      return { error: errorOf(file, e, "DECRYPT_FAILED") };
    }
  };

  // Bounded worker pool; results are stored by index so the output order is the sorted file order.
  const results: Result[] = new Array(names.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < names.length) {
      const i = next++;
      results[i] = await loadOne(names[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, names.length) }, worker));

  const keys: LoadedKey[] = [];
  const errors: LoadError[] = [];
  const seen = new Map<string, string>();
  for (const r of results) {
    if ("error" in r) {
      errors.push(r.error);
      continue;
    }
    const first = seen.get(r.key.pubkey);
    if (first !== undefined) {
      r.key.secret.fill(0);
      errors.push({ file: r.key.source, code: "DUPLICATE_PUBKEY", message: `pubkey ${r.key.pubkey} already loaded from ${first}` });
      continue;
    }
    seen.set(r.key.pubkey, r.key.source);
    keys.push(r.key);
  }
  return { keys, errors };
}
