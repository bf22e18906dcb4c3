import { test, describe, mock } from "node:test";
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { mkdtemp, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { conformanceDir } from "./helpers/paths.js";
import { VigilError } from "../src/errors.js";
import {
  decryptKeystore,
  encryptKeystore,
  keystorePubkey,
  normalizePassword,
  parseKeystore,
  pubkeyFromSecret,
} from "../src/keys/keystore.js";
import { loadKeystores } from "../src/keys/load.js";

const keystoresDir = path.join(conformanceDir, "keystores");
const readJson = async (file: string): Promise<any> => JSON.parse(await readFile(file, "utf8"));
const hex = (b: Uint8Array): string => `0x${Buffer.from(b).toString("hex")}`;

/** Asserts that `fn` throws/rejects with a VigilError of the given kind (and code, if given). */
function isVigil(kind: string, code?: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof VigilError, `expected VigilError, got ${String(e)}`);
    assert.equal(e.kind, kind);
    if (code !== undefined) assert.equal(e.code, code, e.message);
    return true;
  };
}

/** A random valid BLS secret key. */
function randomSecret(): Uint8Array {
  for (;;) {
    const s = new Uint8Array(crypto.randomBytes(32));
    try {
      pubkeyFromSecret(s);
      return s;
    } catch {
      // above the group order: try again
    }
  }
}

describe("EIP-2335 test vectors", () => {
  for (const name of ["keystore-scrypt.json", "keystore-pbkdf2.json"]) {
    test(name, async () => {
      const v = await readJson(path.join(keystoresDir, name));
      assert.equal(hex(normalizePassword(v.password)), v.password_normalized_utf8_hex);
      const ks = parseKeystore(v.keystore);
      assert.equal(keystorePubkey(v.keystore), v.pubkey);
      const [secret, wrong] = await Promise.allSettled([
        decryptKeystore(ks, v.password),
        decryptKeystore(v.keystore, `${v.password}x`),
      ]);
      assert.equal(secret.status, "fulfilled");
      assert.equal(hex((secret as PromiseFulfilledResult<Uint8Array>).value), v.secret);
      assert.equal(wrong.status, "rejected");
      isVigil("bad_request", "WRONG_PASSWORD")((wrong as PromiseRejectedResult).reason);
    });
  }
});

describe("web3signer keystore cases", async () => {
  const dir = path.join(keystoresDir, "web3signer-keystore-cases");
  const cases = await readJson(path.join(dir, "cases.json"));
  // cases.json names the EIP password; take it from the EIP vector itself and check they agree.
  const eip = await readJson(path.join(keystoresDir, "keystore-scrypt.json"));
  test("cases.json password is the EIP-2335 password", () => assert.equal(cases.password, eip.password));

  for (const c of cases.cases as { file: string; expect: "decrypt" | "reject"; secret?: string; why: string }[]) {
    test(`${c.file}: ${c.expect} (${c.why})`, async () => {
      const json = await readJson(path.join(dir, c.file));
      if (c.expect === "decrypt") {
        assert.equal(hex(await decryptKeystore(json, eip.password)), c.secret);
      } else {
        assert.equal(c.expect, "reject");
        // Rejected on structure/parameters: synchronously by parseKeystore, so before any KDF work.
        assert.throws(() => parseKeystore(json), isVigil("bad_request", "INVALID_KEYSTORE"));
        await assert.rejects(decryptKeystore(json, eip.password), isVigil("bad_request"));
      }
    });
  }
});

describe("normalizePassword", () => {
  test("strips C0, DEL and C1 control codes after NFKD", () => {
    assert.equal(normalizePassword("a\u0000b\u001fc\u007fd\u0080e\u009ff\u00a0").toString("utf8"), "abcdef\u0020");
    assert.equal(normalizePassword("pass\nword\r\t").toString("utf8"), "password");
    assert.deepEqual(normalizePassword("\u00e9"), Buffer.from("e\u0301", "utf8")); // é decomposes
  });
});

