/**
 * `vigil doctor`: a clean deployment has no errors; each bad setup gives its finding (id and
 * level) with a fix; the tmpfs check against this machine's real /proc/mounts; clock-tool
 * parsing with stubbed tools; formatFindings and doctorCommand output. Temp dirs only.
 */
import assert from "node:assert/strict";
import { STORE_SCRYPT } from "../src/keys/scrypt-cost.js";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import {
  DB_FILE,
  DEV_DIR,
  formatFindings,
  isLoopback,
  mountFor,
  parseMounts,
  runDoctor,
  type DoctorIo,
  type DoctorOptions,
  type Finding,
} from "../src/cli/doctor.js";
import { tempDir } from "./helpers/server.js";

const tmp = tempDir("vigil-doctor-");
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A mount table putting everything on ext4, so results do not depend on where os.tmpdir() lives. */
const ext4Mounts = path.join(tmp, "mounts-ext4");
fs.writeFileSync(ext4Mounts, "/dev/vda / ext4 rw,relatime 0 0\n");
const noTools = async (): Promise<string | null> => null;
const IO: DoctorIo = { exec: noTools, mountsFile: ext4Mounts };

let n = 0;
function mkdir(p: string, mode = 0o700): string {
  fs.mkdirSync(p, { recursive: true });
  fs.chmodSync(p, mode);
  return p;
}
function write(p: string, content: string, mode = 0o600): string {
  fs.writeFileSync(p, content);
  fs.chmodSync(p, mode);
  return p;
}

interface Deployment {
  root: string;
  dataDir: string;
  keystores: string;
  passwordFile: string;
  opts: DoctorOptions;
}

