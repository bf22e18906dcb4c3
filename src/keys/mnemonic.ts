/**
 * BIP-39 mnemonics (English wordlist): generation, validation with a reason, and the seed.
 * https://github.com/bitcoin/bips/blob/master/bip-0039.mediawiki
 *
 * The wordlist comes from @scure/bip39; randomness, SHA-256 and PBKDF2 from node:crypto.
 * Validation is done here (not with @scure/bip39's boolean check) so that the error says
 * what is wrong: an unknown word, the wrong number of words, or a bad checksum.
 */
import crypto from "node:crypto";
import { wordlist } from "@scure/bip39/wordlists/english.js";
import { VigilError } from "../errors.js";

/** Word counts BIP-39 defines (128..256 bits of entropy, in steps of 32). */
export const MNEMONIC_WORD_COUNTS = [12, 15, 18, 21, 24] as const;

const WORD_INDEX: ReadonlyMap<string, number> = new Map(wordlist.map((w, i) => [w, i]));
if (wordlist.length !== 2048 || WORD_INDEX.size !== 2048) throw new Error("BIP-39 English wordlist must have 2048 distinct words");

const invalid = (message: string): VigilError => new VigilError("bad_request", "INVALID_MNEMONIC", `invalid mnemonic: ${message}`);

/** NFKD, lower-case, split on any whitespace. */
function words(mnemonic: string): string[] {
  if (typeof mnemonic !== "string") throw invalid("not a string");
  const trimmed = mnemonic.normalize("NFKD").trim().toLowerCase();
  return trimmed === "" ? [] : trimmed.split(/\s+/);
}

/** Word indices (11 bits each, most significant first) packed into bytes: entropy ‖ checksum bits. */
function packIndices(indices: number[]): Uint8Array {
  const out = new Uint8Array(Math.ceil((indices.length * 11) / 8));
  let bit = 0;
  for (const idx of indices) {
    for (let b = 10; b >= 0; b--, bit++) if ((idx >> b) & 1) out[bit >> 3] |= 0x80 >> (bit & 7);
  }
  return out;
}

/** The first `bits` (≤ 8) bits of SHA-256(entropy), as a number. */
function checksumOf(entropy: Uint8Array, bits: number): number {
  const h = crypto.createHash("sha256").update(entropy).digest();
  return h[0] >> (8 - bits);
}

/** Encode entropy (16..32 bytes, a multiple of 4) as a BIP-39 English mnemonic. */
export function entropyToMnemonic(entropy: Uint8Array): string {
  if (entropy.length < 16 || entropy.length > 32 || entropy.length % 4 !== 0) {
    throw new VigilError("bad_request", "INVALID_ENTROPY", `entropy must be 16, 20, 24, 28 or 32 bytes (got ${entropy.length})`);
  }
  const checksumBits = entropy.length / 4; // ENT / 32
  const bits = new Uint8Array(entropy.length + 1); // entropy ‖ checksum (top checksumBits bits)
  bits.set(entropy);
  bits[entropy.length] = checksumOf(entropy, checksumBits) << (8 - checksumBits);
  const count = (entropy.length * 8 + checksumBits) / 11;
  const out: string[] = [];
  for (let w = 0, bit = 0; w < count; w++) {
    let idx = 0;
    for (let b = 0; b < 11; b++, bit++) idx = (idx << 1) | ((bits[bit >> 3] >> (7 - (bit & 7))) & 1);
    out.push(wordlist[idx]);
  }
  bits.fill(0);
  return out.join(" ");
}

/** A new 24-word mnemonic from 256 bits of node:crypto randomness. */
export function generateMnemonic(): string {
  const entropy = crypto.randomBytes(32);
  try {
    return entropyToMnemonic(entropy);
  } finally {
    entropy.fill(0);
  }
}

/**
 * Checks a mnemonic against the English wordlist and its checksum. Words are compared after NFKD
 * and lower-casing, and any run of whitespace separates them. Throws VigilError
 * bad_request INVALID_MNEMONIC naming the problem; the message never repeats a valid word.
 */
export function validateMnemonic(mnemonic: string): void {
  const ws = words(mnemonic);
  if (!(MNEMONIC_WORD_COUNTS as readonly number[]).includes(ws.length)) {
    throw invalid(`expected ${MNEMONIC_WORD_COUNTS.join(", ")} words (24 for keys Vigil generates), got ${ws.length}`);
  }
  const indices: number[] = [];
  const unknown: string[] = [];
  ws.forEach((w, i) => {
    const idx = WORD_INDEX.get(w);
    if (idx === undefined) unknown.push(`word ${i + 1} ${JSON.stringify(w.length > 16 ? w.slice(0, 16) + "…" : w)}`);
    else indices.push(idx);
  });
  if (unknown.length > 0) throw invalid(`not in the BIP-39 English wordlist: ${unknown.join(", ")}`);
  // ENT + CS = 11 * words, CS = ENT / 32: the checksum is the top CS bits of the byte after ENT.
  const checksumBits = ws.length / 3;
  const entropyBytes = (ws.length * 11 - checksumBits) / 8;
  const bits = packIndices(indices);
  const checksum = bits[entropyBytes] >> (8 - checksumBits);
  const expected = checksumOf(bits.subarray(0, entropyBytes), checksumBits);
  bits.fill(0);
  if (checksum !== expected) {
    throw invalid("bad checksum: a word is wrong or the words are out of order");
  }
}

/** The mnemonic in canonical form (NFKD, lower case, single spaces) after validating it. */
export function normalizeMnemonic(mnemonic: string): string {
  validateMnemonic(mnemonic);
  return words(mnemonic).join(" ");
}

/**
 * BIP-39 seed: PBKDF2-HMAC-SHA512(NFKD(mnemonic), "mnemonic" ‖ NFKD(passphrase), 2048, 64 bytes).
 * The mnemonic is validated first and used in canonical form, so stray whitespace or capitals
 * in a recovery file give the same seed as the words as generated.
 */
export async function mnemonicToSeed(mnemonic: string, passphrase = ""): Promise<Uint8Array> {
  const m = Buffer.from(normalizeMnemonic(mnemonic), "utf8");
  const salt = Buffer.from("mnemonic" + passphrase.normalize("NFKD"), "utf8");
  try {
    const seed = await new Promise<Buffer>((resolve, reject) =>
      crypto.pbkdf2(m, salt, 2048, 64, "sha512", (err, key) => (err ? reject(err) : resolve(key))),
    );
    const out = new Uint8Array(seed); // own memory, not Buffer's shared pool
    seed.fill(0);
    return out;
  } finally {
    m.fill(0);
    salt.fill(0);
  }
}