describe("encrypt / decrypt", () => {
  test("scrypt round trip; defaults are EIP-2335's", async () => {
    const secret = randomSecret();
    const ks = await encryptKeystore(secret, "𝔱𝔢𝔰𝔱 pass\u0007", { scryptN: 1024, path: "m/12381/3600/0/0/0", description: "d" });
    const p = ks.crypto.kdf.params as { dklen: number; n: number; r: number; p: number; salt: string };
    assert.deepEqual([ks.crypto.kdf.function, p.dklen, p.n, p.r, p.p], ["scrypt", 32, 1024, 8, 1]);
    assert.equal(p.salt.length, 64);
    assert.equal(ks.crypto.cipher.params.iv.length, 32);
    assert.equal(ks.version, 4);
    assert.equal(ks.path, "m/12381/3600/0/0/0");
    assert.equal(ks.description, "d");
    assert.match(ks.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(ks.pubkey, pubkeyFromSecret(secret).slice(2)); // no 0x, as in the EIP
    // normalisation applies on both sides: an equivalent password decrypts
    const json = JSON.parse(JSON.stringify(ks));
    assert.deepEqual(await decryptKeystore(json, "test pass"), secret);
    await assert.rejects(decryptKeystore(json, "test pass!"), isVigil("bad_request", "WRONG_PASSWORD"));

    // Default costs without running the (slow) default KDF: stub the async scrypt and inspect its call.
    const scrypt = mock.method(crypto, "scrypt", (...args: unknown[]) => {
      (args[args.length - 1] as (e: Error | null, k: Buffer) => void)(null, Buffer.alloc(32, 1));
    });
    try {
      const def = await encryptKeystore(secret, "pw");
      assert.deepEqual({ ...def.crypto.kdf.params, salt: "" }, { dklen: 32, n: 262144, r: 8, p: 1, salt: "" });
      assert.equal(scrypt.mock.callCount(), 1);
      const [, , keylen, options] = scrypt.mock.calls[0].arguments as [unknown, unknown, number, crypto.ScryptOptions];
      assert.equal(keylen, 32);
      assert.deepEqual([options.N, options.r, options.p], [262144, 8, 1]);
      assert.ok(options.maxmem! >= 128 * 262144 * 8);
    } finally {
      scrypt.mock.restore();
    }
  });

  test("pbkdf2 round trip; defaults are EIP-2335's", async () => {
    const secret = randomSecret();
    const ks = await encryptKeystore(secret, "pw", { kdf: "pbkdf2" });
    assert.deepEqual({ ...ks.crypto.kdf.params, salt: "" }, { dklen: 32, c: 262144, prf: "hmac-sha256", salt: "" });
    assert.equal(ks.path, "");
    assert.equal("description" in ks, false);
    assert.deepEqual(await decryptKeystore(ks, "pw"), secret);
  });

  test("tampered cipher message fails the checksum", async () => {
    const ks = await encryptKeystore(randomSecret(), "pw", { scryptN: 1024 });
    const m = Buffer.from(ks.crypto.cipher.message, "hex");
    m[0] ^= 1;
    ks.crypto.cipher.message = m.toString("hex");
    await assert.rejects(decryptKeystore(ks, "pw"), isVigil("bad_request", "WRONG_PASSWORD"));
  });

  test("pubkey mismatch is refused; pubkey with 0x or absent is accepted", async () => {
    const secret = randomSecret();
    const ks: any = await encryptKeystore(secret, "pw", { scryptN: 1024 });
    const pk = ks.pubkey;
    ks.pubkey = pubkeyFromSecret(randomSecret()).slice(2);
    await assert.rejects(decryptKeystore(ks, "pw"), isVigil("bad_request", "PUBKEY_MISMATCH"));
    ks.pubkey = `0x${pk.toUpperCase()}`;
    assert.equal(keystorePubkey(ks), `0x${pk}`);
    assert.deepEqual(await decryptKeystore(ks, "pw"), secret);
    delete ks.pubkey;
    assert.equal(keystorePubkey(ks), null);
    assert.deepEqual(await decryptKeystore(ks, "pw"), secret);
  });

  test("hostile or malformed parameters are refused before any KDF runs", async () => {
    const base: any = await encryptKeystore(randomSecret(), "pw", { scryptN: 1024 });
    const pb: any = await encryptKeystore(randomSecret(), "pw", { kdf: "pbkdf2" });
    const variants: [string, any, (ks: any) => void][] = [
      ["n = 2^30", base, (ks) => (ks.crypto.kdf.params.n = 2 ** 30)],
      ["n not a power of two", base, (ks) => (ks.crypto.kdf.params.n = 1000)],
      ["n as string", base, (ks) => (ks.crypto.kdf.params.n = "1024")],
      ["r*p huge", base, (ks) => ((ks.crypto.kdf.params.r = 8), (ks.crypto.kdf.params.p = 1e6))],
      ["pbkdf2 c = 2^30", pb, (ks) => (ks.crypto.kdf.params.c = 2 ** 30)],
      ["dklen 64", base, (ks) => (ks.crypto.kdf.params.dklen = 64)],
      ["iv 15 bytes", base, (ks) => (ks.crypto.cipher.params.iv = "00".repeat(15))],
      ["salt not hex", base, (ks) => (ks.crypto.kdf.params.salt = "zz")],
      ["pubkey 47 bytes", base, (ks) => (ks.pubkey = "00".repeat(47))],
      ["uuid not a string", base, (ks) => (ks.uuid = 5)],
      ["not an object", base, () => undefined],
    ];
    const scrypt = mock.method(crypto, "scrypt");
    const pbkdf2 = mock.method(crypto, "pbkdf2");
    try {
      for (const [name, from, mutate] of variants) {
        const ks = name === "not an object" ? [from] : structuredClone(from);
        mutate(ks);
        assert.throws(() => parseKeystore(ks), isVigil("bad_request", "INVALID_KEYSTORE"), name);
        await assert.rejects(decryptKeystore(ks, "pw"), isVigil("bad_request", "INVALID_KEYSTORE"), name);
      }
      assert.equal(scrypt.mock.callCount(), 0);
      assert.equal(pbkdf2.mock.callCount(), 0);
      await assert.rejects(encryptKeystore(randomSecret(), "pw", { scryptN: 2 ** 30 }), isVigil("bad_request"));
      assert.equal(scrypt.mock.callCount(), 0);
    } finally {
      scrypt.mock.restore();
      pbkdf2.mock.restore();
    }
  });

  test("invalid secrets are refused by encryptKeystore", async () => {
    await assert.rejects(encryptKeystore(new Uint8Array(31).fill(1), "pw"), isVigil("bad_request", "INVALID_SECRET"));
    await assert.rejects(encryptKeystore(new Uint8Array(32), "pw"), isVigil("bad_request", "INVALID_SECRET"));
  });
});

describe("loadKeystores", () => {
  test("loads a directory, reporting bad files without aborting", async () => {
    const tmp = await mkdtemp(path.join(os.tmpdir(), "vigil-keystores-"));
    try {
      const dir = path.join(tmp, "keys");
      const pwDir = path.join(tmp, "passwords");
      await mkdir(dir);
      await mkdir(pwDir);
      const [s1, s2, s3] = [randomSecret(), randomSecret(), randomSecret()];
      const write = async (name: string, body: unknown, password?: string, pwText = `${password}\n`) => {
        await writeFile(path.join(dir, `${name}.json`), typeof body === "string" ? body : JSON.stringify(body));
        if (password !== undefined) await writeFile(path.join(pwDir, `${name}.txt`), pwText);
      };
      const k1 = await encryptKeystore(s1, "one", { scryptN: 1024 });
      // b: password file with CRLF; only the line ending is stripped, the trailing space is kept
      await write("b", await encryptKeystore(s2, "two ", { kdf: "pbkdf2" }), "two ", "two \r\n");
      await write("a", k1, "one");
      await write("c", await encryptKeystore(s3, "three", { scryptN: 1024 })); // no password file
      await write("d", "{ not json", "x");
      await write("e", { ...k1, uuid: crypto.randomUUID() }, "one"); // same key as a.json
      await writeFile(path.join(dir, "notes.txt"), "ignored");
      await mkdir(path.join(dir, "sub.json")); // a directory: ignored

      const { keys, errors } = await loadKeystores({ dir, passwordsDir: pwDir, concurrency: 2 });
      assert.deepEqual(
        keys.map((k) => [k.source, k.pubkey, hex(k.secret)]),
        [
          [path.join(dir, "a.json"), pubkeyFromSecret(s1), hex(s1)],
          [path.join(dir, "b.json"), pubkeyFromSecret(s2), hex(s2)],
        ],
      );
      assert.deepEqual(
        errors.map((e) => [path.basename(e.file), e.code]),
        [
          ["c.json", "MISSING_PASSWORD"],
          ["d.json", "INVALID_KEYSTORE"],
          ["e.json", "DUPLICATE_PUBKEY"],
        ],
      );
      for (const e of errors) assert.ok(e.message.length > 0);

      // One password for all: only a.json and e.json use "one"
      await writeFile(path.join(tmp, "pw.txt"), "one\n");
      const shared = await loadKeystores({ dir, passwordFile: path.join(tmp, "pw.txt") });
      assert.deepEqual(shared.keys.map((k) => path.basename(k.source)), ["a.json"]);
      assert.deepEqual(
        shared.errors.map((e) => [path.basename(e.file), e.code]),
        [
          ["b.json", "WRONG_PASSWORD"],
          ["c.json", "WRONG_PASSWORD"],
          ["d.json", "INVALID_KEYSTORE"],
          ["e.json", "DUPLICATE_PUBKEY"],
        ],
      );

      await assert.rejects(loadKeystores({ dir }), isVigil("bad_request", "NO_PASSWORD_SOURCE"));
      await assert.rejects(
        loadKeystores({ dir, passwordsDir: pwDir, passwordFile: path.join(tmp, "pw.txt") }),
        isVigil("bad_request", "NO_PASSWORD_SOURCE"),
      );
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
