/**
 * EIP-2335 BLS keystores (version 4): strict parsing, decryption and encryption.
 * https://eips.ethereum.org/EIPS/eip-2335
 *
 * KDFs use node:crypto's asynchronous scrypt/pbkdf2 so that several keystores can be
 * decrypted in parallel on the libuv thread pool without blocking the event loop.
 */
import crypto from "node:crypto";
import { SecretKey } from "@chainsafe/blst";
import { VigilError } from "../errors.js";

// Cost bounds for untrusted keystores. EIP-2335 defaults (n=2^18 r=8 p=1, c=2^18) fit easily.
const SCRYPT_MAX_N = 2 ** 20;
const SCRYPT_MAX_R = 32;
const SCRYPT_MAX_P = 16;
const SCRYPT_MAX_MEM = 2 ** 30; // 128 * n * r bytes: 1 GiB
const SCRYPT_MAX_WORK = 2 ** 24; // n * r * p
const PBKDF2_MAX_C = 2 ** 24;
const MAX_SALT_BYTES = 1024;

export type KdfParams =
  | { readonly function: "scrypt"; readonly dklen: 32; readonly n: number; readonly r: number; readonly p: number; readonly salt: Uint8Array }
  | { readonly function: "pbkdf2"; readonly dklen: 32; readonly c: number; readonly prf: "hmac-sha256"; readonly salt: Uint8Array };

/** A validated keystore (binary fields decoded). Only parseKeystore creates these. */
export interface Keystore {
  readonly version: 4;
  readonly kdf: KdfParams;
  readonly checksum: Uint8Array; // sha256, 32 bytes
  readonly iv: Uint8Array; // aes-128-ctr, 16 bytes
  readonly cipherMessage: Uint8Array;
  readonly pubkey: string | null; // 0x lower-case hex, 48 bytes
  readonly uuid?: string;
  readonly path?: string;
  readonly description?: string;
}

interface Module<P> {
  function: string;
  params: P;
  message: string;
}

/** The JSON form of a keystore, as written by encryptKeystore. */
export interface KeystoreJson {
  crypto: {
    kdf: Module<
      | { dklen: number; n: number; r: number; p: number; salt: string }
      | { dklen: number; c: number; prf: string; salt: string }
    >;
    checksum: Module<Record<string, never>>;
    cipher: Module<{ iv: string }>;
  };
  description?: string;
  pubkey: string;
  path: string;
  uuid: string;
  version: 4;
}

const parsed = new WeakSet<object>();

const invalid = (message: string): VigilError => new VigilError("bad_request", "INVALID_KEYSTORE", `invalid keystore: ${message}`);

/** EIP-2335 "Password requirements": NFKD, strip C0, C1 and DEL control codes, UTF-8 encode. */
export function normalizePassword(password: string): Buffer {
  // eslint-disable-next-line no-control-regex
  return Buffer.from(password.normalize("NFKD").replace(/[\u0000-\u001f\u007f-\u009f]/g, ""), "utf8");
}

// ---------------------------------------------------------------- parsing

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

function obj(v: unknown, name: string): Record<string, unknown> {
  if (!isObject(v)) throw invalid(`${name} must be an object`);
  return v;
}

function str(v: unknown, name: string): string {
  if (typeof v !== "string") throw invalid(`${name} must be a string`);
  return v;
}

function optStr(v: unknown, name: string): string | undefined {
  return v === undefined ? undefined : str(v, name);
}

function int(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) {
    throw invalid(`${name} must be an integer in [${min}, ${max}] (got ${JSON.stringify(v)})`);
  }
  return v;
}

