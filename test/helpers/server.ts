import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { resolveNetwork } from "../../src/config/networks.js";
import { pubkeyFromSecret } from "../../src/keys/keystore.js";
import { KeyVault } from "../../src/keys/vault.js";
import { buildApp } from "../../src/server/app.js";
import { Metrics } from "../../src/server/metrics.js";
import { Reloader } from "../../src/server/reload.js";
import { Signer } from "../../src/signer.js";
import { openSqliteStore } from "../../src/slashing/store/sqlite.js";
import type { SlashingStore } from "../../src/slashing/store/store.js";

export interface TestServer {
  url: string;
  dataDir: string;
  store: SlashingStore;
  vault: KeyVault;
  reload: Reloader;
  close(): Promise<void>;
}

export function tempDir(prefix = "vigil-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** An in-process Vigil on 127.0.0.1 with a real SQLite store, holding the given secret keys. */
export async function startTestServer(
  network: string,
  secrets: Uint8Array[],
  reloadTask: (vault: KeyVault) => Promise<{ errors: number }> = async () => ({ errors: 0 }),
): Promise<TestServer> {
  const dataDir = tempDir();
  const store = openSqliteStore(path.join(dataDir, "slashing-protection.sqlite"));
  const vault = new KeyVault();
  vault.replaceAll(secrets.map((s) => ({ pubkey: pubkeyFromSecret(s), secret: Uint8Array.from(s), source: "test" })));
  const signer = new Signer(resolveNetwork(network), store, vault);
  await signer.init();
  const reload = new Reloader(() => reloadTask(vault));
  const app = buildApp({ signer, vault, store, metrics: new Metrics(), reload });
  const url = await app.listen({ host: "127.0.0.1", port: 0 });
  return {
    url,
    dataDir,
    store,
    vault,
    reload,
    async close() {
      await app.close();
      await store.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; type: string; text: string; json: any }> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, type: res.headers.get("content-type") ?? "", text, json };
}
