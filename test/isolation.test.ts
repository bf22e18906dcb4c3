// The custody boundary with real processes: the HTTP process loads no BLS or key code, the
// vault process holds the keys; a sealed key store unlocked over stdin; keys commands.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { interopKeys, lodestarSamples } from "./helpers/keys.js";
import { cliPath, killVigils, runVigil, spawnVigil, stopVigil, writeKeystores } from "./helpers/cli.js";
import { repoRoot } from "./helpers/paths.js";
import { post, tempDir } from "./helpers/server.js";
import { SecretKey } from "@chainsafe/blst";
import { NODE_FLAGS } from "../src/config/node-flags.js";
import { API_TOKEN_FILE } from "../src/config/files.js";

const keys = interopKeys();
const PASSPHRASE = "isolation test passphrase";

/** Shared objects mapped into a process (Linux /proc). */
function mappedFiles(pid: number): string {
  return fs.readFileSync(`/proc/${pid}/maps`, "utf8");
}
function childrenOf(pid: number): number[] {
  const file = `/proc/${pid}/task/${pid}/children`;
  return fs.readFileSync(file, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
}

describe("custody boundary (real processes)", () => {
  after(() => killVigils());
  const dir = tempDir();
  const dataDir = path.join(dir, "data");

  it("keys import seals keystores; start --unlock stdin serves them from the vault process only", async () => {
    const ks = await writeKeystores(path.join(dir, "keystores"), [keys[0].secret, keys[1].secret], "keystore-password");
    const passFile = path.join(dir, "passphrase.txt");
    fs.writeFileSync(passFile, PASSPHRASE, { mode: 0o600 });
    const imported = await runVigil(["keys", "import", ks.dir, "--password-file", ks.passwordFile, "--data-dir", dataDir, "--unlock", `file:${passFile}`]);
    assert.equal(imported.code, 0, imported.stderr);
    const listed = await runVigil(["keys", "list", "--data-dir", dataDir]);
    assert.equal(listed.code, 0, listed.stderr);
    for (const k of keys.slice(0, 2)) assert.match(listed.stdout, new RegExp(k.pubkey));

    const vigil = await spawnVigil(["--network", "minimal", "--data-dir", dataDir, "--unlock", "stdin"], { stdin: PASSPHRASE + "\n" });
    try {
      // Wait for the unlock (the server answers 503 LOCKED until then).
      let health = 0;
      for (let i = 0; i < 100 && health !== 200; i++) {
        health = (await fetch(`${vigil.url}/healthcheck`)).status;
        if (health !== 200) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(health, 200);
      const body = lodestarSamples().find((s) => s.file === "RANDAO_REVEAL.json")!.body;
      const signed = await post(`${vigil.url}/api/v1/eth2/sign/${keys[0].pubkey}`, body);
      assert.equal(signed.status, 200, signed.text);

      const parent = vigil.proc.pid!;
      const [vault] = childrenOf(parent);
      assert.ok(vault, "the vault runs as a child process");
      assert.doesNotMatch(mappedFiles(parent), /blst|better_sqlite3/, "the HTTP process loads no BLS or database code");
      assert.match(mappedFiles(vault), /blst/, "the vault process does the signing");
      assert.match(mappedFiles(vault), /better_sqlite3/, "the vault process owns the protection database");
      // The vault runs with Vigil's V8 heap options, whatever the parent was started with.
      const vaultArgs = fs.readFileSync(`/proc/${vault}/cmdline`, "utf8").split("\0");
      for (const flag of NODE_FLAGS) assert.ok(vaultArgs.includes(flag), `vault started without ${flag}: ${vaultArgs.join(" ")}`);
    } finally {
      await stopVigil(vigil.proc);
    }
  });

  it("npm start and the vigil shebang pass Vigil's V8 heap options", () => {
    const start = JSON.parse(fs.readFileSync(path.join(repoRoot, "package.json"), "utf8")).scripts.start as string;
    assert.equal(start, `node ${NODE_FLAGS.join(" ")} dist/src/cli/index.js start`);
    const shebang = fs.readFileSync(cliPath, "utf8").split("\n")[0];
    assert.equal(shebang, `#!/usr/bin/env -S node ${NODE_FLAGS.join(" ")}`);
  });

  it("a wrong passphrase over stdin stops Vigil with a clear message", async () => {
    const vigil = await spawnVigil(["--network", "minimal", "--data-dir", dataDir, "--unlock", "stdin"], { stdin: "wrong passphrase\n" }).catch((e: Error) => e);
    // Either it exits before the ready line or right after it: both must name the cause.
    const text = vigil instanceof Error ? vigil.message : await new Promise<string>((resolve) => vigil.proc.once("exit", () => resolve(vigil.output())));
    assert.match(text, /WRONG_PASSPHRASE/);
  });

  it("keys passphrase under a running Vigil: signing goes on, key-store changes are refused until a restart with the new passphrase", async () => {
    const passFile = path.join(dir, "passphrase.txt");
    const vigil = await spawnVigil(["--network", "minimal", "--data-dir", dataDir, "--unlock", `file:${passFile}`]);
    const sign = async (url: string): Promise<number> => {
      const body = lodestarSamples().find((s) => s.file === "RANDAO_REVEAL.json")!.body;
      return (await post(`${url}/api/v1/eth2/sign/${keys[0].pubkey}`, body)).status;
    };
    try {
      let health = 0;
      for (let i = 0; i < 100 && health !== 200; i++) {
        health = (await fetch(`${vigil.url}/healthcheck`)).status;
        if (health !== 200) await new Promise((r) => setTimeout(r, 50));
      }
      const newFile = path.join(dir, "new-passphrase.txt");
      fs.writeFileSync(newFile, "the new passphrase", { mode: 0o600 });
      // A Keymanager import without a slashing-protection history (optional in the API) crosses into the vault.
      const token = fs.readFileSync(path.join(dataDir, API_TOKEN_FILE), "utf8").trim();
      const ks = await writeKeystores(path.join(dir, "more"), [keys[2].secret, SecretKey.fromKeygen(crypto.randomBytes(32)).toBytes()], "pw");
      const importKeystore = (i: number) =>
        post(
          `${vigil.url}/eth/v1/keystores`,
          JSON.stringify({ keystores: [fs.readFileSync(path.join(ks.dir, `keystore-${i}.json`), "utf8")], passwords: ["pw"] }),
          { authorization: `Bearer ${token}` },
        );
      const first = await importKeystore(0);
      assert.equal(first.status, 200, first.text);
      assert.deepEqual(first.json.data, [{ status: "imported" }]);

      const changed = await runVigil(["keys", "passphrase", "--data-dir", dataDir, "--unlock", `file:${passFile}`, "--new-passphrase", `file:${newFile}`]);
      assert.equal(changed.code, 0, changed.stderr);
      assert.match(changed.stdout, /3 keys re-sealed; scrypt n=65536, r=8, p=16/);
      assert.equal(await sign(vigil.url), 200);
      const imported = await importKeystore(1);
      assert.equal(imported.status, 200, imported.text);
      assert.equal(imported.json.data[0].status, "error");
      assert.match(imported.json.data[0].message, /KEY_STORE_CHANGED/);
    } finally {
      await stopVigil(vigil.proc);
    }
    const old = await spawnVigil(["--network", "minimal", "--data-dir", dataDir, "--unlock", `file:${passFile}`]).catch((e: Error) => e);
    const text = old instanceof Error ? old.message : await new Promise<string>((resolve) => old.proc.once("exit", () => resolve(old.output())));
    assert.match(text, /WRONG_PASSPHRASE/);
    fs.copyFileSync(path.join(dir, "new-passphrase.txt"), passFile); // the later tests use the new one
    const restarted = await spawnVigil(["--network", "minimal", "--data-dir", dataDir, "--unlock", `file:${passFile}`]);
    try {
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        status = await sign(restarted.url);
        if (status !== 200) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(status, 200);
    } finally {
      await stopVigil(restarted.proc);
    }
  });

  it("killing the vault process stops the HTTP process (fail closed)", async () => {
    const vigil = await spawnVigil(["--network", "minimal", "--data-dir", path.join(dir, "other")]);
    const [vault] = childrenOf(vigil.proc.pid!);
    const exit = new Promise<number | null>((resolve) => vigil.proc.once("exit", (code) => resolve(code)));
    process.kill(vault, "SIGKILL");
    assert.equal(await exit, 1);
    assert.match(vigil.output(), /key vault process stopped/);
  });

  it("keys export writes EIP-2335 keystores that load again", async () => {
    const out = path.join(dir, "exported");
    const pw = path.join(dir, "export-password.txt");
    fs.writeFileSync(pw, "exported-password", { mode: 0o600 });
    const passFile = path.join(dir, "passphrase.txt");
    const res = await runVigil(["keys", "export", "--data-dir", dataDir, "--unlock", `file:${passFile}`, "--out", out, "--password-file", pw, "--kdf", "pbkdf2"]);
    assert.equal(res.code, 0, res.stderr);
    const files = fs.readdirSync(out).filter((f) => f.endsWith(".json"));
    assert.equal(files.length, 3); // the two imported by the CLI, one over the Keymanager API
    const vigil = await spawnVigil(["--network", "minimal", "--data-dir", path.join(dir, "third"), "--keystores", out, "--password-file", pw]);
    try {
      const pks = await (await fetch(`${vigil.url}/api/v1/eth2/publicKeys`)).json();
      assert.deepEqual([...pks].sort(), [keys[0].pubkey, keys[1].pubkey, keys[2].pubkey].sort());
    } finally {
      await stopVigil(vigil.proc);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("hostile bodies against the real processes", () => {
  after(() => killVigils());
  it("a deeply nested body gets 400 INVALID_BODY and both processes go on signing", async () => {
    const dir = tempDir();
    const ks = await writeKeystores(path.join(dir, "keystores"), [keys[0].secret], "keystore-password");
    const vigil = await spawnVigil(["--network", "minimal", "--keystores", ks.dir, "--password-file", ks.passwordFile, "--data-dir", path.join(dir, "data"), "--log-level", "warn"]);
    try {
      const url = `${vigil.url}/api/v1/eth2/sign/${keys[0].pubkey}`;
      // A valid request with one more top-level field holding 10 KB of brackets: re-serializing it for
      // the vault would overflow the stack (it took both processes down).
      const valid = JSON.stringify(lodestarSamples().find((s) => s.file === "RANDAO_REVEAL.json")!.body);
      for (const depth of [5_000, 50_000]) {
        const res = await post(url, `${valid.slice(0, -1)},"x":${"[".repeat(depth)}${"]".repeat(depth)}}`);
        assert.equal(res.status, 400, res.text);
        assert.equal(res.json.code, "INVALID_BODY");
        assert.match(res.json.message, /nests deeper/);
      }
      const signed = await post(url, lodestarSamples().find((s) => s.file === "RANDAO_REVEAL.json")!.body);
      assert.equal(signed.status, 200, signed.text);
      assert.equal(vigil.proc.exitCode, null);
    } finally {
      await stopVigil(vigil.proc);
    }
  });
});
