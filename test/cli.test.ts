/**
 * The `vigil` command line as a user runs it (dist/src/cli/index.js in a child process):
 * `vigil slashing import|export` round trips and refusals, `vigil start` option errors, and the
 * first-run DEV keys.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { after, test } from "node:test";
import { killVigils, runVigil, spawnVigil, stopVigil, type RunResult } from "./helpers/cli.js";
import { conformanceDir } from "./helpers/paths.js";
import { tempDir } from "./helpers/server.js";

const DB_FILE = "slashing-protection.sqlite";
const tmp = tempDir("vigil-cli-");
after(async () => {
  await killVigils();
  fs.rmSync(tmp, { recursive: true, force: true });
});

let n = 0;
/** A fresh path under the test's temp dir (not created). */
const fresh = (name: string): string => path.join(tmp, `${++n}-${name}`);
const writeJson = (name: string, value: unknown): string => {
  const file = fresh(name);
  fs.writeFileSync(file, typeof value === "string" ? value : JSON.stringify(value, null, 2));
  return file;
};

interface Interchange {
  metadata: { interchange_format_version: string; genesis_validators_root: string };
  data: {
    pubkey: string;
    signed_blocks: { slot: string; signing_root?: string }[];
    signed_attestations: { source_epoch: string; target_epoch: string; signing_root?: string }[];
  }[];
}

const conformance = (file: string): Interchange =>
  JSON.parse(fs.readFileSync(path.join(conformanceDir, "eip3076", "tests", "generated", file), "utf8")).steps[0].interchange;
const INTERCHANGE = conformance("multiple_validators_multiple_blocks_and_attestations.json");
const MAINNET_GVR = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95";

/** A failed command: exit 1, one `vigil: ...` line on stderr matching `pattern`, no stack trace. */
function assertFailed(r: RunResult, pattern: RegExp): void {
  assert.equal(r.timedOut, false, "the command finished");
  assert.equal(r.code, 1, `exit code (stdout: ${r.stdout}, stderr: ${r.stderr})`);
  assert.match(r.stderr, /^vigil: /);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
  assert.doesNotMatch(r.stderr + r.stdout, /node:internal|\.js:\d+:\d+/, "no stack frames");
}