/** A clean deployment: dirs 0700, files 0600, loopback, keystores with a password file kept apart. */
function deployment(): Deployment {
  const root = mkdir(path.join(tmp, `d${++n}`));
  const dataDir = mkdir(path.join(root, "data"));
  for (const f of [DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`]) write(path.join(dataDir, f), "x");
  write(path.join(dataDir, "api-token.txt"), "api-token-abc\n");
  write(path.join(dataDir, "keys.vigil"), JSON.stringify({ format: "vigil-sealed-keys", version: 1, kdf: { function: "scrypt", ...STORE_SCRYPT, salt: "00".repeat(32) } }));
  const keystores = mkdir(path.join(root, "keystores"));
  write(path.join(keystores, "keystore-m_12381_3600_0_0_0-1.json"), "{}");
  write(path.join(keystores, "keystore-m_12381_3600_1_0_0-1.json"), "{}");
  const secrets = mkdir(path.join(root, "secrets"));
  const passwordFile = write(path.join(secrets, "password.txt"), "hunter2\n");
  // With keys.vigil in the data dir, start needs --unlock.
  const opts: DoctorOptions = { network: "mainnet", keystores, passwordFile, dataDir, host: "127.0.0.1", port: 9000, logLevel: "info", unlock: "prompt" };
  return { root, dataDir, keystores, passwordFile, opts };
}

function only(findings: Finding[], id: string): Finding {
  const hits = findings.filter((f) => f.id === id);
  assert.equal(hits.length, 1, `expected one "${id}" finding, got ${hits.length}:\n${formatFindings(findings)}`);
  return hits[0];
}

function expectFinding(findings: Finding[], id: string, level: Finding["level"], fixIncludes?: string): Finding {
  const f = only(findings, id);
  assert.equal(f.level, level, `${id}: expected ${level}, got ${f.level}: ${f.message}`);
  if (level !== "ok") assert.ok(f.fix && f.fix.length > 0, `${id} has a fix`);
  if (fixIncludes !== undefined) assert.ok(f.fix?.includes(fixIncludes), `${id} fix "${f.fix}" should include "${fixIncludes}"`);
  return f;
}

const errors = (findings: Finding[]): Finding[] => findings.filter((f) => f.level === "error");

test("file names match the ones Vigil writes (config/files.ts, keys/dev.ts)", async () => {
  const files = await import("../src/config/files.js");
  const dev = await import("../src/keys/dev.js");
  assert.equal(DB_FILE, files.DB_FILE);
  assert.equal(DEV_DIR, dev.DEV_DIR);
});

test("a clean deployment has no errors, every check answers once", async () => {
  const d = deployment();
  const findings = await runDoctor(d.opts, IO);
  assert.deepEqual(errors(findings), [], formatFindings(findings));
  const ids = findings.map((f) => f.id);
  assert.equal(new Set(ids).size, ids.length, `duplicate ids: ${ids.join(", ")}`);
  for (const id of [
    "data-dir-exists",
    "data-dir-permissions",
    "data-dir-owner",
    "data-dir-filesystem",
    "slashing-db",
    "slashing-db-permissions",
    "key-store-permissions",
    "key-store-kdf",
    "api-token-permissions",
    "keystores-dir",
    "keystore-permissions",
    "password-permissions",
    "listen-address",
    "clock-sanity",
  ]) {
    expectFinding(findings, id, "ok");
  }
  // What remains is advisory: passwords on disk, the unmeasurable clock, maybe root.
  expectFinding(findings, "passwords-at-rest", "warn", "--unlock prompt|stdin|env:VAR");
  expectFinding(findings, "clock-sync", "warn", "run chrony or systemd-timesyncd");
  assert.equal(findings.some((f) => f.id === "password-in-keystores-dir" || f.id === "dev-keys-public-network"), false);
});

test("world-readable password file → password-permissions error", async () => {
  const d = deployment();
  fs.chmodSync(d.passwordFile, 0o644);
  const f = expectFinding(await runDoctor(d.opts, IO), "password-permissions", "error", `chmod 600 ${d.passwordFile}`);
  assert.match(f.message, /0644/);
});

test("passwords dir readable by others → password-permissions error naming dir and files", async () => {
  const d = deployment();
  const dir = mkdir(path.join(d.root, "passwords"), 0o755);
  write(path.join(dir, "keystore-m_12381_3600_0_0_0-1.txt"), "pw", 0o644);
  write(path.join(dir, "keystore-m_12381_3600_1_0_0-1.txt"), "pw", 0o600);
  const findings = await runDoctor({ ...d.opts, passwordFile: undefined, passwords: dir }, IO);
  const f = expectFinding(findings, "password-permissions", "error", `chmod 700 ${dir}`);
  assert.ok(f.fix!.includes(`chmod 600 ${path.join(dir, "keystore-m_12381_3600_0_0_0-1.txt")}`), f.fix);
  assert.ok(!f.fix!.includes("keystore-m_12381_3600_1_0_0-1.txt"), "the 0600 file is not in the fix");
  expectFinding(findings, "passwords-at-rest", "warn");
});

test("a password file inside the keystores dir → password-in-keystores-dir warn", async () => {
  const d = deployment();
  const inside = write(path.join(d.keystores, "password.txt"), "pw");
  expectFinding(await runDoctor({ ...d.opts, passwordFile: inside }, IO), "password-in-keystores-dir", "warn", `mv ${inside} /etc/vigil/passwords/, then start with --password-file /etc/vigil/passwords/password.txt`);
  // --passwords is the keystores dir itself: move the .txt files, not the directory.
  const beside = write(path.join(d.keystores, "keystore-m_12381_3600_0_0_0-1.txt"), "pw");
  const f0 = expectFinding(await runDoctor({ ...d.opts, passwordFile: undefined, passwords: d.keystores }, IO), "password-in-keystores-dir", "warn", `mv ${fs.realpathSync(d.keystores)}/*.txt /etc/vigil/passwords/, then start with --passwords`);
  assert.ok(!f0.fix!.includes(`mv ${d.keystores} `));
  fs.rmSync(beside);
  // Teku-style <basename>.txt beside the keystore, while --password-file points elsewhere.
  const d2 = deployment();
  const stray = write(path.join(d2.keystores, "keystore-m_12381_3600_0_0_0-1.txt"), "pw");
  const f = expectFinding(await runDoctor(d2.opts, IO), "password-in-keystores-dir", "warn");
  assert.ok(f.message.includes(stray));
});

test("group/other-readable keystores → keystore-permissions warn", async () => {
  const d = deployment();
  const ks = path.join(d.keystores, "keystore-m_12381_3600_0_0_0-1.json");
  fs.chmodSync(ks, 0o644);
  expectFinding(await runDoctor(d.opts, IO), "keystore-permissions", "warn", `chmod 600 ${ks}`);
});

test("missing keystores dir or password file → errors", async () => {
  const d = deployment();
  const findings = await runDoctor({ ...d.opts, keystores: path.join(d.root, "nope"), passwordFile: path.join(d.root, "nope.txt") }, IO);
  expectFinding(findings, "keystores-dir", "error");
  expectFinding(findings, "passwords-missing", "error");
});

test("data dir 0755 → data-dir-permissions warn; 0777 → error; chmod 700 fix", async () => {
  const d = deployment();
  fs.chmodSync(d.dataDir, 0o755);
  expectFinding(await runDoctor(d.opts, IO), "data-dir-permissions", "warn", `chmod 700 ${d.dataDir}`);
  fs.chmodSync(d.dataDir, 0o777);
  expectFinding(await runDoctor(d.opts, IO), "data-dir-permissions", "error", `chmod 700 ${d.dataDir}`);
});

test("a data dir path with a space is shell-quoted in the fix", async () => {
  const d = deployment();
  const spaced = path.join(d.root, "my data");
  fs.renameSync(d.dataDir, spaced);
  fs.chmodSync(spaced, 0o750);
  expectFinding(await runDoctor({ ...d.opts, dataDir: spaced }, IO), "data-dir-permissions", "warn", `chmod 700 '${spaced}'`);
});

test("missing data dir → data-dir-exists warn (empty history at first start), DB ok", async () => {
  const d = deployment();
  const missing = path.join(d.root, "not-yet");
  const findings = await runDoctor({ ...d.opts, dataDir: missing }, IO);
  expectFinding(findings, "data-dir-exists", "warn", "vigil slashing import");
  expectFinding(findings, "slashing-db", "ok");
  expectFinding(findings, "data-dir-filesystem", "ok");
  assert.deepEqual(errors(findings), []);
});

test("slashing-protection files: missing → ok; -wal 0644 → warn; 0666 → error", async () => {
  const d = deployment();
  for (const f of [DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`]) fs.rmSync(path.join(d.dataDir, f));
  let findings = await runDoctor(d.opts, IO);
  expectFinding(findings, "slashing-db", "ok");
  assert.equal(findings.some((f) => f.id === "slashing-db-permissions"), false);
  const db = write(path.join(d.dataDir, DB_FILE), "x");
  const wal = write(path.join(d.dataDir, `${DB_FILE}-wal`), "x", 0o644);
  findings = await runDoctor(d.opts, IO);
  const warn = expectFinding(findings, "slashing-db-permissions", "warn", `chmod 600 ${wal}`);
  assert.ok(!warn.fix!.includes(`${db} `) && !warn.fix!.endsWith(db), "the 0600 database file is not in the fix");
  fs.chmodSync(db, 0o666);
  expectFinding(await runDoctor(d.opts, IO), "slashing-db-permissions", "error", `chmod 600 ${db}`);
});

test("audit log, approvals and accepted policy: none → no finding; 0600 → ok; one 0644 → warn; one 0666 → error", async () => {
  const d = deployment();
  assert.equal((await runDoctor(d.opts, IO)).some((f) => f.id === "state-file-permissions"), false);
  const files = await import("../src/config/files.js");
  const [log, head, approvals, policy] = [files.AUDIT_LOG_FILE, files.AUDIT_HEAD_FILE, files.APPROVALS_FILE, files.ACCEPTED_POLICY_FILE].map((f) =>
    write(path.join(d.dataDir, f), "x"),
  );
  expectFinding(await runDoctor(d.opts, IO), "state-file-permissions", "ok");
  fs.chmodSync(approvals, 0o644);
  const warn = expectFinding(await runDoctor(d.opts, IO), "state-file-permissions", "warn", `chmod 600 ${approvals}`);
  for (const f of [log, head, policy]) assert.ok(!warn.fix!.includes(f), `${f} (0600) is not in the fix`);
  fs.chmodSync(policy, 0o666);
  const error = expectFinding(await runDoctor(d.opts, IO), "state-file-permissions", "error", `chmod 600 ${policy} ${approvals}`);
  assert.match(error.message, /change the policy in force/);
});

test("api-token.txt 0644 → api-token-permissions error; absent → ok", async () => {
  const d = deployment();
  const token = path.join(d.dataDir, "api-token.txt");
  fs.chmodSync(token, 0o644);
  expectFinding(await runDoctor(d.opts, IO), "api-token-permissions", "error", `chmod 600 ${token}`);
  fs.rmSync(token);
  expectFinding(await runDoctor(d.opts, IO), "api-token-permissions", "ok");
  // --keymanager-token-file elsewhere is the one checked.
  const custom = write(path.join(d.root, "secrets", "token"), "t", 0o640);
  expectFinding(await runDoctor({ ...d.opts, keymanagerTokenFile: custom }, IO), "api-token-permissions", "error", `chmod 600 ${custom}`);
});

test("keys.vigil readable by others → key-store-permissions warn", async () => {
  const d = deployment();
  fs.chmodSync(path.join(d.dataDir, "keys.vigil"), 0o644);
  expectFinding(await runDoctor(d.opts, IO), "key-store-permissions", "warn", "chmod 600");
});

test("keys.vigil: an older 256 MiB or a weaker scrypt → key-store-kdf warn with `vigil keys passphrase`; unreadable → error", async () => {
  const d = deployment();
  const file = path.join(d.dataDir, "keys.vigil");
  const withKdf = (kdf: object): void => fs.writeFileSync(file, JSON.stringify({ format: "vigil-sealed-keys", version: 1, kdf: { function: "scrypt", salt: "00", ...kdf } }));
  expectFinding(await runDoctor(d.opts, IO), "key-store-kdf", "ok");
  withKdf({ n: 262144, r: 8, p: 1 });
  assert.match(expectFinding(await runDoctor(d.opts, IO), "key-store-kdf", "warn", "vigil keys passphrase").message, /holds 256 MiB/);
  withKdf({ n: 65536, r: 8, p: 8 });
  assert.match(expectFinding(await runDoctor(d.opts, IO), "key-store-kdf", "warn", "vigil keys passphrase").message, /less than EIP-2335/);
  withKdf({ n: 1024, r: 8, p: 16 });
  expectFinding(await runDoctor(d.opts, IO), "key-store-kdf", "warn", "vigil keys passphrase");
  fs.writeFileSync(file, "{");
  expectFinding(await runDoctor(d.opts, IO), "key-store-kdf", "error", "vigil keys import");
});

test("non-loopback host without TLS → listen-address error; with TLS or on loopback → ok", async () => {
  const d = deployment();
  for (const host of ["0.0.0.0", "::", "192.168.1.10", "signer.example.org"]) {
    const f = expectFinding(await runDoctor({ ...d.opts, host }, IO), "listen-address", "error", "127.0.0.1");
    assert.match(f.message, /no TLS or authentication/);
    assert.match(f.fix!, /TLS with client authentication/);
  }
  expectFinding(await runDoctor({ ...d.opts, host: "0.0.0.0", tls: true }, IO), "listen-address", "ok");
  // A policy naming clients: over TLS ok; without TLS a warning (tokens in clear); --tls-cert alone (no clients) is no authentication.
  const policy = write(path.join(d.root, "policy.yaml"), `version: 1\nclients:\n  lodestar: { token_sha256: "${"ab".repeat(32)}" }\nrules:\n  - { id: all, match: {}, action: allow }\n`);
  expectFinding(await runDoctor({ ...d.opts, host: "0.0.0.0", policy, tlsCert: "c.pem", tlsKey: "k.pem" }, IO), "listen-address", "ok");
  expectFinding(await runDoctor({ ...d.opts, host: "0.0.0.0", policy }, IO), "listen-address", "warn", "--tls-cert");
  expectFinding(await runDoctor({ ...d.opts, host: "0.0.0.0", tlsCert: "c.pem", tlsKey: "k.pem" }, IO), "listen-address", "error");
  for (const h of ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"]) assert.equal(isLoopback(h), true, h);
  for (const h of ["0.0.0.0", "::", "128.0.0.1", "10.0.0.1", "127.0.0.256", "localhost.example.com", "::2"]) assert.equal(isLoopback(h), false, h);
});

test("DEV keys with mainnet → dev-keys-public-network warn; on minimal → ok", async () => {
  const d = deployment();
  mkdir(path.join(d.dataDir, DEV_DIR));
  fs.rmSync(path.join(d.dataDir, "keys.vigil")); // DEV keys are made only without a sealed store and --unlock
  const devOpts: DoctorOptions = { ...d.opts, keystores: undefined, passwordFile: undefined, unlock: undefined };
  const f = expectFinding(await runDoctor(devOpts, IO), "dev-keys-public-network", "warn", "--keystores");
  assert.match(f.message, /DEV keys in use/);
  expectFinding(await runDoctor({ ...devOpts, network: "hoodi" }, IO), "dev-keys-public-network", "warn");
  expectFinding(await runDoctor({ ...devOpts, network: "minimal" }, IO), "dev-keys-public-network", "ok");
  // With --keystores the DEV dir left behind is not in use; with --unlock none are made.
  assert.equal((await runDoctor(d.opts, IO)).some((x) => x.id === "dev-keys-public-network"), false);
  assert.equal((await runDoctor({ ...devOpts, unlock: "prompt" }, IO)).some((x) => x.id === "dev-keys-public-network"), false);
  // A sealed key store without --unlock: start would refuse.
  write(path.join(d.dataDir, "keys.vigil"), "{}", 0o600);
  expectFinding(await runDoctor(devOpts, IO), "unlock-required", "error", "--unlock");
});

test("--unlock file: passphrase file 0644 → unlock-file-permissions error; 0600 → ok; bad spec → error", async () => {
  const d = deployment();
  const pass = write(path.join(d.root, "secrets", "passphrase"), "correct horse\n", 0o644);
  const base: DoctorOptions = { ...d.opts, keystores: undefined, passwordFile: undefined, network: "minimal" };
  expectFinding(await runDoctor({ ...base, unlock: `file:${pass}` }, IO), "unlock-file-permissions", "error", `chmod 600 ${pass}`);
  fs.chmodSync(pass, 0o600);
  const ok = await runDoctor({ ...base, unlock: `file:${pass}` }, IO);
  expectFinding(ok, "unlock-file-permissions", "ok");
  assert.deepEqual(errors(ok), []);
  expectFinding(await runDoctor({ ...base, unlock: `file:${path.join(d.root, "missing")}` }, IO), "unlock-file-permissions", "error");
  for (const u of ["prompt", "stdin", "env:VIGIL_PASSPHRASE"]) expectFinding(await runDoctor({ ...base, unlock: u }, IO), "unlock", "ok");
  expectFinding(await runDoctor({ ...base, unlock: "plaintext:hunter2" }, IO), "unlock", "error", "--unlock prompt");
});

/** tmpfs mount points on this machine where a directory can be created. */
function writableTmpfs(): string | null {
  let mounts;
  try {
    mounts = parseMounts(fs.readFileSync("/proc/mounts", "utf8"));
  } catch {
    return null;
  }
  for (const m of mounts) {
    if (m.fsType !== "tmpfs" || m.options.includes("ro")) continue;
    try {
      return fs.mkdtempSync(path.join(m.mountPoint, "vigil-doctor-"));
    } catch {
      // not writable for us
    }
  }
  return null;
}

test("a data dir on tmpfs (this machine's /proc/mounts) → data-dir-filesystem error", async (t) => {
  const dir = writableTmpfs();
  if (!dir) {
    t.skip("no writable tmpfs mount in /proc/mounts on this machine");
    return;
  }
  try {
    fs.chmodSync(dir, 0o700);
    const opts: DoctorOptions = { network: "minimal", dataDir: dir, host: "127.0.0.1", port: 9000, logLevel: "info" };
    const f = expectFinding(await runDoctor(opts, { exec: noTools }), "data-dir-filesystem", "error", "vigil slashing export");
    assert.match(f.message, /tmpfs/);
    assert.match(f.message, /lost at reboot/);
    // A data dir not created yet below that mount is judged by its nearest existing ancestor.
    const g = expectFinding(await runDoctor({ ...opts, dataDir: path.join(dir, "a", "b") }, { exec: noTools }), "data-dir-filesystem", "error");
    assert.match(g.message, /tmpfs/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("mount table: longest mount-point prefix, escaped names, ramfs/overlay/read-only", async () => {
  const mounts = parseMounts(
    [
      "/dev/vda / ext4 rw 0 0",
      "tmpfs /srv tmpfs rw 0 0",
      "/dev/vdb /srv/vigil ext4 rw 0 0",
      "/dev/vdc /srv/vigil\\040disk xfs rw 0 0",
      "tmpfs /srv/vigilant tmpfs rw 0 0",
    ].join("\n"),
  );
  assert.equal(mountFor("/srv/vigil/data", mounts)?.fsType, "ext4");
  assert.equal(mountFor("/srv/vigil", mounts)?.fsType, "ext4");
  assert.equal(mountFor("/srv/vigil disk/data", mounts)?.fsType, "xfs");
  assert.equal(mountFor("/srv/vigilant/data", mounts)?.fsType, "tmpfs", "prefix match is by path segment");
  assert.equal(mountFor("/srv/other", mounts)?.fsType, "tmpfs");
  assert.equal(mountFor("/home/x", mounts)?.fsType, "ext4");

  const d = deployment();
  const table = (line: string): string => {
    const file = path.join(d.root, `mounts-${++n}`);
    fs.writeFileSync(file, `/dev/vda / ext4 rw 0 0\n${line}\n`);
    return file;
  };
  const real = fs.realpathSync(d.dataDir);
  const at = (fsType: string, opts = "rw"): DoctorIo => ({ exec: noTools, mountsFile: table(`none ${real.replace(/ /g, "\\040")} ${fsType} ${opts} 0 0`) });
  expectFinding(await runDoctor(d.opts, at("ramfs")), "data-dir-filesystem", "error");
  expectFinding(await runDoctor(d.opts, at("tmpfs")), "data-dir-filesystem", "error");
  expectFinding(await runDoctor(d.opts, at("overlay")), "data-dir-filesystem", "warn", "-v vigil-data:");
  expectFinding(await runDoctor(d.opts, at("ext4", "ro,relatime")), "data-dir-filesystem", "error", "remount");
  expectFinding(await runDoctor(d.opts, at("xfs")), "data-dir-filesystem", "ok");
  expectFinding(await runDoctor(d.opts, { exec: noTools, mountsFile: path.join(d.root, "no-such-mounts") }), "data-dir-filesystem", "warn");
});

test("clock: chronyc/timedatectl/ntpq readings, not measurable, wrong or backwards clock", async () => {
  const d = deployment();
  const tools =
    (answers: Record<string, string>) =>
    async (cmd: string): Promise<string | null> =>
      answers[cmd] ?? null;
  const chrony = (leap: string, offset: string) =>
    `Reference ID    : C0A80101 (192.168.1.1)\nStratum         : 3\nSystem time     : ${offset} of NTP time\nLeap status     : ${leap}\n`;

  let f = expectFinding(await runDoctor(d.opts, { ...IO, exec: tools({ chronyc: chrony("Normal", "0.000123000 seconds fast") }) }), "clock-sync", "ok");
  assert.match(f.message, /chronyc/);
  f = expectFinding(await runDoctor(d.opts, { ...IO, exec: tools({ chronyc: chrony("Normal", "1.250000000 seconds slow") }) }), "clock-sync", "warn", "chronyc makestep");
  assert.match(f.message, /1\.250 s slow/);
  expectFinding(await runDoctor(d.opts, { ...IO, exec: tools({ chronyc: chrony("Not synchronised", "0.0 seconds fast") }) }), "clock-sync", "warn");
  expectFinding(await runDoctor(d.opts, { ...IO, exec: tools({ timedatectl: "yes\n" }) }), "clock-sync", "ok");
  expectFinding(await runDoctor(d.opts, { ...IO, exec: tools({ timedatectl: "no\n" }) }), "clock-sync", "warn", "timedatectl set-ntp true");
  const ntpq =
    "     remote           refid      st t when poll reach   delay   offset  jitter\n" +
    "==============================================================================\n" +
    "*192.168.1.1     .GPS.            1 u   33   64  377    0.412   -0.210   0.050\n";
  expectFinding(await runDoctor(d.opts, { ...IO, exec: tools({ ntpq }) }), "clock-sync", "ok");
  expectFinding(await runDoctor(d.opts, { ...IO, exec: tools({ ntpq: ntpq.replace("*", " ") }) }), "clock-sync", "warn");
  // Garbage from a tool is no reading.
  f = expectFinding(await runDoctor(d.opts, { ...IO, exec: tools({ timedatectl: "Failed to connect to bus" }) }), "clock-sync", "warn", "run chrony or systemd-timesyncd");
  assert.match(f.message, /clock sync not measurable/);
  // A tool that never answers is cut off.
  const started = Date.now();
  expectFinding(await runDoctor(d.opts, { ...IO, exec: () => new Promise<string | null>(() => {}) }), "clock-sync", "warn");
  assert.ok(Date.now() - started < 5000, "a hanging tool is bounded");

  expectFinding(await runDoctor(d.opts, { ...IO, now: () => Date.UTC(2001, 0, 1) }), "clock-sanity", "error");
  const future = Date.now() + 86_400_000;
  fs.utimesSync(path.join(d.dataDir, DB_FILE), future / 1000, future / 1000);
  expectFinding(await runDoctor(d.opts, IO), "clock-sanity", "warn");
});

test("clock tools of this machine answer within the bound", async () => {
  const d = deployment();
  const started = Date.now();
  const f = only(await runDoctor(d.opts, { mountsFile: ext4Mounts }), "clock-sync");
  assert.ok(Date.now() - started < 6000, "bounded");
  assert.notEqual(f.level, "error");
});

test("running as root → running-as-root warn; data dir owned by someone else is flagged", async () => {
  const d = deployment();
  const owner = fs.statSync(d.dataDir).uid;
  expectFinding(await runDoctor(d.opts, { ...IO, uid: 0 }), "running-as-root", "warn", "useradd");
  const other = owner === 0 ? 4242 : owner;
  expectFinding(await runDoctor(d.opts, { ...IO, uid: other }), "running-as-root", "ok");
  // Vigil as uid 4242 and a data dir owned by another non-root user (only constructible as root).
  if (owner === 0) expectFinding(await runDoctor(d.opts, { ...IO, uid: 4242 }), "data-dir-owner", "warn", "chown");
  expectFinding(await runDoctor(d.opts, { ...IO, uid: owner === 0 ? 0 : owner }), "data-dir-owner", "ok");
  if (owner === 0) {
    fs.chownSync(d.dataDir, 4343, 4343);
    expectFinding(await runDoctor(d.opts, { ...IO, uid: 4242 }), "data-dir-owner", "error", "chown -R 4242:");
  }
});

test("formatFindings shows every finding with its fix and a summary", async () => {
  const d = deployment();
  fs.chmodSync(d.dataDir, 0o755);
  fs.chmodSync(path.join(d.dataDir, "api-token.txt"), 0o644);
  const findings = await runDoctor({ ...d.opts, host: "0.0.0.0" }, IO);
  const text = formatFindings(findings);
  for (const f of findings) {
    assert.ok(text.includes(`${f.id}: ${f.message}`), f.id);
    if (f.fix) assert.ok(text.includes(`fix: ${f.fix}`), `fix of ${f.id}`);
  }
  assert.ok(text.includes(`chmod 700 ${d.dataDir}`));
  assert.ok(text.includes(`chmod 600 ${path.join(d.dataDir, "api-token.txt")}`));
  assert.match(text, /^ERROR listen-address: /m);
  assert.match(text, /^WARN  data-dir-permissions: /m);
  const errs = errors(findings).length;
  assert.match(text, new RegExp(`\\n${errs} errors?, \\d+ warnings?, \\d+ ok\\n$`));
});

/** Run doctorCommand in a child process (its stdout and exit code are the command's own). */
function runDoctorCommand(flags: Record<string, unknown>): { status: number | null; stdout: string; stderr: string } {
  const moduleUrl = new URL("../src/cli/doctor.js", import.meta.url).href;
  const script = `const { doctorCommand } = await import(${JSON.stringify(moduleUrl)}); await doctorCommand(${JSON.stringify(flags)});`;
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VIGIL_")));
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { env, encoding: "utf8", timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test("doctorCommand resolves flags, prints the report, exit status 1 on an error", () => {
  const d = deployment();
  const bad = runDoctorCommand({ dataDir: d.dataDir, keystores: d.keystores, passwordFile: d.passwordFile, host: "0.0.0.0", port: "9000", unlock: "prompt" });
  assert.equal(bad.status, 1, bad.stderr);
  assert.match(bad.stdout, /^ERROR listen-address: /m);
  assert.match(bad.stdout, /fix: bind 127\.0\.0\.1/);
  assert.match(bad.stdout, /^ok    unlock: /m, "--unlock is passed through");
  assert.match(bad.stdout, /\d+ errors?, \d+ warnings?, \d+ ok\n$/);

  const good = runDoctorCommand({ dataDir: d.dataDir, keystores: d.keystores, passwordFile: d.passwordFile, host: "0.0.0.0", tls: true, unlock: "prompt" });
  // Error-free, unless this machine keeps its temp dir on tmpfs.
  const onTmpfs = /^ERROR data-dir-filesystem/m.test(good.stdout);
  assert.equal(good.status, onTmpfs ? 1 : 0, good.stdout + good.stderr);
  assert.match(good.stdout, /^ok    listen-address: /m);

  const refused = runDoctorCommand({ dataDir: d.dataDir, port: "99999" });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /port must be 0-65535/);
});
