/**
 * The in-memory key vault: decrypted secret keys, by public key. Key material never leaves
 * this object (no getter returns it) and never touches disk.
 */
import { SecretKey } from "@chainsafe/blst";
import { VigilError } from "../errors.js";
import type { SignPool } from "./sign-pool.js";

export type KeySource = "keystore" | "sealed" | "dev";

export interface VaultEntry {
  pubkey: string;
  secret: Uint8Array;
  /** File or store the key came from (for logs). */
  origin: string;
  /** EIP-2334 derivation path, when known. */
  path?: string;
}

interface Held {
  /** The 32-byte secret (a compact copy: a SecretKey object per key costs over 1 KB; zeroed on removal). */
  secret: Uint8Array;
  /** Which holding of the key this is: a key removed and loaded again gets a new one. */
  generation: number;
  source: KeySource;
  origin: string;
  path?: string;
}

export class KeyVault {
  private keys = new Map<string, Held>();
  private generations = 0;
  private pool: SignPool | null = null;

  /** Sign on these worker threads from now on (they get copies of the keys held). */
  attachPool(pool: SignPool): void {
    this.pool = pool;
    pool.add([...this.keys].map(([pubkey, h]) => ({ pubkey, secret: h.secret.slice() })));
  }

  private static load(e: VaultEntry): { pubkey: string; secret: Uint8Array } {
    const sk = SecretKey.fromBytes(e.secret);
    const secret = Uint8Array.from(e.secret);
    e.secret.fill(0);
    const pubkey = "0x" + Buffer.from(sk.toPublicKey().toBytes()).toString("hex");
    if (pubkey !== e.pubkey.toLowerCase()) {
      secret.fill(0);
      throw new VigilError("internal", "PUBKEY_MISMATCH", `secret from ${e.origin} does not match ${e.pubkey}`);
    }
    return { pubkey, secret };
  }

  /** Replace every key of one source (start-up, reload), keeping the others. Secrets passed in are zeroed. */
  replaceSource(source: KeySource, entries: VaultEntry[]): void {
    const next = new Map([...this.keys].filter(([, h]) => h.source !== source));
    const added: string[] = [];
    for (const e of entries) {
      const { pubkey, secret } = KeyVault.load(e);
      const held = this.keys.get(pubkey);
      if (next.has(pubkey)) secret.fill(0);
      else if (held?.source === source) {
        // Loaded again from this source: keep the copy held (and the threads'), drop the new one.
        secret.fill(0);
        held.origin = e.origin;
        held.path = e.path;
        next.set(pubkey, held);
      } else {
        next.set(pubkey, { secret, generation: ++this.generations, source, origin: e.origin, path: e.path });
        if (!held) added.push(pubkey);
      }
    }
    const removed = [...this.keys.keys()].filter((pk) => !next.has(pk));
    const old = this.keys;
    this.keys = next;
    this.pool?.remove(removed);
    for (const pk of removed) old.get(pk)!.secret.fill(0);
    this.pool?.add(added.map((pubkey) => ({ pubkey, secret: next.get(pubkey)!.secret.slice() })));
  }

  /** Add one key; false if it is already held. The secret is zeroed. */
  add(source: KeySource, entry: VaultEntry): boolean {
    const { pubkey, secret } = KeyVault.load(entry);
    if (this.keys.has(pubkey)) {
      secret.fill(0);
      return false;
    }
    this.keys.set(pubkey, { secret, generation: ++this.generations, source, origin: entry.origin, path: entry.path });
    this.pool?.add([{ pubkey, secret: secret.slice() }]);
    return true;
  }

