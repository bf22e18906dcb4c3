/**
 * The sealed key store: many validator keys behind ONE passphrase and ONE key derivation.
 *
 * Decrypting 10,000 EIP-2335 keystores costs one scrypt each (~0.9 s apiece). Here a single
 * scrypt of the operator's passphrase yields the store keys, and each validator key is sealed
 * with AES-256-GCM bound to its public key, so unlocking 10,000 keys costs one scrypt plus
 * 10,000 AES-GCM opens (milliseconds).
 *
 * File format, version 1 (JSON, UTF-8, written with mode 0600 by an atomic rewrite):
 *
 *   {
 *     "format": "vigil-sealed-keys",
 *     "version": 1,
 *     "kdf": { "function": "scrypt", "n": 65536, "r": 8, "p": 16, "salt": "<32 bytes hex>" },
 *     "check": { "iv": "<12 bytes hex>", "sealed": "<hex: AES-256-GCM ciphertext ‖ 16-byte tag>" },
 *     "keys": [
 *       { "pubkey": "0x<48 bytes hex>", "iv": "<12 bytes hex>", "sealed": "<48 bytes hex: 32 ‖ tag>",
 *         "path": "m/12381/3600/0/0/0", "added": "2025-01-01T00:00:00.000Z" }
 *     ],
 *     "mac": "<32 bytes hex>",
 *     "checksum": "<32 bytes hex>"
 *   }
 *
 * All hex is lower case without 0x, except pubkeys (0x-prefixed, lower case). "path" is optional
 * (absent when unknown; never ""). "added" is an ISO-8601 UTC time with milliseconds. Unknown
 * fields are refused (a later format gets a new version number).
 *
 * Keys. P = the passphrase normalised as an EIP-2335 password (NFKD, C0/C1/DEL removed, UTF-8).
 *   ikm     = scrypt(P, salt, n, r, p, dkLen 32)
 *   sealKey = HKDF-SHA256(ikm, salt, info "vigil-sealed-keys/v1/seal", 32)   (the KEK)
 *   macKey  = HKDF-SHA256(ikm, salt, info "vigil-sealed-keys/v1/mac", 32)
 * ikm is zeroed at once; sealKey and macKey live only in memory until close().
 *
 * Canonical encoding. field(s) = u32be(byte length of UTF-8(s)) ‖ UTF-8(s); numbers are written
 * in decimal, hex as stored (lower case), an absent path as "".
 *   AAD(check)      = field("vigil-sealed-keys") ‖ field("1") ‖ field(salt) ‖ field("check")
 *   AAD(key)        = field("vigil-sealed-keys") ‖ field("1") ‖ field(salt) ‖ field("key") ‖ field(pubkey)
 *   canonical(file) = field("vigil-sealed-keys") ‖ field("1") ‖ field("scrypt") ‖ field(n) ‖ field(r)
 *                     ‖ field(p) ‖ field(salt) ‖ field(check.iv) ‖ field(check.sealed) ‖ field(#keys)
 *                     ‖ for each key in file order: field(pubkey) ‖ field(iv) ‖ field(sealed)
 *                       ‖ field(path or "") ‖ field(added)
 *
 *   check.sealed = AES-256-GCM(sealKey, check.iv, "vigil-sealed-keys: passphrase check", AAD(check))
 *   key.sealed   = AES-256-GCM(sealKey, key.iv, 32-byte BLS secret (big-endian), AAD(key))
 *   mac          = HMAC-SHA256(macKey, canonical(file))
 *   checksum     = SHA-256(canonical(file))
 *
 * Opening checks, in order (the first failure is the error):
 *   unreadable JSON, wrong "format", malformed fields, checksum mismatch → CORRUPT_KEY_STORE
 *   "version" other than 1                                          → UNSUPPORTED_KEY_STORE_VERSION
 *   check does not open under sealKey                               → WRONG_PASSPHRASE
 *   mac mismatch                                                    → CORRUPT_KEY_STORE
 * The unkeyed checksum tells accidental damage (a flipped byte, a truncated or hand-edited file;
 * even in the salt or KDF parameters, which would otherwise look like a wrong passphrase) from a
 * wrong passphrase, before any KDF work, and lets `keys list` check the file without unlocking.
 * It protects nothing against a deliberate edit: the mac does (deleted, added, reordered or edited
 * entries), and each entry's AAD binds its secret to its pubkey, the format version and this
 * store's salt (so a sealed value cannot be moved to another pubkey or into another store, even
 * one with the same passphrase). A deliberate edit of kdf/salt/check with a recomputed checksum
 * reads as WRONG_PASSPHRASE: without the right key the two cannot be told apart.
 *
 * Writes: `<file>.tmp` is created exclusively (O_EXCL, mode 0600; it doubles as the writers'
 * lock), the current file is checked to be the one this store last read or wrote (else
 * KEY_STORE_CHANGED: another process changed it), the new text is written and fsynced, renamed
 * over the file, and the directory is fsynced. A crash leaves the old or the new file, never a
 * mix; a leftover `<file>.tmp` (KEY_STORE_BUSY) may be deleted once no Vigil process is writing.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { VigilError } from "../errors.js";
import { fsyncDir } from "../fs-atomic.js";
import { Serial } from "../serial.js";
import { normalizePassword, pubkeyFromSecret } from "./keystore.js";
import { STORE_SCRYPT } from "./scrypt-cost.js";

export const KEY_STORE_FORMAT = "vigil-sealed-keys";
export const KEY_STORE_VERSION = 1;
/**
 * Default KDF cost for new stores (scrypt-cost.ts): a guess costs an attacker the same memory ×
 * time as with EIP-2335's recommended parameters (64 MiB held 4× as long instead of 256 MiB; 4× the
 * work), while the signer's peak memory at unlock is 64 MiB instead of 256 MiB. About 1.6 s here.
 * Stores keep the parameters they were created with (`vigil keys passphrase` re-seals with these).
 */
