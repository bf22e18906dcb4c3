// The Keymanager API (GET/POST/DELETE /eth/v1/keystores) on the sealed key store, checked
// against the spec's response schemas; the locked state; DELETE racing signatures; a deleted key
// stays retired (an older key store file, a second instance on the same database).
import "./helpers/preset-minimal.js";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { encryptKeystore } from "../src/keys/keystore.js";
import { interopKeys, lodestarSamples } from "./helpers/keys.js";
import { assertMatchesSpec } from "./helpers/openapi.js";
import { PG_URL, PgScratch } from "./helpers/pg.js";
import { runVigil } from "./helpers/cli.js";
import { VigilError } from "../src/errors.js";
import { VaultService } from "../src/vault/service.js";
import { post, startTestServer, tempDir, type TestServer } from "./helpers/server.js";

const keys = interopKeys();
const TOKEN = "test-token-0123456789abcdef";
const auth = { authorization: `Bearer ${TOKEN}` };
const PASSPHRASE = "sealed store passphrase";
const fromEnv = async (): Promise<string> => PASSPHRASE;
const sample = (file: string): Record<string, any> => structuredClone(lodestarSamples().find((s) => s.file === file)!.body);
const GVR = sample("ATTESTATION.json").fork_info.genesis_validators_root as string;

