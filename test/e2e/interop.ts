/**
 * Interop (mock-genesis) validator keys, as `lodestar dev --genesisValidators N` puts them in its
 * genesis state: sk_i = int.from_bytes(sha256(i.to_bytes(32, 'little')), 'little') mod r, as 32
 * bytes big-endian (r: the BLS12-381 group order).
 */
import { createHash } from "node:crypto";

const CURVE_ORDER = 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001n;

/** Interop secret key `index` (32 bytes, big-endian). */
export function interopSecret(index: number): Uint8Array {
  if (!Number.isSafeInteger(index) || index < 0) throw new RangeError(`bad interop index ${index}`);
  const le = Buffer.alloc(32);
  let n = BigInt(index);
  for (let i = 0; i < 32 && n > 0n; i++, n >>= 8n) le[i] = Number(n & 0xffn);
  const digest = createHash("sha256").update(le).digest();
  const sk = BigInt("0x" + Buffer.from(digest).reverse().toString("hex")) % CURVE_ORDER;
  return Uint8Array.from(Buffer.from(sk.toString(16).padStart(64, "0"), "hex"));
}

/** Interop secret keys 0..count-1. */
export const interopSecrets = (count: number): Uint8Array[] => Array.from({ length: count }, (_, i) => interopSecret(i));

/** The public key of interop validator 0 (from the Lodestar recipe's README). */
export const INTEROP_PUBKEY_0 = "0xa99a76ed7796f7be22d5b7e85deeb7c5677e88e511e0b337618f8c4eb61349b4bf2d153f649f7b53359fe8b94a38e44c";
