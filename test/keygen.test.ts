/**
 * Key generation and recovery: BIP-39 mnemonics, EIP-2333 derivation (official vectors),
 * EIP-2334 paths, withdrawal credentials (EIP-55), deposit data, and `keys new` / `keys recover`.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { mkdtemp, readFile, rm, writeFile, readdir, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { PublicKey, SecretKey, Signature, verify } from "@chainsafe/blst";
import { ssz } from "@lodestar/types";
import * as scure from "@scure/bip39";
import { wordlist } from "@scure/bip39/wordlists/english.js";
import { conformanceDir } from "./helpers/paths.js";
import { VigilError } from "../src/errors.js";
import { resolveNetwork } from "../src/config/networks.js";
import { decryptKeystore } from "../src/keys/keystore.js";
import { entropyToMnemonic, generateMnemonic, mnemonicToSeed, validateMnemonic } from "../src/keys/mnemonic.js";
import { deriveChildSK, deriveKeyAtPath, deriveMasterSK, parsePath, signingKeyPath, withdrawalKeyPath } from "../src/keys/derive.js";
import {
  buildDepositData,
  DEPOSIT_CLI_VERSION,
  parseExecutionAddress,
  toChecksumAddress,
  withdrawalCredentials,
  type DepositDataJson,
} from "../src/keys/deposit.js";
import { keysNew, keysRecover, type KeysNewOptions } from "../src/cli/keys-generate.js";

const keystoresDir = path.join(conformanceDir, "keystores");
const readJson = async (file: string): Promise<any> => JSON.parse(await readFile(file, "utf8"));
const hex = (b: Uint8Array): string => `0x${Buffer.from(b).toString("hex")}`;
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/^0x/i, ""), "hex"));
const GWEI = 1_000_000_000;

function isVigil(code: string, message?: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof VigilError, `expected VigilError, got ${String(e)}`);
    assert.equal(e.kind, "bad_request");
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  };
}

// ---------------------------------------------------------------- EIP-2333

describe("EIP-2333 test vectors", async () => {
  const v = await readJson(path.join(keystoresDir, "eip2333.json"));
  const be32 = (dec: string): string => `0x${BigInt(dec).toString(16).padStart(64, "0")}`;

  for (const c of [...v.cases, v.intermediate]) {
    test(`${c.name}: master and child keys`, () => {
      // the decimal and hex forms of the vectors agree
      assert.equal(be32(c.master_SK), c.master_SK_hex);
      assert.equal(be32(c.child_SK), c.child_SK_hex);
      const master = deriveMasterSK(bytes(c.seed)); // Test Case 2's seed is upper-case hex
      assert.equal(hex(master), c.master_SK_hex);
      assert.equal(hex(deriveChildSK(master, c.child_index)), c.child_SK_hex);
    });
  }

  test("Test Case 0 from its BIP-39 mnemonic and passphrase", async () => {
    const c = v.cases[0];
    const seed = await mnemonicToSeed(c.bip39_mnemonic, c.bip39_passphrase);
    assert.equal(hex(seed), c.seed);
    assert.equal(hex(seed), hex(scure.mnemonicToSeedSync(c.bip39_mnemonic, c.bip39_passphrase)));
    const master = deriveMasterSK(seed);
    assert.equal(hex(master), c.master_SK_hex);
    assert.equal(hex(deriveChildSK(master, c.child_index)), c.child_SK_hex);
    // whitespace and capitals in a recovery file do not change the seed
    assert.equal(hex(await mnemonicToSeed(`  ${c.bip39_mnemonic.toUpperCase().replace(/ /g, " \n\t")}\n`, c.bip39_passphrase)), c.seed);
  });

  test("deriveKeyAtPath walks the path one derive_child_SK at a time", () => {
    const seed = bytes(v.cases[0].seed);
    let sk = deriveMasterSK(seed);
    for (const i of [12381, 3600, 7, 0, 0]) sk = deriveChildSK(sk, i);
    assert.equal(hex(deriveKeyAtPath(seed, "m/12381/3600/7/0/0")), hex(sk));
  });

  test("bad seeds and indices are refused", () => {
    assert.throws(() => deriveMasterSK(new Uint8Array(31)), isVigil("INVALID_SEED"));
    const master = deriveMasterSK(bytes(v.cases[1].seed));
    for (const i of [-1, 2 ** 32, 1.5, NaN]) assert.throws(() => deriveChildSK(master, i), isVigil("INVALID_INDEX"));
    assert.throws(() => deriveChildSK(new Uint8Array(31), 0), isVigil("INVALID_SECRET"));
  });
});

// ---------------------------------------------------------------- EIP-2334

describe("EIP-2334 paths", async () => {
  const facts = await readJson(path.join(keystoresDir, "eip2334-paths.json"));

  test("signing and withdrawal paths of validator i (EIP-2334 examples)", () => {
    for (const e of facts.examples) {
      assert.equal(signingKeyPath(e.validator_index_i), e.signing);
      assert.equal(withdrawalKeyPath(e.validator_index_i), e.withdrawal);
    }
    assert.equal(signingKeyPath(41), "m/12381/3600/41/0/0");
    assert.equal(withdrawalKeyPath(41), "m/12381/3600/41/0");
    assert.throws(() => signingKeyPath(-1), isVigil("INVALID_INDEX"));
    assert.throws(() => withdrawalKeyPath(2 ** 32), isVigil("INVALID_INDEX"));
  });

  const good: [string, number[]][] = [
    ["m/12381/3600/0/0/0", [12381, 3600, 0, 0, 0]],
    ["m/12381/3600/0/0", [12381, 3600, 0, 0]],
    ["m/12381/3600/1/0/0", [12381, 3600, 1, 0, 0]],
    ["m/12381/3600/4294967295/0/0", [12381, 3600, 4294967295, 0, 0]],
    ["m/12381/3600/3/2/1/0", [12381, 3600, 3, 2, 1, 0]],
  ];
  for (const [p, want] of good) test(`parsePath(${p})`, () => assert.deepEqual(parsePath(p), want));

  const bad: [string, RegExp][] = [
    ["", /must start with "m\/"/],
    ["12381/3600/0/0/0", /must start with "m\/"/],
    ["M/12381/3600/0/0/0", /must start with "m\/"/],
    [" m/12381/3600/0/0/0", /must start with "m\/"/],
    ["m", /at least 4 levels/],
    ["m/12381/3600/0", /at least 4 levels/],
    ["m/12381/60/0/0", /coin type must be 3600/],
    ["m/44/3600/0/0", /purpose must be 12381/],
    ["m/12381/3600/0'/0/0", /no hardened derivation/],
    ["m/12381/3600/0h/0/0", /no hardened derivation/],
    ["m/12381/3600//0/0", /is empty/],
    ["m/12381/3600/0/0/", /is empty/],
    ["m/12381/3600/01/0/0", /without leading zeros/],
    ["m/12381/3600/-1/0/0", /not a decimal index/],
    ["m/12381/3600/0x1/0/0", /not a decimal index/],
    ["m/12381/3600/1e3/0/0", /not a decimal index/],
    ["m/12381/3600/ 1/0/0", /not a decimal index/],
    ["m/12381/3600/4294967296/0/0", /exceeds 2\^32-1/],
  ];
  for (const [p, why] of bad) {
    test(`parsePath(${JSON.stringify(p)}) is refused`, () => assert.throws(() => parsePath(p), isVigil("INVALID_PATH", why)));
  }
});

// ---------------------------------------------------------------- BIP-39

describe("BIP-39 mnemonics", () => {
  test("a generated mnemonic has 24 English words and validates (here and in @scure/bip39)", () => {
    const m = generateMnemonic();
    const words = m.split(" ");
    assert.equal(words.length, 24);
    for (const w of words) assert.ok(wordlist.includes(w), w);
    validateMnemonic(m);
    assert.ok(scure.validateMnemonic(m, wordlist));
    assert.notEqual(generateMnemonic(), m);
  });

  test("entropy encodes as @scure/bip39 does (all lengths)", () => {
    for (const n of [16, 20, 24, 28, 32]) {
      for (const e of [new Uint8Array(n), new Uint8Array(n).fill(0xff), new Uint8Array(Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + 11) & 0xff)))]) {
        const m = entropyToMnemonic(e);
        assert.equal(m, scure.entropyToMnemonic(e, wordlist));
        validateMnemonic(m);
      }
    }
  });

  test("a changed word fails the checksum", () => {
    const words = generateMnemonic().split(" ");
    // The last of 24 words holds 3 entropy bits and the 8 checksum bits: flipping its lowest bit
    // changes only the checksum, so the result can never be valid.
    const last = wordlist.indexOf(words[23]);
    const changed = [...words.slice(0, 23), wordlist[last ^ 1]].join(" ");
    assert.equal(scure.validateMnemonic(changed, wordlist), false);
    assert.throws(() => validateMnemonic(changed), isVigil("INVALID_MNEMONIC", /bad checksum/));
    // and any other changed word: we agree with @scure/bip39 either way
    for (const i of [0, 5, 17]) {
      const other = [...words];
      other[i] = wordlist[(wordlist.indexOf(words[i]) + 1 + i) % 2048];
      const ok = scure.validateMnemonic(other.join(" "), wordlist);
      if (ok) validateMnemonic(other.join(" "));
      else assert.throws(() => validateMnemonic(other.join(" ")), isVigil("INVALID_MNEMONIC", /bad checksum/));
    }
    assert.throws(() => validateMnemonic(Array(12).fill("abandon").join(" ")), isVigil("INVALID_MNEMONIC", /bad checksum/));
  });

  test("unknown words and wrong lengths are named", () => {
    const words = generateMnemonic().split(" ");
    const typo = [...words];
    typo[3] = "notaword";
    assert.throws(() => validateMnemonic(typo.join(" ")), isVigil("INVALID_MNEMONIC", /wordlist: word 4 "notaword"/));
    assert.throws(() => validateMnemonic(words.slice(0, 23).join(" ")), isVigil("INVALID_MNEMONIC", /got 23/));
    assert.throws(() => validateMnemonic(""), isVigil("INVALID_MNEMONIC", /got 0/));
    validateMnemonic("abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about");
  });
});

// ---------------------------------------------------------------- deposit data

/** compute_domain(DOMAIN_DEPOSIT, fork_version, ZERO_ROOT) and compute_signing_root, written out from the spec. */
function depositSigningRoot(messageRoot: Uint8Array, forkVersion: Uint8Array): Uint8Array {
  const forkDataRoot = ssz.phase0.ForkData.hashTreeRoot({ currentVersion: forkVersion, genesisValidatorsRoot: new Uint8Array(32) });
  const domain = new Uint8Array(32);
  domain.set([0x03, 0x00, 0x00, 0x00]); // DOMAIN_DEPOSIT
  domain.set(forkDataRoot.subarray(0, 28), 4);
  return ssz.phase0.SigningData.hashTreeRoot({ objectRoot: messageRoot, domain });
}

