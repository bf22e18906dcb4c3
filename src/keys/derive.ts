/**
 * BLS12-381 key derivation (EIP-2333) along EIP-2334 paths.
 * https://eips.ethereum.org/EIPS/eip-2333, https://eips.ethereum.org/EIPS/eip-2334
 *
 * The tree hashing itself is blst's (SecretKey.deriveMasterEip2333 / deriveChildEip2333).
 * Intermediate keys along a path stay inside blst SecretKey objects and are never copied
 * into JavaScript memory; only the final key is exported, as 32 big-endian bytes.
 */
import { SecretKey } from "@chainsafe/blst";
import { VigilError } from "../errors.js";

/** EIP-2334: purpose 12381 (the BLS12-381 curve). */
export const EIP2334_PURPOSE = 12381;
/** EIP-2334: coin type 3600 for Ethereum consensus-layer keys. */
export const EIP2334_COIN_TYPE = 3600;
/** EIP-2334: "at least 4 levels below m MUST be used". */
export const EIP2334_MIN_DEPTH = 4;
const MAX_INDEX = 2 ** 32 - 1;

const badPath = (path: string, why: string): VigilError =>
  new VigilError("bad_request", "INVALID_PATH", `invalid EIP-2334 path ${JSON.stringify(path)}: ${why}`);

function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0 || index > MAX_INDEX) {
    throw new VigilError("bad_request", "INVALID_INDEX", `EIP-2333 child index must be an integer in [0, 2^32-1] (got ${index})`);
  }
}

function secretKeyOf(secret: Uint8Array, what: string): SecretKey {
  if (!(secret instanceof Uint8Array) || secret.length !== 32) {
    throw new VigilError("bad_request", "INVALID_SECRET", `${what} must be 32 bytes`);
  }
  try {
    return SecretKey.fromBytes(secret);
  } catch {
    throw new VigilError("bad_request", "INVALID_SECRET", `${what} is not a valid BLS secret key`);
  }
}

function masterKey(seed: Uint8Array): SecretKey {
  // EIP-2333 derive_master_SK: "seed ... MUST be at least 32 bytes" (BIP-39 seeds are 64).
  if (!(seed instanceof Uint8Array) || seed.length < 32) {
    throw new VigilError("bad_request", "INVALID_SEED", `EIP-2333 seed must be at least 32 bytes (got ${seed?.length ?? 0})`);
  }
  return SecretKey.deriveMasterEip2333(seed);
}

/** EIP-2333 derive_master_SK(seed): the 32-byte big-endian master secret key. */
export function deriveMasterSK(seed: Uint8Array): Uint8Array {
  return masterKey(seed).toBytes();
}

/** EIP-2333 derive_child_SK(parent_SK, index): the 32-byte big-endian child secret key. */
export function deriveChildSK(parent: Uint8Array, index: number): Uint8Array {
  checkIndex(index);
  return secretKeyOf(parent, "parent secret key").deriveChildEip2333(index).toBytes();
}

/**
 * Parses an EIP-2334 path "m / purpose / coin_type / account / use [/ …]" into its indices
 * below m: `parsePath("m/12381/3600/0/0/0")` → [12381, 3600, 0, 0, 0]. Requires purpose 12381,
 * coin type 3600 and at least 4 levels below m; every level is a decimal integer in [0, 2^32-1]
 * written without leading zeros. EIP-2333 has no hardened derivation, so `'` or `h` is refused.
 */
export function parsePath(path: string): number[] {
  if (typeof path !== "string") throw badPath(String(path), "not a string");
  const parts = path.split("/");
  if (parts[0] !== "m") throw badPath(path, 'must start with "m/"');
  const levels = parts.slice(1);
  if (levels.length < EIP2334_MIN_DEPTH) {
    throw badPath(path, `needs at least ${EIP2334_MIN_DEPTH} levels below m (m/purpose/coin_type/account/use), got ${levels.length}`);
  }
  const indices = levels.map((s, i) => {
    const where = `level ${i + 1} (${JSON.stringify(s)})`;
    if (s === "") throw badPath(path, `${where} is empty`);
    if (/^[0-9]+['hH]$/.test(s)) throw badPath(path, `${where}: EIP-2333 has no hardened derivation, write the index without ' or h`);
    if (!/^(0|[1-9][0-9]*)$/.test(s)) throw badPath(path, `${where} is not a decimal index without leading zeros`);
    const n = Number(s);
    if (n > MAX_INDEX) throw badPath(path, `${where} exceeds 2^32-1`);
    return n;
  });
  if (indices[0] !== EIP2334_PURPOSE) throw badPath(path, `purpose must be ${EIP2334_PURPOSE} (got ${indices[0]})`);
  if (indices[1] !== EIP2334_COIN_TYPE) throw badPath(path, `coin type must be ${EIP2334_COIN_TYPE} (got ${indices[1]})`);
  return indices;
}

function checkValidatorIndex(i: number): void {
  if (!Number.isInteger(i) || i < 0 || i > MAX_INDEX) {
    throw new VigilError("bad_request", "INVALID_INDEX", `validator key index must be an integer in [0, 2^32-1] (got ${i})`);
  }
}

/** EIP-2334 signing key of validator i: m/12381/3600/i/0/0. */
export function signingKeyPath(i: number): string {
  checkValidatorIndex(i);
  return `m/${EIP2334_PURPOSE}/${EIP2334_COIN_TYPE}/${i}/0/0`;
}

/** EIP-2334 withdrawal key of validator i: m/12381/3600/i/0. */
export function withdrawalKeyPath(i: number): string {
  checkValidatorIndex(i);
  return `m/${EIP2334_PURPOSE}/${EIP2334_COIN_TYPE}/${i}/0`;
}

/** The 32-byte big-endian secret key at an EIP-2334 path below the seed's master key. */
export function deriveKeyAtPath(seed: Uint8Array, path: string): Uint8Array {
  const indices = parsePath(path);
  let sk = masterKey(seed);
  for (const index of indices) sk = sk.deriveChildEip2333(index);
  return sk.toBytes();
}