async function km(server: TestServer, method: string, body?: unknown, headers: Record<string, string> = auth) {
  const res = await fetch(`${server.url}/eth/v1/keystores`, {
    method,
    headers: { ...(body !== undefined ? { "content-type": "application/json" } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

function block(slot: number, bodyRoot: string): Record<string, any> {
  const b = sample("BLOCK_V2.BELLATRIX.json");
  delete b.signingRoot;
  b.beacon_block.block_header.slot = String(slot);
  b.beacon_block.block_header.body_root = bodyRoot;
  return b;
}

/** The ATTESTATION sample at (source, target) (minimal preset: 8 slots per epoch), Vigil computes the root. */
function attestation(source: number, target: number): Record<string, any> {
  const b = sample("ATTESTATION.json");
  delete b.signingRoot;
  b.attestation.slot = String(target * 8);
  b.attestation.source.epoch = String(source);
  b.attestation.target.epoch = String(target);
  return b;
}

const interchange = (pubkey: string, slots: number[]) =>
  JSON.stringify({
    metadata: { interchange_format_version: "5", genesis_validators_root: GVR },
    data: [{ pubkey, signed_blocks: slots.map((s) => ({ slot: String(s) })), signed_attestations: [] }],
  });

async function unlockedServer(dataDir?: string): Promise<TestServer> {
  const server = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", dataDir });
  await server.vault.unlock("env:UNUSED", fromEnv);
  return server;
}

describe("Keymanager API authentication", () => {
  let server: TestServer;
  before(async () => {
    server = await unlockedServer();
  });
  after(() => server.close());
  it("no token → 401, a wrong token → 403 (the spec's Unauthorized / Forbidden); JSON errors", async () => {
    for (const headers of [{}, { authorization: TOKEN }] as Record<string, string>[]) {
      const res = await km(server, "GET", undefined, headers);
      assert.equal(res.status, 401);
      assert.equal(res.json.code, "UNAUTHORIZED");
      assertMatchesSpec("local_keystores.yaml", "get", "401", res.json);
    }
    const wrong = await km(server, "GET", undefined, { authorization: "Bearer wrong-token-wrong-token" });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.json.code, "INVALID_TOKEN");
    assertMatchesSpec("local_keystores.yaml", "get", "403", wrong.json);
  });
  it("the token is checked before the body is read: a body without the token gets 401/403, never a validation error", async () => {
    const post = (headers: Record<string, string>) =>
      fetch(`${server.url}/eth/v1/keystores`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify({ keystores: 5 }) });
    const none = await post({});
    assert.equal(none.status, 401);
    assert.equal((await none.json()).code, "UNAUTHORIZED");
    const wrong = await post({ authorization: "Bearer wrong-token-wrong-token" });
    assert.equal(wrong.status, 403);
    const right = await post(auth);
    assert.equal(right.status, 400); // with the token, the schema speaks
    assert.equal((await right.json()).code, "INVALID_REQUEST");
  });
  it("the right token lists keys in the spec's shape", async () => {
    const res = await km(server, "GET");
    assert.equal(res.status, 200);
    assertMatchesSpec("local_keystores.yaml", "get", "200", res.json);
  });
});

describe("import with slashing history, sign, restart, delete", () => {
  let server: TestServer;
  const dataDir = tempDir();
  const pk = keys[0].pubkey;
  let keystore: string;
  before(async () => {
    server = await unlockedServer(dataDir);
    keystore = JSON.stringify(await encryptKeystore(keys[0].secret, "keystore-password", { kdf: "pbkdf2", path: "m/12381/3600/0/0/0" }));
  });
  after(async () => {
    await server.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it("POST imports the key and its EIP-3076 history first", async () => {
    const res = await km(server, "POST", { keystores: [keystore], passwords: ["keystore-password"], slashing_protection: interchange(pk, [10]) });
    assert.equal(res.status, 200);
    assertMatchesSpec("local_keystores.yaml", "post", "200", res.json);
    assert.deepEqual(res.json.data, [{ status: "imported" }]);
    const list = await km(server, "GET");
    assert.deepEqual(list.json.data, [{ validating_pubkey: pk, derivation_path: "m/12381/3600/0/0/0", readonly: false }]);
  });
  it("the imported history is enforced: a block at the imported slot or below is refused", async () => {
    const url = `${server.url}/api/v1/eth2/sign/${pk}`;
    const conflicting = await post(url, block(10, "0x" + "11".repeat(32)));
    assert.equal(conflicting.status, 412, conflicting.text);
    assert.equal(conflicting.json.code, "DOUBLE_BLOCK_PROPOSAL");
    assert.equal((await post(url, block(9, "0x" + "12".repeat(32)))).json.code, "BLOCK_BELOW_LOW_WATERMARK");
    const ok = await post(url, block(11, "0x" + "13".repeat(32)));
    assert.equal(ok.status, 200, ok.text);
  });
  it("a duplicate import says duplicate; a wrong password or a broken keystore says error", async () => {
    const res = await km(server, "POST", { keystores: [keystore, keystore, "{not json"], passwords: ["keystore-password", "nope", "x"] });
    assertMatchesSpec("local_keystores.yaml", "post", "200", res.json);
    assert.deepEqual(res.json.data.map((d: { status: string }) => d.status), ["duplicate", "error", "error"]);
    const wrong = await km(server, "POST", {
      keystores: [JSON.stringify(await encryptKeystore(keys[1].secret, "right-password", { kdf: "pbkdf2" }))],
      passwords: ["wrong-password"],
    });
    assert.equal(wrong.json.data[0].status, "error");
    assert.match(wrong.json.data[0].message, /WRONG_PASSWORD/);
  });
  it("malformed bodies are 400 with {code, message}", async () => {
    for (const body of [{}, { keystores: "x", passwords: [] }, { keystores: [keystore], passwords: ["a", "b"] }]) {
      const res = await km(server, "POST", body);
      assert.equal(res.status, 400, JSON.stringify(res.json));
      assert.equal(typeof res.json.message, "string");
    }
    const bad = await km(server, "POST", { keystores: [], passwords: [], slashing_protection: "{" });
    assert.equal(bad.status, 400);
    assert.equal((await km(server, "DELETE", { pubkeys: ["0x12"] })).status, 400);
  });
  it("an import larger than other routes take (a 10 MiB history): accepted; beyond 64 MiB: 413 BODY_TOO_LARGE", async () => {
    const fake = (i: number): string => "0x" + (0xf0000 + i).toString(16).padStart(96, "0");
    const history = JSON.stringify({
      metadata: { interchange_format_version: "5", genesis_validators_root: GVR },
      data: Array.from({ length: 3000 }, (_, i) => ({
        pubkey: fake(i),
        signed_blocks: [],
        signed_attestations: Array.from({ length: 30 }, (_, e) => ({ source_epoch: String(e), target_epoch: String(e + 1), signing_root: "0x" + "ab".repeat(32) })),
      })),
    });
    assert.ok(history.length > 10 * 2 ** 20, `${history.length} bytes`);
    const res = await km(server, "POST", { keystores: [], passwords: [], slashing_protection: history });
    assert.equal(res.status, 200, JSON.stringify(res.json).slice(0, 300));
    const del = await km(server, "DELETE", { pubkeys: [fake(2999)] });
    assert.deepEqual(del.json.data, [{ status: "not_active" }]);
    assert.equal(JSON.parse(del.json.slashing_protection).data[0].signed_attestations.length, 30);
    const huge = await km(server, "POST", { keystores: [], passwords: [], slashing_protection: "x".repeat(65 * 2 ** 20) });
    assert.equal(huge.status, 413);
    assert.equal(huge.json.code, "BODY_TOO_LARGE");
  });
  it("imported keys survive a restart (sealed store)", async () => {
    await server.close(true);
    server = await unlockedServer(dataDir);
    const list = await km(server, "GET");
    assert.deepEqual(list.json.data.map((k: { validating_pubkey: string }) => k.validating_pubkey), [pk]);
  });
  it("DELETE stops signing and returns the history; a second DELETE says not_active", async () => {
    const res = await km(server, "DELETE", { pubkeys: [pk, keys[2].pubkey] });
    assert.equal(res.status, 200);
    assertMatchesSpec("local_keystores.yaml", "delete", "200", res.json);
    assert.deepEqual(res.json.data, [{ status: "deleted" }, { status: "not_found" }]);
    const history = JSON.parse(res.json.slashing_protection);
    assert.deepEqual(history.data[0].signed_blocks.map((b: { slot: string }) => b.slot).sort(), ["10", "11"]);
    const after = await post(`${server.url}/api/v1/eth2/sign/${pk}`, block(12, "0x" + "14".repeat(32)));
    assert.equal(after.status, 404);
    const again = await km(server, "DELETE", { pubkeys: [pk] });
    assert.deepEqual(again.json.data, [{ status: "not_active" }]);
    assert.deepEqual(JSON.parse(again.json.slashing_protection).data, history.data);
    await server.close(true);
    server = await unlockedServer(dataDir);
    assert.deepEqual((await km(server, "GET")).json.data, []);
  });
});

describe("DELETE racing signatures", () => {
  it("every signature returned is in the history DELETE returns; none after DELETE answers (signing threads)", async () => {
    const server = await unlockedServer();
    server.vault.useSigningThreads(2); // as in the vault process: signatures come back from worker threads
    try {
      const pk = keys[1].pubkey;
      const keystore = JSON.stringify(await encryptKeystore(keys[1].secret, "pw-pw-pw-pw", { kdf: "pbkdf2" }));
      assert.equal((await km(server, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] })).json.data[0].status, "imported");
      const url = `${server.url}/api/v1/eth2/sign/${pk}`;
      const signs = Array.from({ length: 200 }, (_, i) => post(url, block(100 + i, "0x" + "21".repeat(32))));
      await Promise.race(signs); // some are signed, many still in flight
      const del = await km(server, "DELETE", { pubkeys: [pk] });
      const results = await Promise.all(signs);
      const signed = results.filter((r) => r.status === 200).length;
      assert.ok(signed >= 1, "at least the first request was signed");
      console.log(`# DELETE race: ${signed} signed before the key was deleted, ${results.length - signed} refused`);
      const recorded = new Set(JSON.parse(del.json.slashing_protection).data[0]?.signed_blocks.map((b: { slot: string }) => b.slot) ?? []);
      for (const [i, r] of results.entries()) {
        if (r.status === 200) {
          assert.ok(recorded.has(String(100 + i)), `signature for slot ${100 + i} missing from the returned history`);
        } else if (r.status === 412) {
          assert.equal(r.json.code, "VALIDATOR_RETIRED", r.text); // decided after the key's retirement was recorded
        } else {
          assert.equal(r.status, 404, r.text);
        }
      }
      const late = await post(url, block(500, "0x" + "22".repeat(32)));
      assert.equal(late.status, 404);
    } finally {
      await server.close();
    }
  });
});

describe("DELETE of a key it will not delete", () => {
  it("a key from a keystore directory: status error, it keeps signing, and its history is not returned", async () => {
    const server = await startTestServer("minimal", [keys[0].secret], { apiToken: TOKEN });
    try {
      const url = `${server.url}/api/v1/eth2/sign/${keys[0].pubkey}`;
      assert.equal((await post(url, block(3, "0x" + "41".repeat(32)))).status, 200);
      const del = await km(server, "DELETE", { pubkeys: [keys[0].pubkey] });
      assert.equal(del.status, 200);
      assertMatchesSpec("local_keystores.yaml", "delete", "200", del.json);
      assert.equal(del.json.data[0].status, "error");
      assert.deepEqual(JSON.parse(del.json.slashing_protection).data, []);
      assert.equal((await post(url, block(4, "0x" + "42".repeat(32)))).status, 200);
    } finally {
      await server.close();
    }
  });
});

describe("DELETE while a signature waits to leave", () => {
  it("a signature made before the key was deleted does not leave after DELETE answers, even once the key is imported again: 404, audited as not signed", async () => {
    const server = await unlockedServer();
    server.vault.useSigningThreads(2);
    try {
      const pk = keys[1].pubkey;
      const url = `${server.url}/api/v1/eth2/sign/${pk}`;
      const keystore = JSON.stringify(await encryptKeystore(keys[1].secret, "pw-pw-pw-pw", { kdf: "pbkdf2" }));
      assert.equal((await km(server, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] })).json.data[0].status, "imported");
      assert.equal((await post(url, block(6, "0x" + "30".repeat(32)))).status, 200); // the validator is registered in the database
      // The audit log's next fdatasync takes 2.5 s: the request's record is committed and BLS has
      // signed long before it, and the signature waits for its audit entry. (A DELETE waits for
      // commits already running: it records the key's retirement, serialised with them.)
      const log = server.vault.authority.audit as unknown as { datasync: (fh: unknown) => Promise<void> };
      const realSync = log.datasync.bind(log);
      let delayed = 0;
      log.datasync = async (fh) => {
        if (delayed++ === 0) await new Promise((r) => setTimeout(r, 2500));
        return realSync(fh);
      };
      const started = Date.now();
      const sign = post(url, block(7, "0x" + "31".repeat(32)));
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(delayed, 1, "the request's audit entry is syncing");
      const del = await km(server, "DELETE", { pubkeys: [pk] });
      assert.equal(del.json.data[0].status, "deleted");
      // Imported again at once (pbkdf2 keystore): the key is held again, but not the holding that signed.
      assert.equal((await km(server, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] })).json.data[0].status, "imported");
      assert.ok(Date.now() - started < 2500, "DELETE and the new import answered while the audit entry was still syncing");
      const res = await sign;
      assert.equal(res.status, 404, res.text);
      assert.equal(res.json.code, "KEY_NOT_FOUND");
      assert.match(res.json.message, /was removed/);
      assert.ok(!("signature" in res.json));
      await server.vault.authority.audit.close();
      const audit = fs.readFileSync(path.join(server.dataDir, "audit.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(
        audit.filter((e) => e.pubkey === pk).map((e) => [e.outcome, e.code ?? null]),
        [
          ["allowed", null],
          ["allowed", null],
          ["refused", "KEY_NOT_FOUND"],
        ],
      );
    } finally {
      await server.close();
    }
  });
});