export const DEFAULT_SCRYPT_N = STORE_SCRYPT.n;
const SCRYPT_R = STORE_SCRYPT.r;
const SCRYPT_P = STORE_SCRYPT.p;
/** Accepted scrypt n. Below the default only for tests (create() must be asked explicitly). */
const MIN_SCRYPT_N = 2 ** 10;
const MAX_SCRYPT_N = 2 ** 20;
const MAX_SCRYPT_R = 32;
const MAX_SCRYPT_P = 16;
const MAX_SCRYPT_MEM = 2 ** 30; // 128 * n * r bytes
const MAX_PATH_LENGTH = 1024;

const SALT_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const SECRET_BYTES = 32;
const CHECK_PLAINTEXT = Buffer.from("vigil-sealed-keys: passphrase check", "utf8");
const INFO_SEAL = "vigil-sealed-keys/v1/seal";
const INFO_MAC = "vigil-sealed-keys/v1/mac";

const PUBKEY_RE = /^0x[0-9a-f]{96}$/;
const ADDED_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const hexRe = (bytes: number): RegExp => new RegExp(`^[0-9a-f]{${bytes * 2}}$`);
const SALT_RE = hexRe(SALT_BYTES);
const IV_RE = hexRe(IV_BYTES);
const SEALED_KEY_RE = hexRe(SECRET_BYTES + TAG_BYTES);
const CHECK_SEALED_RE = hexRe(CHECK_PLAINTEXT.length + TAG_BYTES);
const DIGEST_RE = hexRe(32);

// ---------------------------------------------------------------- types

interface KdfJson {
  function: "scrypt";
  n: number;
  r: number;
  p: number;
  salt: string;
}

interface EntryJson {
  pubkey: string;
  iv: string;
  sealed: string;
  path?: string;
  added: string;
}

/** The file's content; `mac` and `checksum` cover everything else (see canonical()). */
interface StoreJson {
  format: typeof KEY_STORE_FORMAT;
  version: typeof KEY_STORE_VERSION;
  kdf: KdfJson;
  check: { iv: string; sealed: string };
  keys: EntryJson[];
  mac: string;
  checksum: string;
}

type Unsigned = Omit<StoreJson, "mac" | "checksum">;

interface StoreKeys {
  seal: Buffer; // the KEK
  mac: Buffer;
}

export interface KeyInfo {
  pubkey: string;
  path?: string;
  added: string;
}

// ---------------------------------------------------------------- errors

const corrupt = (file: string, why: string): VigilError =>
  new VigilError("bad_request", "CORRUPT_KEY_STORE", `key store ${file} is corrupt: ${why}`);