/** Hex with or without 0x (EIP-2335 files use none); `len` in bytes if fixed. */
function hex(v: unknown, name: string, len?: { exact?: number; min?: number; max?: number }): Uint8Array {
  const s = str(v, name);
  const h = s.startsWith("0x") || s.startsWith("0X") ? s.slice(2) : s;
  if (h.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(h)) throw invalid(`${name} must be hex`);
  const n = h.length / 2;
  if (len?.exact !== undefined && n !== len.exact) throw invalid(`${name} must be ${len.exact} bytes (got ${n})`);
  if (len?.min !== undefined && n < len.min) throw invalid(`${name} must be at least ${len.min} bytes (got ${n})`);
  if (len?.max !== undefined && n > len.max) throw invalid(`${name} must be at most ${len.max} bytes (got ${n})`);
  return new Uint8Array(Buffer.from(h, "hex"));
}

/** EIP-2335 "Modules": each of kdf, checksum, cipher is {function, params, message}. */
function mod(v: unknown, name: string): { fn: string; params: Record<string, unknown>; message: unknown } {
  const m = obj(v, name);
  return { fn: str(m.function, `${name}.function`), params: obj(m.params, `${name}.params`), message: m.message };
}

function parseKdf(v: unknown): KdfParams {
  const { fn, params, message } = mod(v, "crypto.kdf");
  str(message, "crypto.kdf.message"); // EIP-2335 "Modules": message is required (empty for KDFs)
  if (fn !== "scrypt" && fn !== "pbkdf2") throw invalid(`crypto.kdf.function ${JSON.stringify(fn)} is not supported (scrypt or pbkdf2)`);
  // Our checksum/cipher split DK into two 16-byte halves, so only dklen 32 is meaningful.
  if (params.dklen !== 32) throw invalid(`crypto.kdf.params.dklen must be 32 (got ${JSON.stringify(params.dklen)})`);
  const salt = hex(params.salt, "crypto.kdf.params.salt", { max: MAX_SALT_BYTES });
  if (fn === "scrypt") {
    // EIP-2335 "Supported KDFs": scrypt(n, r, p, dklen, salt)
    const n = int(params.n, "crypto.kdf.params.n", 2, SCRYPT_MAX_N);
    if ((n & (n - 1)) !== 0) throw invalid(`crypto.kdf.params.n must be a power of two (got ${n})`);
    const r = int(params.r, "crypto.kdf.params.r", 1, SCRYPT_MAX_R);
    const p = int(params.p, "crypto.kdf.params.p", 1, SCRYPT_MAX_P);
    if (128 * n * r > SCRYPT_MAX_MEM) throw invalid(`scrypt memory 128*n*r exceeds ${SCRYPT_MAX_MEM} bytes`);
    if (n * r * p > SCRYPT_MAX_WORK) throw invalid(`scrypt cost n*r*p exceeds ${SCRYPT_MAX_WORK}`);
    return { function: "scrypt", dklen: 32, n, r, p, salt };
  }
  // EIP-2335 "Supported KDFs": pbkdf2(c, dklen, prf = hmac-sha256, salt)
  if (params.prf !== "hmac-sha256") throw invalid(`crypto.kdf.params.prf ${JSON.stringify(params.prf)} is not supported (only hmac-sha256)`);
  const c = int(params.c, "crypto.kdf.params.c", 1, PBKDF2_MAX_C);
  return { function: "pbkdf2", dklen: 32, c, prf: "hmac-sha256", salt };
}