const DEPOSIT_FIELDS = [
  "pubkey",
  "withdrawal_credentials",
  "amount",
  "signature",
  "deposit_message_root",
  "deposit_data_root",
  "fork_version",
  "network_name",
  "deposit_cli_version",
];

/** Checks one deposit_data entry from scratch: format, roots, signature. */
function checkDeposit(d: DepositDataJson, network: string, expect: { pubkey?: string; prefix: number; address: string; amount: number }): void {
  assert.deepEqual(Object.keys(d), DEPOSIT_FIELDS);
  for (const k of DEPOSIT_FIELDS.filter((k) => k !== "amount" && k !== "network_name" && k !== "deposit_cli_version")) {
    assert.match((d as any)[k], /^[0-9a-f]+$/, `${k} is lower-case hex without 0x`);
  }
  assert.equal(typeof d.amount, "number");
  assert.equal(d.amount, expect.amount);
  assert.equal(d.pubkey.length, 96);
  assert.equal(d.signature.length, 192);
  if (expect.pubkey) assert.equal(`0x${d.pubkey}`, expect.pubkey);
  const forkVersion = resolveNetwork(network).genesisForkVersion;
  assert.equal(d.fork_version, Buffer.from(forkVersion).toString("hex"));
  assert.equal(d.network_name, network);
  assert.equal(d.deposit_cli_version, DEPOSIT_CLI_VERSION);
  // withdrawal credentials: prefix ‖ 11 zero bytes ‖ address
  assert.equal(d.withdrawal_credentials, expect.prefix.toString(16).padStart(2, "0") + "00".repeat(11) + expect.address.slice(2).toLowerCase());

  const pubkey = bytes(d.pubkey);
  const wc = bytes(d.withdrawal_credentials);
  const signature = bytes(d.signature);
  const messageRoot = ssz.phase0.DepositMessage.hashTreeRoot({ pubkey, withdrawalCredentials: wc, amount: d.amount });
  assert.equal(d.deposit_message_root, Buffer.from(messageRoot).toString("hex"));
  const dataRoot = ssz.phase0.DepositData.hashTreeRoot({ pubkey, withdrawalCredentials: wc, amount: d.amount, signature });
  assert.equal(d.deposit_data_root, Buffer.from(dataRoot).toString("hex"));
  const pk = PublicKey.fromBytes(pubkey, true);
  const sig = Signature.fromBytes(signature, true);
  assert.ok(verify(depositSigningRoot(messageRoot, forkVersion), pk, sig), "deposit signature verifies");
  // ... and only for this network's genesis fork version
  const other = network === "mainnet" ? resolveNetwork("hoodi") : resolveNetwork("mainnet");
  assert.equal(verify(depositSigningRoot(messageRoot, other.genesisForkVersion), pk, sig), false);
}

