/**
 * First-run DEV keys: when Vigil starts with no keystores configured, it generates a few
 * random keys as standard EIP-2335 keystores under <data-dir>/dev-keystores, with a random
 * password in a file beside them. They are labelled DEV everywhere: they hold no funds and
 * exist so that `npm start` gives a working signer to try the API against.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { SecretKey } from "@chainsafe/blst";
import { encryptKeystore } from "./keystore.js";

export const DEV_KEY_COUNT = 2;
export const DEV_DIR = "dev-keystores";
export const DEV_PASSWORD_FILE = "DEV-ONLY-password.txt";

export interface DevKeys {
  dir: string;
  passwordFile: string;
  created: boolean;
}

export async function ensureDevKeys(dataDir: string): Promise<DevKeys> {
  const dir = path.join(dataDir, DEV_DIR);
  const passwordFile = path.join(dir, DEV_PASSWORD_FILE);
  if (fs.existsSync(passwordFile)) return { dir, passwordFile, created: false };
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const password = randomBytes(24).toString("base64url");
  for (let i = 0; i < DEV_KEY_COUNT; i++) {
    const secret = SecretKey.fromKeygen(randomBytes(32)).toBytes();
    const keystore = await encryptKeystore(secret, password, {
      kdf: "pbkdf2", // fast to unlock; these keys guard nothing
      description: "VIGIL DEV KEY - generated for trying Vigil out; never deposit to it",
    });
    secret.fill(0);
    fs.writeFileSync(path.join(dir, `dev-keystore-${i}.json`), JSON.stringify(keystore, null, 2), { mode: 0o600 });
  }
  fs.writeFileSync(passwordFile, password, { mode: 0o600 });
  fs.writeFileSync(
    path.join(dir, "README-DEV-KEYS.txt"),
    "These are DEV keys Vigil generated on its first run without keystores.\n" +
      "They are for trying Vigil out only. Never deposit to them or use them on a real network.\n" +
      "Start Vigil with --keystores <dir> and --passwords <dir> (or --password-file <file>) to use real keys.\n",
  );
  return { dir, passwordFile, created: true };
}