/** Validates an EIP-2335 v4 keystore object. Unknown extra fields are ignored. */
export function parseKeystore(json: unknown): Keystore {
  if (isObject(json) && parsed.has(json)) return json as unknown as Keystore;
  const ks = obj(json, "keystore");
  // EIP-2335 "Version": only version 4 exists
  if (ks.version === undefined) throw invalid("version is missing");
  if (ks.version !== 4) throw invalid(`version ${JSON.stringify(ks.version)} is not supported (only 4)`);
  const c = obj(ks.crypto, "crypto");
  const kdf = parseKdf(c.kdf);

  // EIP-2335 "Supported checksum functions": sha256
  const checksum = mod(c.checksum, "crypto.checksum");
  if (checksum.fn !== "sha256") throw invalid(`crypto.checksum.function ${JSON.stringify(checksum.fn)} is not supported (only sha256)`);
  const checksumMsg = hex(checksum.message, "crypto.checksum.message", { exact: 32 });

  // EIP-2335 "Supported ciphers": aes-128-ctr with a 16-byte iv
  const cipher = mod(c.cipher, "crypto.cipher");
  if (cipher.fn !== "aes-128-ctr") throw invalid(`crypto.cipher.function ${JSON.stringify(cipher.fn)} is not supported (only aes-128-ctr)`);
  const iv = hex(cipher.params.iv, "crypto.cipher.params.iv", { exact: 16 });
  const cipherMessage = hex(cipher.message, "crypto.cipher.message", { min: 1, max: 1024 });

  // EIP-2335 "pubkey": optional, hex of the 48-byte compressed public key
  const pubkey = ks.pubkey === undefined ? null : `0x${Buffer.from(hex(ks.pubkey, "pubkey", { exact: 48 })).toString("hex")}`;
  const out: Keystore = {
    version: 4,
    kdf,
    checksum: checksumMsg,
    iv,
    cipherMessage,
    pubkey,
    uuid: optStr(ks.uuid, "uuid"),
    path: optStr(ks.path, "path"),
    description: optStr(ks.description, "description"),
  };
  parsed.add(out);
  return out;
}

/** The keystore's declared public key (0x lower-case hex), or null if it has none. */
export function keystorePubkey(keystore: Keystore | unknown): string | null {
  return parseKeystore(keystore).pubkey;
}

// ---------------------------------------------------------------- crypto

function deriveKey(kdf: KdfParams, password: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, key: Buffer): void => {
      if (err) reject(invalid(`key derivation failed: ${err.message}`));
      else resolve(key);
    };
    if (kdf.function === "scrypt") {
      // OpenSSL needs about 128*r*(n + p + 2) bytes; add slack.
      const maxmem = 128 * kdf.r * (kdf.n + kdf.p + 2) + 2 ** 20;
      crypto.scrypt(password, kdf.salt, kdf.dklen, { N: kdf.n, r: kdf.r, p: kdf.p, maxmem }, done);
    } else {
      crypto.pbkdf2(password, kdf.salt, kdf.c, kdf.dklen, "sha256", done);
    }
  });
}

/** EIP-2335 "Checksum": sha256(DK[16:32] ‖ cipher.message). */
const checksumOf = (dk: Uint8Array, cipherMessage: Uint8Array): Buffer =>
  crypto.createHash("sha256").update(dk.subarray(16, 32)).update(cipherMessage).digest();

function aes128ctr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const c = crypto.createCipheriv("aes-128-ctr", key, iv); // CTR: encryption = decryption
  const a = c.update(data);
  const b = c.final();
  const out = new Uint8Array(a.length + b.length); // own memory, not Buffer's shared pool
  out.set(a);
  out.set(b, a.length);
  a.fill(0);
  return out;
}

/** The 0x lower-case hex public key of a 32-byte BLS secret key. */
export function pubkeyFromSecret(secret: Uint8Array): string {
  return publicKeyOf(secret, "INVALID_SECRET", "secret");
}

function publicKeyOf(secret: Uint8Array, code: string, what: string): string {
  let sk: SecretKey;
  try {
    sk = SecretKey.fromBytes(secret);
  } catch {
    throw new VigilError("bad_request", code, `${what} is not a valid BLS secret key`);
  }
  return `0x${Buffer.from(sk.toPublicKey().toBytes()).toString("hex")}`;
}