const locked = (): VigilError => new VigilError("unavailable", "KEY_STORE_LOCKED", "the key store is closed (locked); open it again");

function normalizePubkey(pubkey: string): string {
  const p = typeof pubkey === "string" ? pubkey.toLowerCase() : "";
  if (!PUBKEY_RE.test(p)) throw new VigilError("bad_request", "INVALID_PUBKEY", `not a 0x-prefixed 48-byte hex public key: ${JSON.stringify(pubkey)}`);
  return p;
}

// ---------------------------------------------------------------- canonical encoding and crypto

function fields(values: readonly (string | number)[]): Buffer[] {
  const out: Buffer[] = [];
  for (const v of values) {
    const b = Buffer.from(String(v), "utf8");
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32BE(b.length);
    out.push(len, b);
  }
  return out;
}

function canonical(doc: Unsigned): Buffer {
  const parts = fields([
    KEY_STORE_FORMAT,
    KEY_STORE_VERSION,
    doc.kdf.function,
    doc.kdf.n,
    doc.kdf.r,
    doc.kdf.p,
    doc.kdf.salt,
    doc.check.iv,
    doc.check.sealed,
    doc.keys.length,
  ]);
  for (const k of doc.keys) parts.push(...fields([k.pubkey, k.iv, k.sealed, k.path ?? "", k.added]));
  return Buffer.concat(parts);
}

const aadCheck = (salt: string): Buffer => Buffer.concat(fields([KEY_STORE_FORMAT, KEY_STORE_VERSION, salt, "check"]));
const aadKey = (salt: string, pubkey: string): Buffer => Buffer.concat(fields([KEY_STORE_FORMAT, KEY_STORE_VERSION, salt, "key", pubkey]));

const sha256Hex = (data: Uint8Array): string => crypto.createHash("sha256").update(data).digest("hex");
const macHex = (key: Buffer, data: Uint8Array): string => crypto.createHmac("sha256", key).update(data).digest("hex");

function sign(doc: Unsigned, macKey: Buffer): StoreJson {
  const c = canonical(doc);
  return { ...doc, mac: macHex(macKey, c), checksum: sha256Hex(c) };
}

function hexEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && crypto.timingSafeEqual(x, y);
}

