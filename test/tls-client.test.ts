// Client identity by TLS certificate: Vigil serves HTTPS, asks for client certificates, and
// admits the client whose certificate fingerprint the policy names (else 401).
import "./helpers/preset-minimal.js";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import fs from "node:fs";
import https from "node:https";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { pubkeyFromSecret } from "../src/keys/keystore.js";
import { buildApp } from "../src/server/app.js";
import { ClientAuth } from "../src/server/clients.js";
import { Metrics } from "../src/server/metrics.js";
import { Reloader } from "../src/server/reload.js";
import { VaultService } from "../src/vault/service.js";
import { interopKeys, lodestarSamples } from "./helpers/keys.js";
import { tempDir } from "./helpers/server.js";

const keys = interopKeys();

/** A self-signed certificate and key made with openssl (PEM files in `dir`). */
function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
    "-subj", `/CN=${name}`, "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", cert], { stdio: "ignore" });
  return { cert, key };
}

function request(port: number, ca: string, client: { cert: string; key: string } | null, body: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: "127.0.0.1", port, method: "POST", path: `/api/v1/eth2/sign/${keys[0].pubkey}`, ca: fs.readFileSync(ca),
        ...(client ? { cert: fs.readFileSync(client.cert), key: fs.readFileSync(client.key) } : {}),
        headers: { "content-type": "application/json" },
      },
      (res) => {
        let text = "";
        res.on("data", (d) => (text += d));
        res.on("end", () => resolve({ status: res.statusCode!, json: JSON.parse(text) }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

describe("TLS client certificates as policy identities", () => {
  const dir = tempDir();
  let close: () => Promise<void>;
  let port = 0;
  const server = selfSigned(dir, "server");
  const known = selfSigned(dir, "automation");
  const stranger = selfSigned(dir, "stranger");

  before(async () => {
    const fp = createHash("sha256").update(new X509Certificate(fs.readFileSync(known.cert)).raw).digest("hex");
    const policy = path.join(dir, "policy.yaml");
    fs.writeFileSync(policy, `version: 1\nclients:\n  automation: { tls_fingerprint_sha256: ${fp} }\nrules:\n  - id: randao\n    match: { types: [RANDAO_REVEAL], clients: [automation] }\n    action: allow\n`);
    const vault = await VaultService.open({ network: "minimal", dataDir: path.join(dir, "data"), policyFile: policy });
    vault.keys.add("keystore", { pubkey: pubkeyFromSecret(keys[0].secret), secret: Uint8Array.from(keys[0].secret), origin: "test" });
    const { clients } = await vault.status();
    const app = buildApp(
      { vault, metrics: new Metrics(), reload: new Reloader(() => vault.reload()), clientAuth: new ClientAuth(clients!) },
      { https: { cert: fs.readFileSync(server.cert), key: fs.readFileSync(server.key), ca: fs.readFileSync(known.cert) } },
    );
    port = Number(new URL(await app.listen({ host: "127.0.0.1", port: 0 })).port);
    close = async () => {
      await app.close();
      await vault.close();
    };
  });
  after(async () => {
    await close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const body = lodestarSamples().find((s) => s.file === "RANDAO_REVEAL.json")!.body;
  it("the client with the pinned certificate signs", async () => {
    const r = await request(port, server.cert, known, body);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.match(r.json.signature, /^0x[0-9a-f]{192}$/);
  });
  it("another certificate, or none, gets 401 UNKNOWN_CLIENT", async () => {
    for (const client of [stranger, null]) {
      const r = await request(port, server.cert, client, body);
      assert.equal(r.status, 401);
      assert.equal(r.json.code, "UNKNOWN_CLIENT");
    }
  });
});