/** Decrypts a keystore (parsed or raw JSON) and returns the 32-byte BLS secret key. */
export async function decryptKeystore(keystore: Keystore | unknown, password: string): Promise<Uint8Array> {
  const ks = parseKeystore(keystore); // all validation happens before any KDF work
  const pw = normalizePassword(password);
  let dk: Buffer;
  try {
    dk = await deriveKey(ks.kdf, pw);
  } finally {
    pw.fill(0);
  }
  let secret: Uint8Array;
  try {
    // EIP-2335 "Decryption": verify the checksum before decrypting
    if (!crypto.timingSafeEqual(checksumOf(dk, ks.cipherMessage), ks.checksum)) {
      throw new VigilError("bad_request", "WRONG_PASSWORD", "keystore checksum mismatch: wrong password");
    }
    secret = aes128ctr(dk.subarray(0, 16), ks.iv, ks.cipherMessage);
  } finally {
    dk.fill(0);
  }
  try {
    if (secret.length !== 32) throw invalid(`decrypted secret is ${secret.length} bytes, expected 32`);
    const pubkey = publicKeyOf(secret, "INVALID_KEYSTORE", "decrypted secret");
    if (ks.pubkey !== null && ks.pubkey !== pubkey) {
      throw new VigilError("bad_request", "PUBKEY_MISMATCH", `keystore pubkey ${ks.pubkey} does not match its secret (${pubkey})`);
    }
  } catch (e) {
    secret.fill(0);
    throw e;
  }
  return secret;
}

export interface EncryptOptions {
  kdf?: "scrypt" | "pbkdf2";
  path?: string;
  description?: string;
  /** scrypt n (power of two); default 262144 per EIP-2335. Lower only for tests. */
  scryptN?: number;
}

/** Encrypts a 32-byte BLS secret into a standard EIP-2335 v4 keystore. */
export async function encryptKeystore(secret: Uint8Array, password: string, opts: EncryptOptions = {}): Promise<KeystoreJson> {
  if (secret.length !== 32) throw new VigilError("bad_request", "INVALID_SECRET", `secret must be 32 bytes (got ${secret.length})`);
  const pubkey = publicKeyOf(secret, "INVALID_SECRET", "secret");
  const salt = crypto.randomBytes(32);
  const iv = crypto.randomBytes(16);
  // EIP-2335 test vectors / recommended costs: scrypt n=2^18 r=8 p=1, pbkdf2 c=2^18, dklen 32
  const kdfJson: KeystoreJson["crypto"]["kdf"] =
    opts.kdf === "pbkdf2"
      ? { function: "pbkdf2", params: { dklen: 32, c: 262144, prf: "hmac-sha256", salt: salt.toString("hex") }, message: "" }
      : { function: "scrypt", params: { dklen: 32, n: opts.scryptN ?? 262144, r: 8, p: 1, salt: salt.toString("hex") }, message: "" };
  let kdf: KdfParams;
  try {
    kdf = parseKdf(kdfJson); // the same bounds as for loading (e.g. on scryptN)
  } catch (e) {
    throw new VigilError("bad_request", "INVALID_OPTIONS", `encryptKeystore: ${e instanceof Error ? e.message : String(e)}`);
  }

  const pw = normalizePassword(password);
  let dk: Buffer;
  try {
    dk = await deriveKey(kdf, pw);
  } finally {
    pw.fill(0);
  }
  let message: Uint8Array;
  let checksum: Buffer;
  try {
    // EIP-2335 "Encryption": cipher.message = AES-128-CTR(DK[0:16], iv, secret)
    message = aes128ctr(dk.subarray(0, 16), iv, secret);
    checksum = checksumOf(dk, message);
  } finally {
    dk.fill(0);
  }
  return {
    crypto: {
      kdf: kdfJson,
      checksum: { function: "sha256", params: {}, message: checksum.toString("hex") },
      cipher: { function: "aes-128-ctr", params: { iv: iv.toString("hex") }, message: Buffer.from(message).toString("hex") },
    },
    ...(opts.description !== undefined ? { description: opts.description } : {}),
    pubkey: pubkey.slice(2), // EIP-2335 keystores carry no 0x prefix
    path: opts.path ?? "", // EIP-2335 "Path": empty string when unknown
    uuid: crypto.randomUUID(), // EIP-2335 "UUID": UUID v4
    version: 4,
  };
}