describe("withdrawal credentials and deposit data", () => {
  // EIP-55's own examples
  const EIP55 = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
  ];

  test("EIP-55 checksums", () => {
    for (const a of EIP55) {
      assert.equal(toChecksumAddress(a.slice(2).toLowerCase()), a);
      assert.equal(hex(parseExecutionAddress(a)), a.toLowerCase());
      assert.equal(hex(parseExecutionAddress(a.toLowerCase())), a.toLowerCase()); // single case: no checksum
      assert.equal(hex(parseExecutionAddress("0x" + a.slice(2).toUpperCase())), a.toLowerCase());
    }
  });

  test("0x01 and 0x02 credentials", () => {
    const a = EIP55[0];
    assert.equal(hex(withdrawalCredentials({ address: a, compounding: false })), "0x01" + "00".repeat(11) + a.slice(2).toLowerCase());
    assert.equal(hex(withdrawalCredentials({ address: a, compounding: true })), "0x02" + "00".repeat(11) + a.slice(2).toLowerCase());
  });

  test("bad withdrawal addresses are refused", () => {
    const a = EIP55[0];
    const flipped = a.slice(0, 3) + (a[3] === a[3].toUpperCase() ? a[3].toLowerCase() : a[3].toUpperCase()) + a.slice(4); // one letter's case
    const cases: [string, RegExp][] = [
      [a.slice(0, -2), /must be 20 bytes/],
      [a + "00", /must be 20 bytes/],
      [a.slice(2), /must start with "0x"/],
      ["0x" + "g".repeat(40), /not hex/],
      [flipped, /bad EIP-55 checksum \(did you mean 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\?\)/],
    ];
    for (const [addr, why] of cases) {
      assert.throws(() => withdrawalCredentials({ address: addr, compounding: false }), isVigil("INVALID_WITHDRAWAL_ADDRESS", why), addr);
    }
  });

  test("buildDepositData on mainnet (0x01, 32 ETH) and hoodi (0x02, 2048 ETH)", () => {
    const secret = deriveKeyAtPath(bytes("0x3141592653589793238462643383279502884197169399375105820974944592"), signingKeyPath(0));
    const pubkey = hex(SecretKey.fromBytes(secret).toPublicKey().toBytes());
    const address = EIP55[1];
    const d1 = buildDepositData(secret, {
      withdrawalCredentials: withdrawalCredentials({ address, compounding: false }),
      amountGwei: 32 * GWEI,
      network: "mainnet",
    });
    assert.equal(d1.fork_version, "00000000");
    checkDeposit(d1, "mainnet", { pubkey, prefix: 0x01, address, amount: 32 * GWEI });
    const d2 = buildDepositData(secret, {
      withdrawalCredentials: withdrawalCredentials({ address, compounding: true }),
      amountGwei: 2048 * GWEI,
      network: resolveNetwork("hoodi"),
    });
    checkDeposit(d2, "hoodi", { pubkey, prefix: 0x02, address, amount: 2048 * GWEI });
    for (const amountGwei of [GWEI - 1, 2048 * GWEI + 1, 32.5 * GWEI + 0.5]) {
      assert.throws(
        () => buildDepositData(secret, { withdrawalCredentials: new Uint8Array(32), amountGwei, network: "mainnet" }),
        isVigil("INVALID_AMOUNT"),
      );
    }
  });
});

