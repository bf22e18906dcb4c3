/**
 * The in-memory key vault: decrypted secret keys, by public key. Key material never leaves
 * this object (no getter returns it) and never touches disk.
 */
import { SecretKey } from "@chainsafe/blst";
import { VigilError } from "../errors.js";

export interface VaultEntry {
  pubkey: string;
  secret: Uint8Array;
  source: string;
}

export class KeyVault {
  private keys = new Map<string, { sk: SecretKey; source: string }>();

  /** Replace the whole key set (start-up, reload). Secrets passed in are zeroed. */
  replaceAll(entries: VaultEntry[]): void {
    const next = new Map<string, { sk: SecretKey; source: string }>();
    for (const e of entries) {
      const sk = SecretKey.fromBytes(e.secret);
      e.secret.fill(0);
      const pubkey = "0x" + Buffer.from(sk.toPublicKey().toBytes()).toString("hex");
      if (pubkey !== e.pubkey.toLowerCase()) {
        throw new VigilError("internal", "PUBKEY_MISMATCH", `secret for ${e.source} does not match ${e.pubkey}`);
      }
      if (!next.has(pubkey)) next.set(pubkey, { sk, source: e.source });
    }
    this.keys = next;
  }

  has(pubkey: string): boolean {
    return this.keys.has(pubkey);
  }

  get size(): number {
    return this.keys.size;
  }

  pubkeys(): string[] {
    return [...this.keys.keys()];
  }

  /** BLS signature (proof-of-possession ciphersuite, as the consensus specs use) of a signing root. */
  sign(pubkey: string, signingRoot: Uint8Array): Uint8Array {
    const entry = this.keys.get(pubkey);
    if (!entry) throw new VigilError("not_found", "KEY_NOT_FOUND", `no key ${pubkey}`);
    return entry.sk.sign(signingRoot).toBytes();
  }
}
