/**
 * scrypt's cost, for choosing and checking the sealed key store's parameters. No imports: the
 * doctor reads these without loading BLS.
 *
 * scrypt (RFC 7914 §6) holds 128·r·n bytes for each of its p ROMix runs, one after the other, and
 * each run is 2·n BlockMix calls over 128·r bytes: an attacker's memory × time per guess grows as
 * memory · p · n · r.
 */
export interface ScryptParams {
  n: number;
  r: number;
  p: number;
}

/** EIP-2335's recommended scrypt parameters (the keystore format's default). */
export const EIP2335_SCRYPT: ScryptParams = { n: 2 ** 18, r: 8, p: 1 };

/**
 * The sealed key store's parameters for new stores and new passphrases: the same memory × time
 * per guess as EIP-2335's, in a quarter of the memory (64 MiB instead of 256 MiB at unlock).
 */
export const STORE_SCRYPT: ScryptParams = { n: 2 ** 16, r: 8, p: 16 };

/** Bytes scrypt holds while it runs. */
export const scryptMemory = (k: ScryptParams): number => 128 * k.r * k.n;

/** An attacker's memory × time per guess, in units of bytes × BlockMix(r=1) calls. */
export const scryptAreaTime = (k: ScryptParams): number => scryptMemory(k) * k.p * 2 * k.n * k.r;
