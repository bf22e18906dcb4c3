import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pubkeyFromSecret } from "../../src/keys/keystore.js";
import { buildApp } from "../../src/server/app.js";
import { Metrics } from "../../src/server/metrics.js";
import { Reloader } from "../../src/server/reload.js";
import { ClientAuth } from "../../src/server/clients.js";
import { VaultService, type Logger, type VaultConfig } from "../../src/vault/service.js";

export interface TestServer {
  url: string;
  dataDir: string;
  vault: VaultService;
  close(keepData?: boolean): Promise<void>;
}

export function tempDir(prefix = "vigil-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * Vigil on 127.0.0.1 with the vault service in-process (the same service the vault process
 * runs), a real SQLite store, and the given secret keys (plus any keystore source in `config`).
 */
export async function startTestServer(
  network: string,
  secrets: Uint8Array[],
  config: Partial<VaultConfig> & { apiToken?: string; dataDir?: string; log?: Logger } = {},
): Promise<TestServer> {
  const { apiToken, log, ...vaultConfig } = config;
  const dataDir = config.dataDir ?? tempDir();
  const vault = await VaultService.open({ network, ...vaultConfig, dataDir }, log);
  for (const s of secrets) vault.keys.add("keystore", { pubkey: pubkeyFromSecret(s), secret: Uint8Array.from(s), origin: "test" });
  const reload = new Reloader(() => vault.reload());
  const { clients } = await vault.status();
  const clientAuth = clients ? new ClientAuth(clients) : undefined;
  const app = buildApp({ vault, metrics: new Metrics(), reload, apiToken, clientAuth });
  const url = await app.listen({ host: "127.0.0.1", port: 0 });
  await vault.started();
  return {
    url,
    dataDir,
    vault,
    async close(keepData = false) {
      await app.close();
      await vault.close();
      if (!keepData) fs.rmSync(dataDir, { recursive: true, force: true });
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