// ---------------------------------------------------------------- keys new / recover

describe("keys new and keys recover", () => {
  let tmp: string;
  let passwordFile: string;
  const PASSWORD = "correct horse battery";
  const ADDRESS = "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359";

  before(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), "vigil-keygen-"));
    passwordFile = path.join(tmp, "password.txt");
    await writeFile(passwordFile, PASSWORD + "\n"); // one trailing newline is not part of the password
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  function capture(): { write(s: string): boolean; text: string } {
    return {
      text: "",
      write(s: string) {
        this.text += s;
        return true;
      },
    };
  }

  const base = (out: string): KeysNewOptions => ({
    count: 2,
    withdrawalAddress: ADDRESS,
    network: "hoodi",
    out: path.join(tmp, out),
    passwordFile,
    kdf: "pbkdf2",
  });

  test("new writes keystores and deposit data; recover re-derives exactly the same keys", async () => {
    const stdout = capture();
    const made = await keysNew({ ...base("new"), stdout });

    // the mnemonic: printed once, with a warning, and on disk nowhere
    const lines = stdout.text.split("\n").filter((l) => l.trim().split(/\s+/).length === 24);
    assert.equal(lines.length, 1, stdout.text);
    const mnemonic = lines[0].trim();
    validateMnemonic(mnemonic);
    assert.match(stdout.text, /ONLY backup/);
    assert.match(stdout.text, /will NOT show them again/);
    for (const f of await readdir(path.join(tmp, "new"))) {
      const text = await readFile(path.join(tmp, "new", f), "utf8");
      assert.ok(!text.includes(mnemonic.split(" ").slice(0, 3).join(" ")), `${f} holds no mnemonic`);
    }

    // files and modes
    assert.equal((await stat(path.join(tmp, "new"))).mode & 0o777, 0o700);
    assert.equal(made.files.length, 2);
    assert.deepEqual(made.paths, ["m/12381/3600/0/0/0", "m/12381/3600/1/0/0"]);
    for (const [i, f] of made.files.entries()) {
      assert.match(path.basename(f), new RegExp(`^keystore-m_12381_3600_${i}_0_0-\\d{10}\\.json$`));
      assert.equal((await stat(f)).mode & 0o777, 0o600);
      const ks = await readJson(f);
      assert.equal(ks.path, `m/12381/3600/${i}/0/0`);
      assert.equal(ks.crypto.kdf.function, "pbkdf2");
      assert.equal(`0x${ks.pubkey}`, made.pubkeys[i]);
      const secret = await decryptKeystore(ks, PASSWORD);
      assert.equal(hex(secret), hex(deriveKeyAtPath(await mnemonicToSeed(mnemonic), `m/12381/3600/${i}/0/0`)));
    }
    assert.match(path.basename(made.depositDataFile), /^deposit_data-\d{10}\.json$/);
    const deposits: DepositDataJson[] = await readJson(made.depositDataFile);
    assert.equal(deposits.length, 2);
    deposits.forEach((d, i) => checkDeposit(d, "hoodi", { pubkey: made.pubkeys[i], prefix: 0x01, address: ADDRESS, amount: 32 * GWEI }));

    // recover the same two keys, then key 1 alone
    const mnemonicFile = path.join(tmp, "mnemonic.txt");
    await writeFile(mnemonicFile, mnemonic.replace(/ /g, "\n") + "\n");
    const quiet = capture();
    const again = await keysRecover({ ...base("recovered"), mnemonicFile, fromIndex: 0, stdout: quiet });
    assert.deepEqual(again.pubkeys, made.pubkeys);
    assert.equal(quiet.text, "", "recover prints nothing");
    const recoveredDeposits: DepositDataJson[] = await readJson(again.depositDataFile);
    assert.deepEqual(recoveredDeposits, deposits); // BLS signatures are deterministic
    const one = await keysRecover({ ...base("one"), count: 1, mnemonicFile, fromIndex: 1 });
    assert.deepEqual(one.pubkeys, [made.pubkeys[1]]);
    assert.match(path.basename(one.files[0]), /^keystore-m_12381_3600_1_0_0-\d{10}\.json$/);
  });

  test("compounding: 0x02 credentials and amounts from 32 to 2048 ETH", async () => {
    const made = await keysNew({ ...base("compounding"), count: 1, compounding: true, amountGwei: 64 * GWEI, network: "mainnet", stdout: capture() });
    const [d] = await readJson(made.depositDataFile);
    checkDeposit(d, "mainnet", { pubkey: made.pubkeys[0], prefix: 0x02, address: ADDRESS, amount: 64 * GWEI });
    for (const amountGwei of [31 * GWEI, 2049 * GWEI]) {
      await assert.rejects(keysNew({ ...base("x"), compounding: true, amountGwei, stdout: capture() }), isVigil("INVALID_AMOUNT"));
    }
    await assert.rejects(keysNew({ ...base("x"), amountGwei: 64 * GWEI, stdout: capture() }), isVigil("INVALID_AMOUNT", /compounding/));
  });

  test("refusals come before any mnemonic is shown or file written", async () => {
    const stdout = capture();
    const bad: [Partial<KeysNewOptions>, string][] = [
      [{ withdrawalAddress: "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d35" }, "INVALID_WITHDRAWAL_ADDRESS"],
      [{ withdrawalAddress: "0xfb6916095ca1df60bB79Ce92cE3Ea74c37c5d359" }, "INVALID_WITHDRAWAL_ADDRESS"],
      [{ network: "nonesuch" }, "UNKNOWN_NETWORK"],
      [{ count: 0 }, "INVALID_OPTIONS"],
      [{ passwordFile: undefined, passwordPrompt: async () => "short12" }, "WEAK_PASSWORD"],
      [{ passwordFile: undefined }, "NO_PASSWORD_SOURCE"],
    ];
    for (const [o, code] of bad) {
      await assert.rejects(keysNew({ ...base("refused"), ...o, stdout }), isVigil(code));
    }
    assert.equal(stdout.text, "");
    assert.equal(fs.existsSync(path.join(tmp, "refused")), false);

    const mnemonicFile = path.join(tmp, "bad-mnemonic.txt");
    await writeFile(mnemonicFile, Array(24).fill("abandon").join(" "));
    let prompted = false;
    await assert.rejects(
      keysRecover({
        ...base("refused"),
        passwordFile: undefined,
        passwordPrompt: async () => {
          prompted = true;
          return PASSWORD;
        },
        mnemonicFile,
        fromIndex: 0,
      }),
      isVigil("INVALID_MNEMONIC", /bad checksum/),
    );
    assert.equal(prompted, false, "a bad mnemonic is refused before the password prompt");
    assert.equal(fs.existsSync(path.join(tmp, "refused")), false);
  });

  test("a password from the prompt works too", async () => {
    const made = await keysNew({ ...base("prompted"), count: 1, passwordFile: undefined, passwordPrompt: async () => "another password", stdout: capture() });
    const ks = await readJson(made.files[0]);
    assert.equal(hex(SecretKey.fromBytes(await decryptKeystore(ks, "another password")).toPublicKey().toBytes()), made.pubkeys[0]);
  });
});