  /**
   * Add many keys (those already held are skipped; secrets passed in are zeroed) and return how
   * many were added. With signing threads, the check that each secret yields its pubkey (about
   * 0.15 ms per key) runs there, split between the threads, and no key is held before all passed.
   */
  async addAll(source: KeySource, entries: VaultEntry[]): Promise<number> {
    const pool = this.pool;
    if (!pool) {
      const loaded: { pubkey: string; secret: Uint8Array; entry: VaultEntry }[] = [];
      try {
        for (const e of entries) loaded.push({ ...KeyVault.load(e), entry: e });
      } catch (err) {
        for (const l of loaded) l.secret.fill(0);
        for (const e of entries) e.secret.fill(0);
        throw err;
      }
      return loaded.filter((l) => this.add(source, { ...l.entry, pubkey: l.pubkey, secret: l.secret })).length;
    }
    const fresh = new Map<string, { secret: Uint8Array; entry: VaultEntry }>();
    for (const e of entries) {
      const pubkey = e.pubkey.toLowerCase();
      if (!this.keys.has(pubkey) && !fresh.has(pubkey)) fresh.set(pubkey, { secret: Uint8Array.from(e.secret), entry: e });
      e.secret.fill(0);
    }
    const zero = (): void => fresh.forEach((f) => f.secret.fill(0));
    let bad: string[];
    try {
      bad = await pool.add([...fresh].map(([pubkey, f]) => ({ pubkey, secret: f.secret.slice() })), true);
    } catch (e) {
      zero();
      throw e;
    }
    if (bad.length > 0) {
      pool.remove([...fresh.keys()].filter((pk) => !this.keys.has(pk)));
      zero();
      throw new VigilError("internal", "PUBKEY_MISMATCH", `secret from ${fresh.get(bad[0])!.entry.origin} does not match ${bad[0]}` + (bad.length > 1 ? ` (and ${bad.length - 1} more)` : ""));
    }
    let added = 0;
    for (const [pubkey, f] of fresh) {
      if (this.keys.has(pubkey)) f.secret.fill(0); // added meanwhile, with the same secret (the pubkey is checked)
      else {
        this.keys.set(pubkey, { secret: f.secret, generation: ++this.generations, source, origin: f.entry.origin, path: f.entry.path });
        added++;
      }
    }
    return added;
  }

  /** Stop holding a key: from this call on, nothing is signed with it. */
  remove(pubkey: string): boolean {
    this.pool?.remove([pubkey]);
    const held = this.keys.get(pubkey);
    if (!held) return false;
    this.keys.delete(pubkey);
    held.secret.fill(0);
    return true;
  }

  has(pubkey: string): boolean {
    return this.keys.has(pubkey);
  }

  /** Which holding of the key this is (undefined: not held). Removed and loaded again: another number. */
  generation(pubkey: string): number | undefined {
    return this.keys.get(pubkey)?.generation;
  }

  sourceOf(pubkey: string): KeySource | undefined {
    return this.keys.get(pubkey)?.source;
  }

  get size(): number {
    return this.keys.size;
  }

  pubkeys(): string[] {
    return [...this.keys.keys()];
  }

  list(): { pubkey: string; source: KeySource; path?: string }[] {
    return [...this.keys].map(([pubkey, h]) => ({ pubkey, source: h.source, ...(h.path ? { path: h.path } : {}) }));
  }

  /**
   * Sign on the worker threads when attached (else here). A signature that comes back after
   * the key was removed is dropped: nothing is signed with a key once remove() returned.
   */
  async signAsync(pubkey: string, signingRoot: Uint8Array): Promise<Uint8Array> {
    if (!this.pool) return this.sign(pubkey, signingRoot);
    const held = this.keys.get(pubkey);
    if (!held) throw new VigilError("not_found", "KEY_NOT_FOUND", `no key ${pubkey} is loaded`);
    const signature = await this.pool.sign(pubkey, signingRoot);
    if (this.keys.get(pubkey) !== held) throw new VigilError("not_found", "KEY_NOT_FOUND", `key ${pubkey} was removed`);
    return signature;
  }

  /** BLS signature (proof-of-possession ciphersuite, as the consensus specs use) of a signing root. */
  sign(pubkey: string, signingRoot: Uint8Array): Uint8Array {
    const entry = this.keys.get(pubkey);
    if (!entry) throw new VigilError("not_found", "KEY_NOT_FOUND", `no key ${pubkey} is loaded`);
    return SecretKey.fromBytes(entry.secret).sign(signingRoot).toBytes();
  }
}
