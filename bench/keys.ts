/** Key material for the runs: random BLS keys, a sealed key store, EIP-2335 keystore directories. */
import { SecretKey } from "@chainsafe/blst";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { encryptKeystore, pubkeyFromSecret } from "../src/keys/keystore.js";
import { SealedKeyStore } from "../src/keys/sealed-store.js";

export const randomSecrets = (n: number): Uint8Array[] => Array.from({ length: n }, () => SecretKey.fromKeygen(randomBytes(32)).toBytes());

/** `<dataDir>/keys.vigil` at the default scrypt cost, holding `secrets` (zeroed afterwards). */
export async function writeSealedStore(dataDir: string, secrets: Uint8Array[], passphrase: string): Promise<{ pubkeys: string[]; ms: number }> {
  const t0 = performance.now();
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const store = await SealedKeyStore.create(path.join(dataDir, "keys.vigil"), passphrase);
  try {
    const results = await store.add(secrets.map((secret) => ({ secret })));
    return { pubkeys: results.map((r) => r.pubkey), ms: performance.now() - t0 };
  } finally {
    store.close();
    for (const s of secrets) s.fill(0);
  }
}

/** `n` EIP-2335 keystores (`kdf` at EIP-2335's default cost) in `dir`, one password file. */
export async function writeKeystoreDir(dir: string, n: number, kdf: "scrypt" | "pbkdf2", password: string): Promise<{ pubkeys: string[]; passwordFile: string }> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const secrets = randomSecrets(n);
  const pubkeys = secrets.map(pubkeyFromSecret);
  const batch = 16; // bounded parallelism: the KDFs run on the libuv pool
  for (let i = 0; i < n; i += batch) {
    const chunk = secrets.slice(i, i + batch);
    const stores = await Promise.all(chunk.map((s) => encryptKeystore(s, password, { kdf })));
    stores.forEach((ks, j) => fs.writeFileSync(path.join(dir, `keystore-${i + j}.json`), JSON.stringify(ks), { mode: 0o600 }));
  }
  const passwordFile = path.join(dir, "..", `${path.basename(dir)}.password.txt`);
  fs.writeFileSync(passwordFile, password + "\n", { mode: 0o600 });
  return { pubkeys, passwordFile };
}