describe("a locked vault", () => {
  it("answers /upcheck, refuses to sign with 503 LOCKED, is not healthy; unlocking serves the keys", async () => {
    const dataDir = tempDir();
    const first = await unlockedServer(dataDir);
    const keystore = JSON.stringify(await encryptKeystore(keys[2].secret, "pw-pw-pw-pw", { kdf: "pbkdf2" }));
    await km(first, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] });
    await first.close(true);

    const server = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", dataDir });
    try {
      assert.equal((await fetch(`${server.url}/upcheck`)).status, 200);
      assert.equal((await fetch(`${server.url}/healthcheck`)).status, 503);
      const res = await post(`${server.url}/api/v1/eth2/sign/${keys[2].pubkey}`, sample("RANDAO_REVEAL.json"));
      assert.equal(res.status, 503);
      assert.equal(res.json.code, "LOCKED");
      // Locked, its keys are not loaded: a DELETE could only say not_active and retire nothing.
      const del = await km(server, "DELETE", { pubkeys: [keys[2].pubkey] });
      assert.equal(del.status, 503, JSON.stringify(del.json));
      assert.equal(del.json.code, "LOCKED");
      await assert.rejects(server.vault.unlock("env:UNUSED", async () => "not the passphrase"), /WRONG_PASSPHRASE|passphrase/i);
      await server.vault.unlock("env:UNUSED", fromEnv);
      const signed = await post(`${server.url}/api/v1/eth2/sign/${keys[2].pubkey}`, sample("RANDAO_REVEAL.json"));
      assert.equal(signed.status, 200, signed.text);
      assert.equal((await fetch(`${server.url}/healthcheck`)).status, 200);
    } finally {
      await server.close();
    }
  });
  it("a data dir with a sealed store refuses to start without --unlock", async () => {
    const dataDir = tempDir();
    const first = await unlockedServer(dataDir);
    await first.close(true);
    await assert.rejects(startTestServer("minimal", [], { dataDir }), /UNLOCK_REQUIRED|--unlock/);
    // A start-up that fails closes what it opened (the database, the audit log's file handle).
    const fds = (): number => fs.readdirSync("/proc/self/fd").length;
    const before = fds();
    for (let i = 0; i < 20; i++) await assert.rejects(startTestServer("minimal", [], { dataDir }), (e: unknown) => (e as { code?: string }).code === "UNLOCK_REQUIRED");
    assert.ok(fds() <= before + 2, `file descriptors ${before} → ${fds()} after 20 failed starts`);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  it("the new policy cannot be recorded as accepted: the unlock fails with POLICY_NOT_RECORDED naming the cause, and the vault stays locked", async () => {
    const dataDir = tempDir();
    const policyFile = path.join(dataDir, "..", `${path.basename(dataDir)}-policy.yaml`);
    fs.writeFileSync(policyFile, "version: 1\nrules:\n  - id: duties\n    match: { types: [ATTESTATION, RANDAO_REVEAL] }\n    action: allow\n");
    const server = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", dataDir, policyFile });
    try {
      const authority = (server.vault as unknown as { authority: { acceptPolicy(): void } }).authority;
      authority.acceptPolicy = () => {
        throw new Error("ENOSPC: no space left on device"); // the data directory's disk is full
      };
      await assert.rejects(server.vault.unlock("env:UNUSED", fromEnv), (e: unknown) => {
        assert.ok(e instanceof VigilError);
        assert.equal(e.code, "POLICY_NOT_RECORDED");
        assert.match(e.message, /could not be recorded as accepted .*ENOSPC/);
        return true;
      });
      assert.equal(fs.existsSync(path.join(dataDir, "policy.accepted.yaml")), false);
      assert.equal((await server.vault.status()).locked, true, "the vault stays locked");
      const res = await post(`${server.url}/api/v1/eth2/sign/${keys[0].pubkey}`, sample("RANDAO_REVEAL.json"));
      assert.equal(res.status, 503, res.text);
      assert.equal(res.json.code, "LOCKED");
    } finally {
      await server.close();
      fs.rmSync(policyFile, { force: true });
    }
  });
  it("unlocked before it listens, and the policy cannot be recorded when it starts: started() fails with POLICY_NOT_RECORDED and locks the vault", async () => {
    const dataDir = tempDir();
    const policyFile = path.join(dataDir, "..", `${path.basename(dataDir)}-policy.yaml`);
    fs.writeFileSync(policyFile, "version: 1\nrules:\n  - id: duties\n    match: { types: [ATTESTATION, RANDAO_REVEAL] }\n    action: allow\n");
    const vault = await VaultService.open({ network: "minimal", unlock: "env:UNUSED", dataDir, policyFile });
    try {
      await vault.unlock("env:UNUSED", fromEnv);
      assert.equal((await vault.status()).locked, false);
      assert.equal(fs.existsSync(path.join(dataDir, "policy.accepted.yaml")), false, "not recorded before the instance serves");
      (vault as unknown as { authority: { acceptPolicy(): void } }).authority.acceptPolicy = () => {
        throw new Error("EROFS: read-only file system");
      };
      await assert.rejects(vault.started(), (e: unknown) => e instanceof VigilError && e.code === "POLICY_NOT_RECORDED" && /EROFS/.test(e.message));
      assert.equal((await vault.status()).locked, true, "nothing is signed under a policy not on record");
      await assert.rejects(vault.sign(keys[0].pubkey, sample("RANDAO_REVEAL.json")), (e: unknown) => e instanceof VigilError && e.code === "LOCKED");
      assert.equal(fs.existsSync(path.join(dataDir, "policy.accepted.yaml")), false);
    } finally {
      await vault.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
      fs.rmSync(policyFile, { force: true });
    }
  });
  it("shut down while waiting for a new key store's passphrase: no key store is created once it arrives", async () => {
    const dataDir = tempDir();
    const server = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "prompt", dataDir });
    let give: (p: string) => void = () => undefined;
    const unlocking = server.vault.unlock("prompt", () => new Promise<string>((r) => (give = r)));
    await new Promise((r) => setTimeout(r, 50));
    await server.close(true);
    give(PASSPHRASE);
    await assert.rejects(unlocking, (e: unknown) => e instanceof VigilError && e.code === "SHUTTING_DOWN");
    assert.equal(fs.existsSync(path.join(dataDir, "keys.vigil")), false);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  it("shut down while a new key store's key is being derived: no key store is written", async () => {
    const dataDir = tempDir();
    const server = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "prompt", dataDir });
    const unlocking = server.vault.unlock("prompt", async () => PASSPHRASE); // scrypt for the new store: over a second
    await new Promise((r) => setTimeout(r, 50));
    await server.close(true);
    await assert.rejects(unlocking, (e: unknown) => e instanceof VigilError && e.code === "SHUTTING_DOWN");
    assert.equal(fs.existsSync(path.join(dataDir, "keys.vigil")), false);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
  it("a start-up that fails at an unreadable approvals.json closes the audit log it opened", async () => {
    const dataDir = tempDir();
    fs.mkdirSync(path.join(dataDir, "approvals.json")); // EISDIR
    const auditFds = (): number => fs.readdirSync("/proc/self/fd").filter((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(dataDir);
      } catch {
        return false; // closed since the listing
      }
    }).length;
    for (let i = 0; i < 5; i++) await assert.rejects(startTestServer("minimal", [], { dataDir }), (e: unknown) => (e as { code?: string }).code === "APPROVALS_UNREADABLE");
    assert.ok(fs.existsSync(path.join(dataDir, "audit.log")), "the audit log was opened before approvals.json");
    assert.equal(auditFds(), 0, "no file of the data directory is still open");
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
});

/** A retired validator's key is unloaded (in the background) after its first refusal: wait for its RANDAO to be 404. */
async function untilUnloaded(server: TestServer, pubkey: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await post(`${server.url}/api/v1/eth2/sign/${pubkey}`, sample("RANDAO_REVEAL.json"));
    if (res.status === 404) return assert.equal(res.json.code, "KEY_NOT_FOUND");
    assert.equal(res.status, 200, res.text);
    assert.ok(Date.now() < deadline, "the retired key was not unloaded within 10 s");
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("a deleted key stays retired", () => {
  const pk = keys[2].pubkey;
  const keystoreOf = async (): Promise<string> => JSON.stringify(await encryptKeystore(keys[2].secret, "pw-pw-pw-pw", { kdf: "pbkdf2" }));
  const retired = async (server: TestServer): Promise<string[]> => (await server.vault.store.getRetired()).map((r) => r.pubkey);
  const highWatermarks = async (server: TestServer) =>
    (await server.vault.store.getWatermarks(pk)).filter((w) => w.kind === "high").map((w) => ({ pubkey: w.pubkey, slot: w.slot, epoch: w.epoch }));

  it("an older keys.vigil put back after a DELETE does not bring the key back; importing it again does", async () => {
    const dataDir = tempDir();
    let server = await unlockedServer(dataDir);
    try {
      assert.equal((await km(server, "POST", { keystores: [await keystoreOf()], passwords: ["pw-pw-pw-pw"] })).json.data[0].status, "imported");
      assert.equal((await post(`${server.url}/api/v1/eth2/sign/${pk}`, block(5, "0x" + "51".repeat(32)))).status, 200);
      const backup = fs.readFileSync(path.join(dataDir, "keys.vigil"));
      const del = await km(server, "DELETE", { pubkeys: [pk] });
      assert.deepEqual(del.json.data, [{ status: "deleted" }]);
      assert.deepEqual(await retired(server), [pk]);
      assert.deepEqual(await highWatermarks(server), [], "no watermark is touched");
      await server.close(true);
      const listed = await runVigil(["slashing", "retired", "--data-dir", dataDir]);
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, new RegExp(`^retired ${pk} since 20\\d\\d-`, "m"));

      fs.writeFileSync(path.join(dataDir, "keys.vigil"), backup); // a backup restored: it still holds the key
      const warnings: string[] = [];
      const log = { info() {}, error() {}, warn: (_o: object, m?: string) => void warnings.push(m ?? "") };
      server = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", dataDir, log });
      await server.vault.unlock("env:UNUSED", fromEnv);
      assert.deepEqual((await km(server, "GET")).json.data, [], "the retired key is not loaded");
      assert.match(warnings.join("\n"), /retired keys not loaded/);
      const refused = await post(`${server.url}/api/v1/eth2/sign/${pk}`, sample("RANDAO_REVEAL.json"));
      assert.equal(refused.status, 404, refused.text);
      assert.ok(!("signature" in refused.json));

      // Imported again through the Keymanager API (with its history): it signs again.
      const again = await km(server, "POST", { keystores: [await keystoreOf()], passwords: ["pw-pw-pw-pw"], slashing_protection: del.json.slashing_protection });
      assert.deepEqual(again.json.data, [{ status: "imported" }]);
      assert.deepEqual(await retired(server), []);
      assert.equal((await post(`${server.url}/api/v1/eth2/sign/${pk}`, block(5, "0x" + "52".repeat(32)))).json.code, "DOUBLE_BLOCK_PROPOSAL");
      assert.equal((await post(`${server.url}/api/v1/eth2/sign/${pk}`, block(6, "0x" + "53".repeat(32)))).status, 200);
      await server.close(true);
      server = await unlockedServer(dataDir);
      assert.deepEqual((await km(server, "GET")).json.data.map((k: { validating_pubkey: string }) => k.validating_pubkey), [pk]);
    } finally {
      await server.close();
    }
  });

  it("after `vigil slashing retired --lift`, POST /reload loads the key again from keys.vigil (before the lift it does not)", async () => {
    const dataDir = tempDir();
    let server = await unlockedServer(dataDir);
    const held = async (): Promise<string[]> => (await km(server, "GET")).json.data.map((k: { validating_pubkey: string }) => k.validating_pubkey);
    const reload = async (): Promise<string> => {
      assert.equal((await fetch(`${server.url}/reload`, { method: "POST" })).status, 202);
      for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) {
        const state = (await (await fetch(`${server.url}/reload`)).json()) as { status: string };
        if (state.status !== "running") return state.status;
      }
      throw new Error("the reload did not finish within 10 s");
    };
    try {
      assert.equal((await km(server, "POST", { keystores: [await keystoreOf()], passwords: ["pw-pw-pw-pw"] })).json.data[0].status, "imported");
      assert.equal((await post(`${server.url}/api/v1/eth2/sign/${pk}`, block(5, "0x" + "61".repeat(32)))).status, 200);
      const backup = fs.readFileSync(path.join(dataDir, "keys.vigil"));
      assert.deepEqual((await km(server, "DELETE", { pubkeys: [pk] })).json.data, [{ status: "deleted" }]);
      await server.close(true);
      fs.writeFileSync(path.join(dataDir, "keys.vigil"), backup); // the key is in keys.vigil, its validator retired
      // The every-slot check would load it too once lifted: pushed out of this test's time.
      server = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", dataDir, retirementCheckMs: 3_600_000 });
      await server.vault.unlock("env:UNUSED", fromEnv);
      assert.deepEqual(await held(), []);
      assert.equal(await reload(), "completed");
      assert.deepEqual(await held(), [], "a reload does not load a retired validator's key");

      const lifted = await runVigil(["slashing", "retired", "--data-dir", dataDir, "--lift", pk]);
      assert.equal(lifted.code, 0, lifted.stderr);
      assert.match(lifted.stdout, /retirement lifted \(a running instance that left its key out as retired loads it again within a slot from keys\.vigil/);
      assert.deepEqual(await held(), [], "nothing loads before the reload");
      assert.equal(await reload(), "completed");
      assert.deepEqual(await held(), [pk]);
      assert.equal((await post(`${server.url}/api/v1/eth2/sign/${pk}`, block(5, "0x" + "62".repeat(32)))).json.code, "DOUBLE_BLOCK_PROPOSAL", "its history still holds");
      const signed = await post(`${server.url}/api/v1/eth2/sign/${pk}`, block(6, "0x" + "63".repeat(32)));
      assert.equal(signed.status, 200, signed.text);
      assert.equal(await reload(), "completed");
      assert.deepEqual(await held(), [pk], "a key already held is kept as it is");
    } finally {
      await server.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("a key held from a keystore directory and also in keys.vigil: DELETE says to delete it again; after its file is removed a reload does not load it from keys.vigil", async () => {
    const dataDir = tempDir();
    let server = await unlockedServer(dataDir);
    const dir = tempDir();
    try {
      assert.equal((await km(server, "POST", { keystores: [await keystoreOf()], passwords: ["pw-pw-pw-pw"] })).json.data[0].status, "imported");
      await server.close(true);
      fs.writeFileSync(path.join(dir, "k2.json"), await keystoreOf()); // the directory it was imported from, still configured
      fs.writeFileSync(path.join(dir, "..", `${path.basename(dir)}-password.txt`), "pw-pw-pw-pw");
      const keystores = { dir, passwordFile: path.join(dir, "..", `${path.basename(dir)}-password.txt`) };
      server = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", dataDir, keystores });
      await server.vault.unlock("env:UNUSED", fromEnv);
      assert.deepEqual((await km(server, "GET")).json.data.map((k: { validating_pubkey: string; readonly: boolean }) => [k.validating_pubkey, k.readonly]), [[pk, true]]);
      assert.equal((await post(`${server.url}/api/v1/eth2/sign/${pk}`, block(7, "0x" + "71".repeat(32)))).status, 200);
      const del = await km(server, "DELETE", { pubkeys: [pk] });
      assert.equal(del.json.data[0].status, "error");
      assert.match(del.json.data[0].message, /remove its file and POST \/reload, then DELETE it again: it is also in .*keys\.vigil/);

      fs.rmSync(path.join(dir, "k2.json"));
      assert.equal((await fetch(`${server.url}/reload`, { method: "POST" })).status, 202);
      for (let i = 0; i < 200 && (await (await fetch(`${server.url}/reload`)).json()).status === "running"; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal((await (await fetch(`${server.url}/reload`)).json()).status, "completed");
      assert.deepEqual((await km(server, "GET")).json.data, [], "not loaded from keys.vigil instead");
      const refused = await post(`${server.url}/api/v1/eth2/sign/${pk}`, block(8, "0x" + "72".repeat(32)));
      assert.equal(refused.status, 404, refused.text);

      const again = await km(server, "DELETE", { pubkeys: [pk] });
      assert.deepEqual(again.json.data, [{ status: "not_active" }]);
      assert.deepEqual(JSON.parse(again.json.slashing_protection).data[0].signed_blocks.map((b: { slot: string }) => b.slot), ["7"]);
      assert.equal(fs.readFileSync(path.join(dataDir, "keys.vigil"), "utf8").includes(pk.slice(2)), false);
    } finally {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(`${dir}-password.txt`, { force: true });
    }
  });

  it("a DELETE and a new import leave an operator's own high watermark as it was", async () => {
    const server = await unlockedServer();
    try {
      await server.vault.store.setWatermark({ kind: "high", pubkey: pk, slot: 100, epoch: 12 });
      const keystore = await keystoreOf();
      assert.equal((await km(server, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] })).json.data[0].status, "imported");
      assert.deepEqual((await km(server, "DELETE", { pubkeys: [pk] })).json.data, [{ status: "deleted" }]);
      assert.deepEqual((await km(server, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] })).json.data, [{ status: "imported" }]);
      assert.deepEqual(await highWatermarks(server), [{ pubkey: pk, slot: 100, epoch: 12 }]);
      const beyond = await post(`${server.url}/api/v1/eth2/sign/${pk}`, block(500, "0x" + "54".repeat(32)));
      assert.equal(beyond.status, 412, beyond.text);
      assert.equal(beyond.json.code, "AT_OR_ABOVE_HIGH_WATERMARK");
      assert.equal((await post(`${server.url}/api/v1/eth2/sign/${pk}`, block(50, "0x" + "55".repeat(32)))).status, 200);
    } finally {
      await server.close();
    }
  });

  it("when the database cannot record the retirement, DELETE fails (503) and deletes nothing; several keys retire together", async () => {
    const server = await unlockedServer();
    try {
      const other = JSON.stringify(await encryptKeystore(keys[1].secret, "pw-pw-pw-pw", { kdf: "pbkdf2" }));
      const imported = await km(server, "POST", { keystores: [await keystoreOf(), other], passwords: ["pw-pw-pw-pw", "pw-pw-pw-pw"] });
      assert.deepEqual(imported.json.data, [{ status: "imported" }, { status: "imported" }]);
      const store = server.vault.store;
      const realRetire = store.retire.bind(store);
      const asked: string[][] = [];
      store.retire = async (pubkeys) => {
        asked.push(pubkeys);
        throw new VigilError("unavailable", "SLASHING_DB_UNAVAILABLE", "the protection database is unavailable");
      };
      const del = await km(server, "DELETE", { pubkeys: [pk, keys[1].pubkey] });
      assert.equal(del.status, 503, JSON.stringify(del.json));
      assert.equal(del.json.code, "SLASHING_DB_UNAVAILABLE");
      assert.deepEqual(asked, [[pk, keys[1].pubkey]], "one call: one transaction for all the keys");
      assert.deepEqual((await km(server, "GET")).json.data.map((k: { validating_pubkey: string }) => k.validating_pubkey).sort(), [pk, keys[1].pubkey].sort());
      assert.deepEqual(await retired(server), []);
      store.retire = realRetire;
      assert.deepEqual((await km(server, "DELETE", { pubkeys: [pk, keys[1].pubkey] })).json.data, [{ status: "deleted" }, { status: "deleted" }]);
      assert.deepEqual((await retired(server)).sort(), [pk, keys[1].pubkey].sort());
    } finally {
      await server.close();
    }
  });

  it("PostgreSQL: a key held by one instance and retired by another is unloaded there at its first refusal, and signs there again once imported there again", async () => {
    const scratch = new PgScratch("retire");
    await scratch.ping();
    const db = { dbUrl: PG_URL, dbSchema: scratch.schema() };
    const open = async (): Promise<TestServer> => {
      const s = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", ...db });
      await s.vault.unlock("env:UNUSED", fromEnv);
      return s;
    };
    const [A, B] = [await open(), await open()];
    try {
      const keystore = await keystoreOf();
      for (const s of [A, B]) assert.equal((await km(s, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] })).json.data[0].status, "imported");
      const signB = (body: unknown) => post(`${B.url}/api/v1/eth2/sign/${pk}`, body);
      assert.equal((await signB(attestation(0, 1))).status, 200); // history on the shared database
      assert.deepEqual((await km(A, "DELETE", { pubkeys: [pk] })).json.data, [{ status: "deleted" }]);
      assert.equal((await signB(attestation(1, 2))).json.code, "VALIDATOR_RETIRED");
      await untilUnloaded(B, pk);
      assert.deepEqual((await km(B, "GET")).json.data, []);
      // Unloaded, but still in B's keys.vigil: a DELETE there removes it from the file too (not active here).
      const inBStore = () => fs.readFileSync(path.join(B.dataDir, "keys.vigil"), "utf8").includes(pk.slice(2));
      assert.equal(inBStore(), true);
      const delB = await km(B, "DELETE", { pubkeys: [pk] });
      assert.deepEqual(delB.json.data, [{ status: "not_active" }]);
      assertMatchesSpec("local_keystores.yaml", "delete", "200", delB.json);
      assert.deepEqual(JSON.parse(delB.json.slashing_protection).data[0].signed_attestations.map((a: { target_epoch: string }) => a.target_epoch), ["1"]);
      assert.equal(inBStore(), false);
      assert.deepEqual((await km(B, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] })).json.data, [{ status: "imported" }]);
      assert.deepEqual(await retired(B), []);
      assert.equal((await signB(attestation(1, 2))).status, 200);
    } finally {
      await A.close();
      await B.close();
      await scratch.cleanup();
    }
  });

  it("PostgreSQL: a key retired by another instance is unloaded within the retirement check's interval even if nothing slashable is asked (RANDAO and sync committee messages stop too)", async () => {
    const scratch = new PgScratch("retire");
    await scratch.ping();
    const db = { dbUrl: PG_URL, dbSchema: scratch.schema() };
    const open = async (retirementCheckMs?: number): Promise<TestServer> => {
      const s = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", ...db, retirementCheckMs });
      await s.vault.unlock("env:UNUSED", fromEnv);
      return s;
    };
    const A = await open();
    const B = await open(200);
    try {
      const keystore = await keystoreOf();
      for (const s of [A, B]) assert.equal((await km(s, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] })).json.data[0].status, "imported");
      const randaoB = () => post(`${B.url}/api/v1/eth2/sign/${pk}`, sample("RANDAO_REVEAL.json"));
      assert.equal((await randaoB()).status, 200);
      await new Promise((r) => setTimeout(r, 500)); // a few checks pass: nothing is retired, the key stays
      assert.equal((await randaoB()).status, 200);
      assert.deepEqual((await km(A, "DELETE", { pubkeys: [pk] })).json.data, [{ status: "deleted" }]);
      const deadline = Date.now() + 5_000;
      for (;;) {
        const res = await randaoB(); // never refused as retired: only the periodic check can unload it
        if (res.status === 404) break;
        assert.equal(res.status, 200, res.text);
        assert.ok(Date.now() < deadline, "B did not unload the retired key within 5 s");
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual((await km(B, "GET")).json.data, []);
      const exit = await post(`${B.url}/api/v1/eth2/sign/${pk}`, sample("SYNC_COMMITTEE_MESSAGE.json"));
      assert.equal(exit.status, 404, exit.text);
      assert.ok(!("signature" in exit.json));

      // Imported again through A (the retirement lifted): B, which held it, loads it again within the interval.
      assert.deepEqual((await km(A, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] })).json.data, [{ status: "imported" }]);
      const back = Date.now() + 5_000;
      while ((await randaoB()).status !== 200) {
        assert.ok(Date.now() < back, "B did not load the key again within 5 s of the lift");
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual((await km(B, "GET")).json.data.map((k: { validating_pubkey: string }) => k.validating_pubkey), [pk]);
    } finally {
      await A.close();
      await B.close();
      await scratch.cleanup();
    }
  });

  it("an import that lifts a retirement while the retirement check reads the retirements: the check does not unload the key it read as retired", async () => {
    const dataDir = tempDir();
    const server = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", dataDir, retirementCheckMs: 3_600_000 });
    try {
      await server.vault.unlock("env:UNUSED", fromEnv);
      const keystore = await keystoreOf();
      assert.equal((await km(server, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] })).json.data[0].status, "imported");
      const store = server.vault.store;
      await store.retire([pk]); // as another instance on the database would
      const realGetRetired = store.getRetired.bind(store);
      let releaseRead: () => void = () => undefined;
      const readHeld = new Promise<void>((r) => (releaseRead = r));
      let reads = 0;
      let firstRead: () => void = () => undefined;
      const firstReadStarted = new Promise<void>((r) => (firstRead = r));
      store.getRetired = async () => {
        const read = await realGetRetired();
        if (++reads === 1) {
          firstRead();
          await readHeld; // this read (the validator retired) answers only after the import below lifted it
        }
        return read;
      };
      const refused = await post(`${server.url}/api/v1/eth2/sign/${pk}`, attestation(3, 4)); // starts the check
      assert.equal(refused.json.code, "VALIDATOR_RETIRED");
      await firstReadStarted;
      assert.deepEqual((await km(server, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] })).json.data, [{ status: "duplicate" }]);
      assert.deepEqual(await store.getRetired(), [], "the import lifted the retirement");
      releaseRead();
      await new Promise((r) => setTimeout(r, 300)); // the check ends (and its retry runs)
      assert.ok(reads >= 2, "the check read the retirements again");
      assert.deepEqual((await km(server, "GET")).json.data.map((k: { validating_pubkey: string }) => k.validating_pubkey), [pk], "the key stays loaded");
      const signed = await post(`${server.url}/api/v1/eth2/sign/${pk}`, attestation(3, 4));
      assert.equal(signed.status, 200, signed.text);
    } finally {
      await server.close();
    }
  });

  it("a lifted key waiting to load back (behind an import's scrypt derivations) does not hold up the unload of another retired key", async () => {
    const server = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", retirementCheckMs: 100 });
    const held = async (): Promise<string[]> => (await km(server, "GET")).json.data.map((k: { validating_pubkey: string }) => k.validating_pubkey).sort();
    const until = async (what: string, ok: () => Promise<boolean>): Promise<number> => {
      for (const deadline = Date.now() + 10_000; !(await ok()); await new Promise((r) => setTimeout(r, 20))) assert.ok(Date.now() < deadline, what);
      return Date.now();
    };
    try {
      await server.vault.unlock("env:UNUSED", fromEnv);
      const pbkdf2 = await Promise.all(keys.map(async (k) => JSON.stringify(await encryptKeystore(k.secret, "pw-pw-pw-pw", { kdf: "pbkdf2" }))));
      assert.deepEqual((await km(server, "POST", { keystores: pbkdf2, passwords: pbkdf2.map(() => "pw-pw-pw-pw") })).json.data.map((d: { status: string }) => d.status), ["imported", "imported", "imported"]);
      const store = server.vault.store;
      await store.retire([keys[0].pubkey]); // by another instance
      await until("keys[0] was not unloaded", async () => !(await held()).includes(keys[0].pubkey));
      const scrypt = await Promise.all([0, 1].map(async () => JSON.stringify(await encryptKeystore(keys[2].secret, "pw-pw-pw-pw"))));
      let answered = 0;
      const importing = km(server, "POST", { keystores: scrypt, passwords: ["pw-pw-pw-pw", "pw-pw-pw-pw"] }).then((r) => ((answered = Date.now()), r));
      await new Promise((r) => setTimeout(r, 100));
      await store.unretire([keys[0].pubkey]); // lifted elsewhere: its load-back waits for the import's turn to end
      await new Promise((r) => setTimeout(r, 150));
      await store.retire([keys[1].pubkey]);
      const unloaded = await until("keys[1] was not unloaded", async () => !(await held()).includes(keys[1].pubkey));
      assert.deepEqual((await importing).json.data, [{ status: "duplicate" }, { status: "duplicate" }]);
      assert.ok(unloaded < answered, `keys[1] was unloaded ${unloaded - answered} ms after the import answered, not while it decrypted`);
      await until("keys[0] did not load again after its retirement was lifted", async () => (await held()).includes(keys[0].pubkey));
    } finally {
      await server.close();
    }
  });

  it("PostgreSQL: the retirement check does not wait for an import's key derivations (scrypt keystores)", async () => {
    const scratch = new PgScratch("retire");
    await scratch.ping();
    const db = { dbUrl: PG_URL, dbSchema: scratch.schema() };
    const A = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", ...db });
    await A.vault.unlock("env:UNUSED", fromEnv);
    const B = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", ...db, retirementCheckMs: 100 });
    await B.vault.unlock("env:UNUSED", fromEnv);
    try {
      const keystore = await keystoreOf();
      for (const s of [A, B]) assert.equal((await km(s, "POST", { keystores: [keystore], passwords: ["pw-pw-pw-pw"] })).json.data[0].status, "imported");
      const slow = await Promise.all([keys[0], keys[1]].map(async (k) => JSON.stringify(await encryptKeystore(k.secret, "pw-pw-pw-pw")))); // scrypt
      let importDone = 0;
      const importing = km(B, "POST", { keystores: slow, passwords: slow.map(() => "pw-pw-pw-pw") }).then((r) => {
        importDone = Date.now();
        return r;
      });
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual((await km(A, "DELETE", { pubkeys: [pk] })).json.data, [{ status: "deleted" }]);
      let unloaded = 0;
      for (const deadline = Date.now() + 10_000; !unloaded; await new Promise((r) => setTimeout(r, 20))) {
        const res = await post(`${B.url}/api/v1/eth2/sign/${pk}`, sample("RANDAO_REVEAL.json"));
        if (res.status === 404) unloaded = Date.now();
        else assert.equal(res.status, 200, res.text);
        assert.ok(Date.now() < deadline, "B did not unload the retired key within 10 s");
      }
      const imported = await importing;
      assert.deepEqual(imported.json.data, [{ status: "imported" }, { status: "imported" }]);
      assert.ok(unloaded < importDone, `the key was unloaded ${unloaded - importDone} ms after the import answered, not while it decrypted`);
    } finally {
      await A.close();
      await B.close();
      await scratch.cleanup();
    }
  });

  it("PostgreSQL: an instance that still holds the key (a keystore directory) refuses its blocks and attestations once another deleted it, then unloads it, and does not load it again", async () => {
    const scratch = new PgScratch("retire");
    await scratch.ping();
    const db = { dbUrl: PG_URL, dbSchema: scratch.schema() };
    const dirB = tempDir();
    fs.mkdirSync(path.join(dirB, "keystores"));
    fs.writeFileSync(path.join(dirB, "keystores", "k2.json"), await keystoreOf());
    fs.writeFileSync(path.join(dirB, "password.txt"), "pw-pw-pw-pw");
    const keystoresB = { dir: path.join(dirB, "keystores"), passwordFile: path.join(dirB, "password.txt") };
    const A = await startTestServer("minimal", [], { apiToken: TOKEN, unlock: "env:UNUSED", ...db });
    await A.vault.unlock("env:UNUSED", fromEnv);
    let B = await startTestServer("minimal", [], { ...db, dataDir: path.join(dirB, "data"), keystores: keystoresB });
    try {
      const signB = (body: unknown) => post(`${B.url}/api/v1/eth2/sign/${pk}`, body);
      assert.equal((await signB(attestation(1, 2))).status, 200);
      assert.equal((await km(A, "POST", { keystores: [await keystoreOf()], passwords: ["pw-pw-pw-pw"] })).json.data[0].status, "imported");
      assert.deepEqual((await km(A, "DELETE", { pubkeys: [pk] })).json.data, [{ status: "deleted" }]);
      const res = await signB(attestation(2, 3));
      assert.equal(res.status, 412, res.text);
      assert.equal(res.json.code, "VALIDATOR_RETIRED");
      assert.match(res.json.message, /its key was deleted through the Keymanager API/);
      await untilUnloaded(B, pk); // then RANDAO, exits and everything else stop too
      assert.equal((await signB(block(30, "0x" + "61".repeat(32)))).json.code, "KEY_NOT_FOUND");
      await B.close(true);
      B = await startTestServer("minimal", [], { ...db, dataDir: path.join(dirB, "data"), keystores: keystoresB });
      assert.equal((await signB(sample("RANDAO_REVEAL.json"))).status, 404, "not loaded again from the keystore directory");
    } finally {
      await A.close();
      await B.close();
      fs.rmSync(dirB, { recursive: true, force: true });
      await scratch.cleanup();
    }
  });
});