function scrypt(password: Buffer, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const maxmem = 128 * r * (n + p + 2) + 2 ** 20; // what OpenSSL needs, plus slack
    crypto.scrypt(password, salt, 32, { N: n, r, p, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

async function deriveKeys(passphrase: string, kdf: KdfJson): Promise<StoreKeys> {
  const pw = normalizePassword(passphrase);
  const salt = Buffer.from(kdf.salt, "hex");
  let ikm: Buffer;
  try {
    ikm = await scrypt(pw, salt, kdf.n, kdf.r, kdf.p);
  } catch (e) {
    throw new VigilError("internal", "KDF_FAILED", `scrypt failed: ${(e as Error).message}`);
  } finally {
    pw.fill(0);
  }
  try {
    return {
      seal: Buffer.from(crypto.hkdfSync("sha256", ikm, salt, INFO_SEAL, 32)),
      mac: Buffer.from(crypto.hkdfSync("sha256", ikm, salt, INFO_MAC, 32)),
    };
  } finally {
    ikm.fill(0);
  }
}

function zeroKeys(k: StoreKeys): void {
  k.seal.fill(0);
  k.mac.fill(0);
}

function seal(key: Buffer, plaintext: Uint8Array, aad: Buffer): { iv: string; sealed: string } {
  const iv = crypto.randomBytes(IV_BYTES);
  const c = crypto.createCipheriv("aes-256-gcm", key, iv, { authTagLength: TAG_BYTES });
  c.setAAD(aad);
  const sealed = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  return { iv: iv.toString("hex"), sealed: sealed.toString("hex") };
}

/** The plaintext in fresh memory (not Buffer's shared pool), or null if authentication fails. */
function unsealRaw(key: Buffer, ivHex: string, sealedHex: string, aad: Buffer): Uint8Array | null {
  const sealed = Buffer.from(sealedHex, "hex");
  const d = crypto.createDecipheriv("aes-256-gcm", key, Buffer.from(ivHex, "hex"), { authTagLength: TAG_BYTES });
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const a = d.update(sealed.subarray(0, sealed.length - TAG_BYTES));
  let ok = true;
  try {
    d.final();
  } catch {
    ok = false;
  }
  if (!ok) {
    a.fill(0);
    return null;
  }
  const out = new Uint8Array(a.length);
  out.set(a);
  a.fill(0);
  return out;
}

// ---------------------------------------------------------------- parsing

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function onlyFields(o: Record<string, unknown>, allowed: readonly string[], where: string, file: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw corrupt(file, `unknown field ${where}${k}`);
}

function hexField(v: unknown, re: RegExp, name: string, file: string): string {
  if (typeof v !== "string" || !re.test(v)) throw corrupt(file, `${name} is not valid (expected lower-case hex of the right length)`);
  return v;
}

function intField(v: unknown, name: string, min: number, max: number, file: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    throw corrupt(file, `${name} must be an integer in [${min}, ${max}] (got ${JSON.stringify(v)})`);
  }
  return v;
}

/** Parses and validates the file's text (structure only: no checksum, no crypto). */
function parseStore(text: string, file: string): StoreJson {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw corrupt(file, `not valid JSON (truncated or damaged?): ${(e as Error).message}`);
  }
  if (!isObject(json)) throw corrupt(file, "not a JSON object");
  if (json.format !== KEY_STORE_FORMAT) throw corrupt(file, `not a Vigil key store (format ${JSON.stringify(json.format)}, expected "${KEY_STORE_FORMAT}")`);
  if (json.version !== KEY_STORE_VERSION) {
    if (typeof json.version === "number" && Number.isSafeInteger(json.version) && json.version > 0) {
      throw new VigilError(
        "bad_request",
        "UNSUPPORTED_KEY_STORE_VERSION",
        `key store ${file} has format version ${json.version}; this Vigil reads version ${KEY_STORE_VERSION} only (upgrade Vigil)`,
      );
    }
    throw corrupt(file, `invalid version ${JSON.stringify(json.version)}`);
  }
  onlyFields(json, ["format", "version", "kdf", "check", "keys", "mac", "checksum"], "", file);

  const k = json.kdf;
  if (!isObject(k)) throw corrupt(file, "kdf must be an object");
  onlyFields(k, ["function", "n", "r", "p", "salt"], "kdf.", file);
  if (k.function !== "scrypt") throw corrupt(file, `kdf.function ${JSON.stringify(k.function)} is not supported (scrypt)`);
  const n = intField(k.n, "kdf.n", MIN_SCRYPT_N, MAX_SCRYPT_N, file);
  if ((n & (n - 1)) !== 0) throw corrupt(file, `kdf.n must be a power of two (got ${n})`);
  const r = intField(k.r, "kdf.r", 1, MAX_SCRYPT_R, file);
  const p = intField(k.p, "kdf.p", 1, MAX_SCRYPT_P, file);
  if (128 * n * r > MAX_SCRYPT_MEM) throw corrupt(file, `scrypt memory 128*n*r exceeds ${MAX_SCRYPT_MEM} bytes`);
  const kdf: KdfJson = { function: "scrypt", n, r, p, salt: hexField(k.salt, SALT_RE, "kdf.salt", file) };

  const c = json.check;
  if (!isObject(c)) throw corrupt(file, "check must be an object");
  onlyFields(c, ["iv", "sealed"], "check.", file);
  const check = { iv: hexField(c.iv, IV_RE, "check.iv", file), sealed: hexField(c.sealed, CHECK_SEALED_RE, "check.sealed", file) };

  if (!Array.isArray(json.keys)) throw corrupt(file, "keys must be an array");
  const seen = new Set<string>();
  const keys: EntryJson[] = json.keys.map((e: unknown, i: number): EntryJson => {
    const where = `keys[${i}]`;
    if (!isObject(e)) throw corrupt(file, `${where} must be an object`);
    onlyFields(e, ["pubkey", "iv", "sealed", "path", "added"], `${where}.`, file);
    const pubkey = hexField(e.pubkey, PUBKEY_RE, `${where}.pubkey`, file);
    if (seen.has(pubkey)) throw corrupt(file, `${where}.pubkey ${pubkey} appears twice`);
    seen.add(pubkey);
    if (e.path !== undefined && (typeof e.path !== "string" || e.path === "" || e.path.length > MAX_PATH_LENGTH)) {
      throw corrupt(file, `${where}.path must be a non-empty string of at most ${MAX_PATH_LENGTH} characters`);
    }
    if (typeof e.added !== "string" || !ADDED_RE.test(e.added) || Number.isNaN(Date.parse(e.added))) {
      throw corrupt(file, `${where}.added must be an ISO-8601 UTC time`);
    }
    return {
      pubkey,
      iv: hexField(e.iv, IV_RE, `${where}.iv`, file),
      sealed: hexField(e.sealed, SEALED_KEY_RE, `${where}.sealed`, file),
      ...(e.path !== undefined ? { path: e.path as string } : {}),
      added: e.added,
    };
  });

  return {
    format: KEY_STORE_FORMAT,
    version: KEY_STORE_VERSION,
    kdf,
    check,
    keys,
    mac: hexField(json.mac, DIGEST_RE, "mac", file),
    checksum: hexField(json.checksum, DIGEST_RE, "checksum", file),
  };
}

/** Parses, validates and checks the checksum: the file is intact (not authenticated). */
function parseIntact(text: string, file: string): { doc: StoreJson; canonical: Buffer } {
  const doc = parseStore(text, file);
  const c = canonical(doc);
  if (!hexEqual(sha256Hex(c), doc.checksum)) {
    throw corrupt(file, "checksum mismatch: the file was damaged or edited (entries changed, removed or reordered)");
  }
  return { doc, canonical: c };
}

/** One key per line: readable, greppable, diffable. */
function serialize(doc: StoreJson): string {
  const j = JSON.stringify;
  const lines = doc.keys.map((k) => `    ${j(k)}`);
  return (
    "{\n" +
    `  "format": ${j(doc.format)},\n` +
    `  "version": ${j(doc.version)},\n` +
    `  "kdf": ${j(doc.kdf)},\n` +
    `  "check": ${j(doc.check)},\n` +
    (lines.length === 0 ? `  "keys": [],\n` : `  "keys": [\n${lines.join(",\n")}\n  ],\n`) +
    `  "mac": ${j(doc.mac)},\n` +
    `  "checksum": ${j(doc.checksum)}\n` +
    "}\n"
  );
}

// ---------------------------------------------------------------- file I/O

async function readStoreFile(file: string): Promise<Buffer> {
  try {
    return await fsp.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new VigilError("not_found", "NO_KEY_STORE", `no key store at ${file}`);
    throw new VigilError("unavailable", "KEY_STORE_UNREADABLE", `cannot read key store ${file}: ${(e as Error).message}`);
  }
}

/**
 * Atomic replace: exclusive `<file>.tmp` (0600; also the writers' lock), check that the current
 * file is `expected` (its SHA-256; null: must not exist), write, fsync, rename, fsync the directory.
 */
async function atomicWrite(file: string, text: string, expected: string | null): Promise<void> {
  const tmp = `${file}.tmp`;
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(tmp, "wx", 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") {
      throw new VigilError(
        "conflict",
        "KEY_STORE_BUSY",
        `${tmp} exists: another Vigil process is writing the key store, or one was interrupted; if none is running, delete ${tmp} and retry`,
      );
    }
    throw new VigilError("unavailable", "KEY_STORE_WRITE_FAILED", `cannot write ${tmp}: ${(e as Error).message}`);
  }
  let closed = false;
  let renamed = false;
  try {
    let current: Buffer | null = null;
    try {
      current = await fsp.readFile(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    if (expected === null && current !== null) {
      throw new VigilError("conflict", "STORE_EXISTS", `a key store already exists at ${file}; it is never overwritten`);
    }
    if (expected !== null && (current === null || sha256Hex(current) !== expected)) {
      throw new VigilError(
        "conflict",
        "KEY_STORE_CHANGED",
        `key store ${file} was ${current === null ? "removed" : "changed"} by another process since it was opened; open it again and retry`,
      );
    }
    await fh.chmod(0o600); // whatever the umask
    await fh.writeFile(text, "utf8");
    await fh.sync();
    closed = true;
    await fh.close();
    await fsp.rename(tmp, file);
    renamed = true;
    await fsyncDir(path.dirname(file));
  } catch (e) {
    if (!closed) await fh.close().catch(() => undefined);
    if (!renamed) await fsp.rm(tmp, { force: true }).catch(() => undefined);
    if (e instanceof VigilError) throw e;
    throw new VigilError("unavailable", "KEY_STORE_WRITE_FAILED", `cannot write key store ${file}: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------- the store

export interface CreateOptions {
  /** scrypt n (power of two); default DEFAULT_SCRYPT_N. Lower only for tests. */
  scryptN?: number;
  /** Asked once the key is derived, before the file is written: throw to write nothing (e.g. shutting down). */
  beforeWrite?: () => void;
}

export interface StoreSummary {
  version: number;
  kdf: { function: "scrypt"; n: number; r: number; p: number };
  keys: KeyInfo[];
}

/** KDF parameters with a fresh salt for a new store or a new passphrase (which must not be empty). */
function newKdf(passphrase: string, opts: CreateOptions): KdfJson {
  const n = opts.scryptN ?? DEFAULT_SCRYPT_N;
  if (!Number.isSafeInteger(n) || n < MIN_SCRYPT_N || n > MAX_SCRYPT_N || (n & (n - 1)) !== 0) {
    throw new VigilError("bad_request", "INVALID_OPTIONS", `scryptN must be a power of two in [${MIN_SCRYPT_N}, ${MAX_SCRYPT_N}] (got ${n})`);
  }
  if (typeof passphrase !== "string" || normalizePassword(passphrase).length === 0) {
    throw new VigilError("bad_request", "EMPTY_PASSPHRASE", "the key store passphrase must not be empty");
  }
  return { function: "scrypt", n, r: SCRYPT_R, p: SCRYPT_P, salt: crypto.randomBytes(SALT_BYTES).toString("hex") };
}

export class SealedKeyStore {
  private index = new Map<string, number>();
  /** add/remove/changePassphrase of one store object run one at a time. */
  private readonly serial = new Serial();

  private constructor(
    readonly file: string,
    private doc: StoreJson,
    private keys: StoreKeys | null,
    private diskDigest: string, // SHA-256 of the file text last read or written
  ) {
    this.reindex();
  }

  static exists(file: string): boolean {
    return fs.existsSync(file);
  }

  /** A new, empty store. Refuses to overwrite anything (conflict STORE_EXISTS). */
  static async create(file: string, passphrase: string, opts: CreateOptions = {}): Promise<SealedKeyStore> {
    const kdf = newKdf(passphrase, opts);
    if (SealedKeyStore.exists(file)) {
      throw new VigilError("conflict", "STORE_EXISTS", `a key store already exists at ${file}; it is never overwritten`);
    }
    const keys = await deriveKeys(passphrase, kdf);
    try {
      opts.beforeWrite?.();
      const check = seal(keys.seal, CHECK_PLAINTEXT, aadCheck(kdf.salt));
      const doc = sign({ format: KEY_STORE_FORMAT, version: KEY_STORE_VERSION, kdf, check, keys: [] }, keys.mac);
      const text = serialize(doc);
      await atomicWrite(file, text, null);
      return new SealedKeyStore(file, doc, keys, sha256Hex(Buffer.from(text, "utf8")));
    } catch (e) {
      zeroKeys(keys);
      throw e;
    }
  }

  /** Opens and authenticates a store: one scrypt, one HMAC over the key list. */
  static async open(file: string, passphrase: string): Promise<SealedKeyStore> {
    const raw = await readStoreFile(file);
    const { doc, canonical: c } = parseIntact(raw.toString("utf8"), file);
    const keys = await deriveKeys(typeof passphrase === "string" ? passphrase : "", doc.kdf);
    try {
      const check = unsealRaw(keys.seal, doc.check.iv, doc.check.sealed, aadCheck(doc.kdf.salt));
      if (check === null) throw new VigilError("unauthorized", "WRONG_PASSPHRASE", `wrong passphrase for key store ${file}`);
      if (!crypto.timingSafeEqual(check, CHECK_PLAINTEXT)) throw corrupt(file, "the passphrase check holds an unexpected value");
      if (!hexEqual(macHex(keys.mac, c), doc.mac)) {
        throw corrupt(file, "integrity tag (mac) mismatch: keys were added, removed, reordered or edited outside Vigil");
      }
    } catch (e) {
      zeroKeys(keys);
      throw e;
    }
    return new SealedKeyStore(file, doc, keys, sha256Hex(raw));
  }

  /**
   * The store's public content without the passphrase. The checksum guards against accidental
   * damage only: without the passphrase the list cannot be authenticated.
   */
  static async inspect(file: string): Promise<StoreSummary> {
    const { doc } = parseIntact((await readStoreFile(file)).toString("utf8"), file);
    const { n, r, p } = doc.kdf;
    return { version: doc.version, kdf: { function: "scrypt", n, r, p }, keys: doc.keys.map(info) };
  }

  get size(): number {
    return this.doc.keys.length;
  }

  get isOpen(): boolean {
    return this.keys !== null;
  }

  /** Public information on every key, in store order (works after close() too). */
  list(): KeyInfo[] {
    return this.doc.keys.map(info);
  }

  has(pubkey: string): boolean {
    return this.index.has(normalizePubkey(pubkey));
  }

  /**
   * Every secret key, in store order: AES-GCM only, no KDF. The caller owns (and should zero) the
   * returned secrets. Each secret is bound to its pubkey by the AEAD (pubkey in the AAD, checked
   * against the secret when it was added). If any entry fails authentication nothing is returned.
   */
  unsealAll(): { pubkey: string; secret: Uint8Array }[] {
    const keys = this.unlocked();
    const out: { pubkey: string; secret: Uint8Array }[] = [];
    try {
      for (const e of this.doc.keys) out.push({ pubkey: e.pubkey, secret: this.unsealEntry(keys, e) });
    } catch (err) {
      for (const o of out) o.secret.fill(0);
      throw err;
    }
    return out;
  }

  /** One secret key (the caller owns and should zero it). */
  unseal(pubkey: string): Uint8Array {
    const keys = this.unlocked();
    const p = normalizePubkey(pubkey);
    const i = this.index.get(p);
    if (i === undefined) throw new VigilError("not_found", "KEY_NOT_FOUND", `no key ${p} in the key store`);
    return this.unsealEntry(keys, this.doc.keys[i]);
  }

  /**
   * Seals and adds keys (all or nothing; one atomic rewrite). A key already in the store, or
   * twice in `keys`, is 'duplicate' (the stored entry is kept). Input secrets are not zeroed.
   */
  add(keys: { secret: Uint8Array; path?: string }[]): Promise<{ pubkey: string; status: "imported" | "duplicate" }[]> {
    return this.serial.run(async () => {
      const k = this.unlocked();
      // validate everything before changing anything
      const prepared = keys.map(({ secret, path: p }, i) => {
        if (!(secret instanceof Uint8Array) || secret.length !== SECRET_BYTES) {
          throw new VigilError("bad_request", "INVALID_SECRET", `keys[${i}]: a secret key must be ${SECRET_BYTES} bytes`);
        }
        if (p !== undefined && (typeof p !== "string" || p.length > MAX_PATH_LENGTH)) {
          throw new VigilError("bad_request", "INVALID_PATH", `keys[${i}]: path must be a string of at most ${MAX_PATH_LENGTH} characters`);
        }
        let pubkey: string;
        try {
          pubkey = pubkeyFromSecret(secret);
        } catch {
          throw new VigilError("bad_request", "INVALID_SECRET", `keys[${i}]: not a valid BLS secret key`);
        }
        return { secret, path: p === "" ? undefined : p, pubkey };
      });
      const added = new Date().toISOString();
      const results: { pubkey: string; status: "imported" | "duplicate" }[] = [];
      const fresh: EntryJson[] = [];
      const seen = new Set(this.index.keys());
      for (const { secret, path: p, pubkey } of prepared) {
        if (seen.has(pubkey)) {
          results.push({ pubkey, status: "duplicate" });
          continue;
        }
        seen.add(pubkey);
        fresh.push({ pubkey, ...seal(k.seal, secret, aadKey(this.doc.kdf.salt, pubkey)), ...(p !== undefined ? { path: p } : {}), added });
        results.push({ pubkey, status: "imported" });
      }
      if (fresh.length > 0) await this.commit([...this.doc.keys, ...fresh], k);
      return results;
    });
  }

  /** Removes keys (one atomic rewrite). */
  remove(pubkeys: string[]): Promise<{ pubkey: string; status: "deleted" | "not_found" }[]> {
    return this.serial.run(async () => {
      const k = this.unlocked();
      const wanted = pubkeys.map(normalizePubkey);
      const gone = new Set<string>();
      const results = wanted.map((pubkey) => {
        if (!this.index.has(pubkey) || gone.has(pubkey)) return { pubkey, status: "not_found" as const };
        gone.add(pubkey);
        return { pubkey, status: "deleted" as const };
      });
      if (gone.size > 0) await this.commit(this.doc.keys.filter((e) => !gone.has(e.pubkey)), k);
      return results;
    });
  }

  /**
   * A new passphrase: a new salt and store keys from the default KDF (or opts), every key
   * re-sealed under them, one atomic rewrite. Keys, paths and dates are kept. On any failure the
   * file and this object are unchanged.
   */
  changePassphrase(passphrase: string, opts: CreateOptions = {}): Promise<{ kdf: StoreSummary["kdf"] }> {
    return this.serial.run(async () => {
      const old = this.unlocked();
      const kdf = newKdf(passphrase, opts);
      const next = await deriveKeys(passphrase, kdf);
      const secrets: Uint8Array[] = [];
      try {
        const entries = this.doc.keys.map((e): EntryJson => {
          const secret = this.unsealEntry(old, e);
          secrets.push(secret);
          return { ...e, ...seal(next.seal, secret, aadKey(kdf.salt, e.pubkey)) };
        });
        const check = seal(next.seal, CHECK_PLAINTEXT, aadCheck(kdf.salt));
        await this.write(sign({ format: KEY_STORE_FORMAT, version: KEY_STORE_VERSION, kdf, check, keys: entries }, next.mac));
      } catch (e) {
        zeroKeys(next);
        throw e;
      } finally {
        for (const s of secrets) s.fill(0);
      }
      zeroKeys(old);
      this.keys = next;
      return { kdf: { function: "scrypt", n: kdf.n, r: kdf.r, p: kdf.p } };
    });
  }

  /** Zeroes the store keys. list() still works; anything needing a secret is refused. */
  close(): void {
    if (this.keys) zeroKeys(this.keys);
    this.keys = null;
  }

  // ---------------------------------------------------------------- private

  private unlocked(): StoreKeys {
    if (this.keys === null) throw locked();
    return this.keys;
  }

  private unsealEntry(keys: StoreKeys, e: EntryJson): Uint8Array {
    const secret = unsealRaw(keys.seal, e.iv, e.sealed, aadKey(this.doc.kdf.salt, e.pubkey));
    if (secret === null) throw corrupt(this.file, `the sealed key for ${e.pubkey} does not authenticate`);
    if (secret.length !== SECRET_BYTES) {
      secret.fill(0);
      throw corrupt(this.file, `the sealed key for ${e.pubkey} has the wrong length`);
    }
    return secret;
  }

  private async commit(entries: EntryJson[], k: StoreKeys): Promise<void> {
    const { mac: _m, checksum: _c, ...rest } = this.doc;
    await this.write(sign({ ...rest, keys: entries }, k.mac));
  }

  private async write(next: StoreJson): Promise<void> {
    const text = serialize(next);
    await atomicWrite(this.file, text, this.diskDigest);
    this.doc = next;
    this.diskDigest = sha256Hex(Buffer.from(text, "utf8"));
    this.reindex();
  }

  private reindex(): void {
    this.index = new Map(this.doc.keys.map((e, i) => [e.pubkey, i]));
  }
}

const info = (e: EntryJson): KeyInfo => ({ pubkey: e.pubkey, ...(e.path !== undefined ? { path: e.path } : {}), added: e.added });

/**
 * Internals for tests and tools (forging files to prove each defence holds on its own). Not an
 * API: nothing here is needed to use a store.
 */
export const sealedStoreInternals = {
  canonical: (doc: unknown): Buffer => canonical(doc as Unsigned),
  checksum: (doc: unknown): string => sha256Hex(canonical(doc as Unsigned)),
  deriveKeys: (passphrase: string, kdf: unknown): Promise<StoreKeys> => deriveKeys(passphrase, kdf as KdfJson),
  mac: (macKey: Buffer, doc: unknown): string => macHex(macKey, canonical(doc as Unsigned)),
  serialize: (doc: unknown): string => serialize(doc as StoreJson),
};