async function exportText(dataDir: string): Promise<string> {
  const file = fresh("export.json");
  const r = await runVigil(["slashing", "export", file, "--data-dir", dataDir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^exported \d+ validators, \d+ blocks, \d+ attestations to /);
  return fs.readFileSync(file, "utf8");
}

/** Every record as "pubkey block slot" / "pubkey att source target" (signing roots aside). */
function records(doc: Interchange): Set<string> {
  const out = new Set<string>();
  for (const v of doc.data) {
    for (const b of v.signed_blocks) out.add(`${v.pubkey.toLowerCase()} block ${Number(b.slot)}`);
    for (const a of v.signed_attestations) out.add(`${v.pubkey.toLowerCase()} att ${Number(a.source_epoch)} ${Number(a.target_epoch)}`);
  }
  return out;
}

const counts = (doc: Interchange): { validators: number; blocks: number; atts: number } => ({
  validators: new Set(doc.data.map((v) => v.pubkey)).size,
  blocks: doc.data.reduce((s, v) => s + v.signed_blocks.length, 0),
  atts: doc.data.reduce((s, v) => s + v.signed_attestations.length, 0),
});

test("slashing import → export → re-import: every record kept, re-import idempotent, other networks refused", { timeout: 120_000 }, async (t) => {
  const dataDir = fresh("data");
  const file = writeJson("interchange.json", INTERCHANGE);
  const c = counts(INTERCHANGE);
  assert.ok(c.validators > 1 && c.blocks > 0 && c.atts > 0);

  const imported = await runVigil(["slashing", "import", file, "--data-dir", dataDir]);
  assert.equal(imported.code, 0, imported.stderr);
  assert.equal(
    imported.stdout.trim(),
    `imported ${file}: ${c.validators} validators (${c.validators} new), ${c.blocks} blocks (0 already known), ${c.atts} attestations (0 already known)`,
  );
  assert.ok(fs.existsSync(path.join(dataDir, DB_FILE)));

  const exported = await exportText(dataDir);
  const doc = JSON.parse(exported) as Interchange;
  assert.deepEqual(doc.metadata, INTERCHANGE.metadata);
  assert.deepEqual(records(doc), records(INTERCHANGE), "the export holds exactly the imported records");

  await t.test("re-import is idempotent", async () => {
    const again = await runVigil(["slashing", "import", file, "--data-dir", dataDir]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(
      again.stdout.trim(),
      `imported ${file}: ${c.validators} validators (0 new), 0 blocks (${c.blocks} already known), 0 attestations (${c.atts} already known)`,
    );
    assert.equal(await exportText(dataDir), exported);
  });

  await t.test("a file for another genesis validators root is refused, the database unchanged", async () => {
    const other = structuredClone(INTERCHANGE);
    other.metadata.genesis_validators_root = "0x" + "11".repeat(32);
    other.data[0].signed_blocks.push({ slot: "12345" }); // would show in the export if anything were imported
    const r = await runVigil(["slashing", "import", writeJson("other-gvr.json", other), "--data-dir", dataDir]);
    assertFailed(r, /GENESIS_VALIDATORS_ROOT_MISMATCH/);
    assert.match(r.stderr, /0x1111/);
    assert.equal(r.stdout, "");
    assert.equal(await exportText(dataDir), exported);
  });

  await t.test("--network mainnet refuses the file (and the database is unchanged)", async () => {
    const r = await runVigil(["slashing", "import", file, "--data-dir", dataDir, "--network", "mainnet"]);
    assertFailed(r, /GENESIS_VALIDATORS_ROOT_MISMATCH/);
    assert.equal(await exportText(dataDir), exported);
  });

  await t.test("export --pubkey selects validators", async () => {
    const pubkey = INTERCHANGE.data[1].pubkey;
    const out = fresh("one.json");
    const r = await runVigil(["slashing", "export", out, "--data-dir", dataDir, "--pubkey", pubkey.toUpperCase().replace("0X", "0x")]);
    assert.equal(r.code, 0, r.stderr);
    const one = JSON.parse(fs.readFileSync(out, "utf8")) as Interchange;
    assert.deepEqual(one.data.map((v) => v.pubkey), [pubkey]);
    assert.deepEqual(records(one), records({ ...INTERCHANGE, data: [INTERCHANGE.data[1]] }));
  });
});

test("slashing import --network mainnet into an empty data dir refuses a non-mainnet file", { timeout: 60_000 }, async (t) => {
  const dataDir = fresh("data");
  const file = writeJson("interchange.json", INTERCHANGE);
  const r = await runVigil(["slashing", "import", file, "--data-dir", dataDir, "--network", "mainnet"]);
  assertFailed(r, /GENESIS_VALIDATORS_ROOT_MISMATCH/);
  // Nothing was imported.
  const out = fresh("export.json");
  const exp = await runVigil(["slashing", "export", out, "--data-dir", dataDir]);
  if (exp.code === 0) assert.deepEqual(JSON.parse(fs.readFileSync(out, "utf8")).data, []);

  // The same file for mainnet is accepted.
  const mainnetFile = writeJson("mainnet.json", { ...INTERCHANGE, metadata: { ...INTERCHANGE.metadata, genesis_validators_root: MAINNET_GVR } });
  const okDir = fresh("data");
  const ok = await runVigil(["slashing", "import", mainnetFile, "--data-dir", okDir, "--network", "mainnet"]);
  assert.equal(ok.code, 0, ok.stderr);

  await t.test("the refused import leaves an empty data dir unbound", async () => {
    // The refused import should not have bound the fresh database to mainnet: the user can still import the right file.
    assert.equal(exp.code, 1, "export of a never-bound database fails with GENESIS_VALIDATORS_ROOT_UNSET or NO_DATABASE");
    const retry = await runVigil(["slashing", "import", file, "--data-dir", dataDir]);
    assert.equal(retry.code, 0, retry.stderr);
  });
});

test("slashing import of malformed files: exit 1, a clear message, no stack trace, no database created", { timeout: 60_000 }, async (t) => {
  const cases: [string, string | unknown, RegExp][] = [
    ["not JSON", "{ this is not json", /INVALID_JSON: .*is not JSON/],
    ["empty file", "", /INVALID_JSON/],
    ["not an interchange", { hello: "world" }, /INVALID_INTERCHANGE: .*metadata/],
    ["wrong version", { ...INTERCHANGE, metadata: { ...INTERCHANGE.metadata, interchange_format_version: "4" } }, /INTERCHANGE_VERSION_UNSUPPORTED/],
    ["bad pubkey", { ...INTERCHANGE, data: [{ ...INTERCHANGE.data[0], pubkey: "0x1234" }] }, /INVALID_INTERCHANGE: .*data\[0\]\.pubkey/],
    [
      "number instead of decimal string",
      { ...INTERCHANGE, data: [{ ...INTERCHANGE.data[0], signed_blocks: [{ slot: 10 }] }] },
      /INVALID_INTERCHANGE: .*signed_blocks\[0\]\.slot/,
    ],
  ];
  for (const [name, content, pattern] of cases) {
    await t.test(name, async () => {
      const dataDir = fresh("data");
      const r = await runVigil(["slashing", "import", writeJson("bad.json", content), "--data-dir", dataDir]);
      assertFailed(r, pattern);
      assert.equal(fs.existsSync(path.join(dataDir, DB_FILE)), false, "no database created");
    });
  }
  await t.test("missing file", async () => {
    const r = await runVigil(["slashing", "import", fresh("missing.json"), "--data-dir", fresh("data")]);
    assertFailed(r, /FILE_UNREADABLE: cannot read .*missing\.json/);
  });
  await t.test("export without a database", async () => {
    const r = await runVigil(["slashing", "export", fresh("out.json"), "--data-dir", fresh("data")]);
    assertFailed(r, /NO_DATABASE/);
  });
  await t.test("a watermark on a data dir without a database (a mistyped path) creates none", async () => {
    const dir = fresh("typo");
    const r = await runVigil(["slashing", "watermark", "--high", "--epoch", "5", "--data-dir", dir]);
    assertFailed(r, /NO_DATABASE/);
    assert.equal(fs.existsSync(path.join(dir, "slashing-protection.sqlite")), false);
  });
});

test("vigil start with bad options: exit 1 with a clear message, nothing created", { timeout: 60_000 }, async (t) => {
  const cases: [string, string[], RegExp][] = [
    ["--port 99999", ["--port", "99999"], /port must be 0-65535, got 99999/],
    ["--port abc", ["--port", "abc"], /port must be 0-65535/],
    ["--network goerli", ["--network", "goerli"], /UNKNOWN_NETWORK: unknown network "goerli"/],
    ["--keystores without passwords", ["--keystores", tmp], /--keystores needs --passwords <dir> or --password-file <file>/],
    ["--passwords and --password-file", ["--keystores", tmp, "--passwords", tmp, "--password-file", path.join(tmp, "x")], /not both/],
  ];
  for (const [name, args, pattern] of cases) {
    await t.test(name, async () => {
      const dataDir = fresh("data");
      const r = await runVigil(["start", "--data-dir", dataDir, "--host", "127.0.0.1", ...args]);
      assertFailed(r, pattern);
      assert.equal(fs.existsSync(dataDir), false, "the data dir was not created");
    });
  }
  await t.test("a policy file that does not exist, a data dir that is a file: named, no internal error", async () => {
    const missing = await runVigil(["start", "--network", "minimal", "--data-dir", fresh("data"), "--host", "127.0.0.1", "--port", "0", "--policy", path.join(tmp, "no-such-policy.yaml")]);
    assertFailed(missing, /POLICY_UNREADABLE: cannot read the policy .*no-such-policy\.yaml/);
    assert.doesNotMatch(missing.stderr, /INTERNAL_ERROR/);
    const file = fresh("a-file");
    fs.writeFileSync(file, "");
    const notDir = await runVigil(["start", "--network", "minimal", "--data-dir", file, "--host", "127.0.0.1", "--port", "0"]);
    assertFailed(notDir, /DATA_DIR_UNUSABLE: cannot use .*a-file as the data directory/);
  });
  await t.test("the port is taken: exit 1 naming it, and a new policy is not recorded as accepted", async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    try {
      const port = String((taken.address() as net.AddressInfo).port);
      const dataDir = fresh("data");
      const policy = fresh("policy.yaml");
      fs.writeFileSync(policy, "version: 1\nrules:\n  - id: duties\n    match: { types: [ATTESTATION, RANDAO_REVEAL] }\n    action: allow\n");
      const r = await runVigil(["start", "--network", "minimal", "--data-dir", dataDir, "--host", "127.0.0.1", "--port", port, "--policy", policy]);
      assertFailed(r, new RegExp(`PORT_IN_USE: .*127\\.0\\.0\\.1:${port}`));
      assert.equal(fs.existsSync(path.join(dataDir, "policy.accepted.yaml")), false, "not accepted: the instance never started with it");
      const started = await spawnVigil(["--network", "minimal", "--data-dir", dataDir, "--policy", policy]);
      t.after(() => stopVigil(started.proc));
      assert.equal(fs.readFileSync(path.join(dataDir, "policy.accepted.yaml"), "utf8"), fs.readFileSync(policy, "utf8"));
    } finally {
      taken.close();
    }
  });
  await t.test("an unknown flag", async () => {
    const r = await runVigil(["start", "--data-dir", fresh("data"), "--bogus"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown option '--bogus'/);
    assert.doesNotMatch(r.stderr, /^\s+at /m);
  });
});

test("first start without keystores creates DEV keys; the second start reuses them", { timeout: 120_000 }, async (t) => {
  const dataDir = fresh("data");
  const publicKeys = async (url: string): Promise<string[]> => {
    const res = await fetch(`${url}/api/v1/eth2/publicKeys`);
    assert.equal(res.status, 200);
    return (await res.json()) as string[];
  };

  const first = await spawnVigil(["--data-dir", dataDir]);
  t.after(() => stopVigil(first.proc));
  assert.match(first.stdout(), /keys loaded: 2 \(DEV keys/);
  assert.match(first.stdout(), /generated DEV keys/);
  const keys = await publicKeys(first.url);
  assert.equal(keys.length, 2);
  for (const k of keys) assert.match(k, /^0x[0-9a-f]{96}$/);
  const health = await fetch(`${first.url}/healthcheck`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { status: string }).status, "UP");
  assert.equal(fs.readdirSync(path.join(dataDir, "dev-keystores")).filter((f) => f.endsWith(".json")).length, 2);
  const stopped = await stopVigil(first.proc);
  assert.equal(stopped.code, 0, first.output());

  const second = await spawnVigil(["--data-dir", dataDir]);
  t.after(() => stopVigil(second.proc));
  assert.match(second.stdout(), /keys loaded: 2 \(DEV keys/);
  assert.doesNotMatch(second.output(), /generated DEV keys/);
  assert.deepEqual((await publicKeys(second.url)).sort(), [...keys].sort());
  assert.equal((await fetch(`${second.url}/healthcheck`)).status, 200);
  assert.equal((await stopVigil(second.proc)).code, 0);
});