describe("Keymanager imports and deletions run one at a time, in the order they arrive", () => {
  const pk = keys[1].pubkey;
  const KEYSTORE_PW = "pw-pw-pw-pw";
  const ids = (res: { json: { data: { validating_pubkey: string }[] } }) => res.json.data.map((k) => k.validating_pubkey);

  it("an import of a held key (slow scrypt) and a DELETE sent just after it: duplicate, then deleted; the key stays retired", async () => {
    const server = await unlockedServer();
    try {
      const quick = JSON.stringify(await encryptKeystore(keys[1].secret, KEYSTORE_PW, { kdf: "pbkdf2" }));
      assert.deepEqual((await km(server, "POST", { keystores: [quick], passwords: [KEYSTORE_PW] })).json.data, [{ status: "imported" }]);
      // EIP-2335's default scrypt (n = 2^18): decrypting it takes far longer than a DELETE.
      const slow = JSON.stringify(await encryptKeystore(keys[1].secret, KEYSTORE_PW));
      const importing = km(server, "POST", { keystores: [slow], passwords: [KEYSTORE_PW] });
      await new Promise((r) => setTimeout(r, 100)); // the import is in the vault, decrypting
      const deleting = km(server, "DELETE", { pubkeys: [pk] });
      const [imported, deleted] = await Promise.all([importing, deleting]);
      assert.deepEqual(imported.json.data, [{ status: "duplicate" }], "the import ran first and found the key held");
      assert.deepEqual(deleted.json.data, [{ status: "deleted" }]);
      assert.deepEqual((await server.vault.store.getRetired()).map((r) => r.pubkey), [pk], "the retirement is not lost");
      assert.deepEqual(ids(await km(server, "GET")), []);
      const refused = await post(`${server.url}/api/v1/eth2/sign/${pk}`, attestation(1, 2));
      assert.equal(refused.status, 404, refused.text);
    } finally {
      await server.close();
    }
  });

  it("shutting down lets an import already running finish before the stores close; a new one is refused", async () => {
    const dataDir = tempDir();
    const server = await unlockedServer(dataDir);
    let closed = false;
    try {
      const slow = JSON.stringify(await encryptKeystore(keys[1].secret, KEYSTORE_PW)); // scrypt: still decrypting at close
      const importing = server.vault.importKeystores([slow], [KEYSTORE_PW]);
      await new Promise((r) => setTimeout(r, 50));
      const closing = server.close(true);
      closed = true;
      assert.deepEqual(await importing, [{ status: "imported" }]);
      await closing;
      await assert.rejects(server.vault.importKeystores([slow], [KEYSTORE_PW]), (e: unknown) => e instanceof VigilError && e.code === "SHUTTING_DOWN");
      const again = await unlockedServer(dataDir);
      try {
        assert.deepEqual(ids(await km(again, "GET")), [pk], "the import reached the key store file");
      } finally {
        await again.close();
      }
    } finally {
      if (!closed) await server.close();
    }
  });

  it("a key listed twice in one DELETE is deleted once; its other entries say not_active (history returned once)", async () => {
    const server = await unlockedServer();
    try {
      const keystore = JSON.stringify(await encryptKeystore(keys[1].secret, KEYSTORE_PW, { kdf: "pbkdf2" }));
      assert.deepEqual((await km(server, "POST", { keystores: [keystore], passwords: [KEYSTORE_PW] })).json.data, [{ status: "imported" }]);
      assert.equal((await post(`${server.url}/api/v1/eth2/sign/${pk}`, attestation(1, 2))).status, 200);
      const del = await km(server, "DELETE", { pubkeys: [pk, pk, pk.toUpperCase().replace("0X", "0x")] });
      assert.deepEqual(del.json.data, [{ status: "deleted" }, { status: "not_active" }, { status: "not_active" }]);
      assert.deepEqual(JSON.parse(del.json.slashing_protection).data.map((d: { pubkey: string }) => d.pubkey), [pk]);
    } finally {
      await server.close();
    }
  });

  it("the same new keystore imported by two requests at once: one imported, one duplicate", async () => {
    const server = await unlockedServer();
    try {
      const keystore = JSON.stringify(await encryptKeystore(keys[1].secret, KEYSTORE_PW, { kdf: "pbkdf2" }));
      const body = { keystores: [keystore], passwords: [KEYSTORE_PW] };
      // A slow disk: writing the key store file takes 300 ms (the window in which a second import could look).
      const sealed = (server.vault as unknown as { sealed: { add: (...a: unknown[]) => Promise<unknown> } }).sealed;
      const add = sealed.add.bind(sealed);
      sealed.add = async (...a) => (await new Promise((r) => setTimeout(r, 300)), add(...a));
      const answers = await Promise.all([km(server, "POST", body), km(server, "POST", body)]);
      assert.deepEqual(answers.map((a) => a.json.data[0].status).sort(), ["duplicate", "imported"]);
      assert.deepEqual(ids(await km(server, "GET")), [pk]);
    } finally {
      await server.close();
    }
  });
});
