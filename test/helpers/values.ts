/** Small test values shared by the slashing-protection tests. */

/** A distinct, well-formed (not a valid BLS point) 48-byte pubkey for validator `i`. */
export const pubkey = (i: number): string => "0x" + i.toString(16).padStart(96, "0");
/** A 32-byte signing root filled with byte `b` (0 = the all-zero, unknown root). */
export const root = (b: number): Uint8Array => new Uint8Array(32).fill(b);
/** The same root as 0x-hex, as interchange files write it. */
export const hex32 = (b: number): string => "0x" + b.toString(16).padStart(2, "0").repeat(32);

/** A small deterministic PRNG (mulberry32): seeded tests that fail the same way every time. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
