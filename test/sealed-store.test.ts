/**
 * The sealed key store (one passphrase, one scrypt, AES-256-GCM per key), the passphrase
 * sources of `--unlock`, and `vigil keys import|export|list`.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { PassThrough, Writable } from "node:stream";
import { after, describe, test } from "node:test";
import { keysExport, keysImport, keysList, keysPassphrase, KEY_STORE_FILE } from "../src/cli/keys-store.js";
import { VigilError } from "../src/errors.js";
import { encryptKeystore, pubkeyFromSecret } from "../src/keys/keystore.js";
import { loadKeystores } from "../src/keys/load.js";
import { DEFAULT_SCRYPT_N, SealedKeyStore, sealedStoreInternals as internals } from "../src/keys/sealed-store.js";
import { INSECURE_FILE_ENV, readPassphrase } from "../src/keys/unlock.js";
import { scryptAreaTime, scryptMemory } from "../src/keys/scrypt-cost.js";

const N = 1024; // fast scrypt for tests
const PASS = "correct horse battery staple";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-sealed-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let counter = 0;
/** A fresh path under the temp dir (not created). */
const fresh = (name: string): string => path.join(tmp, `${++counter}-${name}`);

function isVigil(kind: string, code: string) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof VigilError, `expected VigilError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.kind, kind, e.message);
    return true;
  };
}

/** A random valid BLS secret (below the group order, non-zero). */
function randomSecret(): Uint8Array {
  const s = new Uint8Array(crypto.randomBytes(32));
  s[0] &= 0x3f;
  s[31] |= 1;
  return s;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const readJson = (file: string): any => JSON.parse(fs.readFileSync(file, "utf8"));
const writeJson = (file: string, doc: any): void => fs.writeFileSync(file, internals.serialize(doc));
const sink = (): Writable & { text: () => string } => {
  const chunks: string[] = [];
  const w = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  }) as Writable & { text: () => string };
  w.text = () => chunks.join("");
  return w;
};

/** A store with `count` keys; returns its file and the secrets by pubkey. */
async function makeStore(count: number, passphrase = PASS): Promise<{ file: string; secrets: Map<string, Uint8Array> }> {
  const file = fresh("keys.vigil");
  const store = await SealedKeyStore.create(file, passphrase, { scryptN: N });
  const keys = Array.from({ length: count }, (_, i) => ({ secret: randomSecret(), path: `m/12381/3600/${i}/0/0` }));
  await store.add(keys);
  store.close();
  return { file, secrets: new Map(keys.map((k) => [pubkeyFromSecret(k.secret), k.secret])) };
}

describe("SealedKeyStore", () => {
  test("the default KDF costs an attacker at least EIP-2335's (scrypt n=2^18, r=8, p=1) in 64 MiB; weaker n is refused", async () => {
    assert.ok(DEFAULT_SCRYPT_N >= 2 ** 16);
    const file = fresh("keys.vigil");
    const store = await SealedKeyStore.create(file, PASS);
    store.close();
    const kdf = readJson(file).kdf;
    assert.equal(kdf.function, "scrypt");
    assert.ok(scryptAreaTime(kdf) >= scryptAreaTime({ n: 262144, r: 8, p: 1 }), `memory × time per guess below EIP-2335's: ${JSON.stringify(kdf)}`);
    assert.ok(scryptMemory(kdf) <= 64 * 2 ** 20, `unlock needs more than 64 MiB: ${JSON.stringify(kdf)}`);
    assert.equal(scryptMemory({ n: 262144, r: 8, p: 1 }), 256 * 2 ** 20); // RFC 7914: 128·r·N bytes
    assert.equal(kdf.salt.length, 64);
    await assert.rejects(SealedKeyStore.create(fresh("k"), PASS, { scryptN: 512 }), isVigil("bad_request", "INVALID_OPTIONS"));
    await assert.rejects(SealedKeyStore.create(fresh("k"), PASS, { scryptN: 3000 }), isVigil("bad_request", "INVALID_OPTIONS"));
    await assert.rejects(SealedKeyStore.create(fresh("k"), "\u0007", { scryptN: N }), isVigil("bad_request", "EMPTY_PASSPHRASE"));
  });

  test("round trip: add, list, unsealAll, unseal, reopen", async () => {
    const file = fresh("keys.vigil");
    const store = await SealedKeyStore.create(file, PASS, { scryptN: N });
    assert.deepEqual(store.list(), []);
    const keys = [{ secret: randomSecret(), path: "m/12381/3600/0/0/0" }, { secret: randomSecret() }, { secret: randomSecret(), path: "" }];
    const pubkeys = keys.map((k) => pubkeyFromSecret(k.secret));
    const res = await store.add(keys);
    assert.deepEqual(res, pubkeys.map((pubkey) => ({ pubkey, status: "imported" })));
    const listed = store.list();
    assert.deepEqual(listed.map((k) => k.pubkey), pubkeys);
    assert.equal(listed[0].path, "m/12381/3600/0/0/0");
    assert.equal("path" in listed[1], false);
    assert.equal("path" in listed[2], false); // EIP-2335's "" (unknown) is stored as absent
    assert.ok(!Number.isNaN(Date.parse(listed[0].added)));
    const check = (all: { pubkey: string; secret: Uint8Array }[]): void => {
      assert.deepEqual(all.map((k) => k.pubkey), pubkeys);
      all.forEach((k, i) => {
        assert.equal(hex(k.secret), hex(keys[i].secret));
        assert.equal(pubkeyFromSecret(k.secret), k.pubkey);
      });
    };
    check(store.unsealAll());
    assert.equal(hex(store.unseal(pubkeys[1].toUpperCase().replace("0X", "0x"))), hex(keys[1].secret));
    assert.throws(() => store.unseal(`0x${"ab".repeat(48)}`), isVigil("not_found", "KEY_NOT_FOUND"));
    assert.throws(() => store.unseal("0x1234"), isVigil("bad_request", "INVALID_PUBKEY"));
    store.close();

    const again = await SealedKeyStore.open(file, PASS);
    check(again.unsealAll());
    assert.deepEqual(again.list(), listed);
    assert.deepEqual((await SealedKeyStore.inspect(file)).keys, listed);
    again.close();
    // The secrets and the passphrase are nowhere in the file.
    const text = fs.readFileSync(file, "utf8");
    for (const k of keys) assert.ok(!text.includes(hex(k.secret)));
    assert.ok(!text.includes(PASS));
  });

  test("invalid secrets are refused before anything is written", async () => {
    const { file } = await makeStore(1);
    const before = fs.readFileSync(file);
    const store = await SealedKeyStore.open(file, PASS);
    const zero = new Uint8Array(32);
    const tooBig = new Uint8Array(32).fill(0xff);
    await assert.rejects(store.add([{ secret: randomSecret() }, { secret: zero }]), isVigil("bad_request", "INVALID_SECRET"));
    await assert.rejects(store.add([{ secret: tooBig }]), isVigil("bad_request", "INVALID_SECRET"));
    await assert.rejects(store.add([{ secret: new Uint8Array(31) }]), isVigil("bad_request", "INVALID_SECRET"));
    assert.deepEqual(fs.readFileSync(file), before);
    assert.equal(store.size, 1);
    store.close();
  });

  test("a wrong passphrase is WRONG_PASSPHRASE (unauthorized); passphrases are NFKD-normalised", async () => {
    const { file } = await makeStore(2, "ﬁre\u0007 ");
    await assert.rejects(SealedKeyStore.open(file, "fire!"), isVigil("unauthorized", "WRONG_PASSPHRASE"));
    await assert.rejects(SealedKeyStore.open(file, ""), isVigil("unauthorized", "WRONG_PASSPHRASE"));
    const s = await SealedKeyStore.open(file, "fire "); // U+FB01 → "fi", BEL removed
    assert.equal(s.unsealAll().length, 2);
    s.close();
  });

  test("a missing store is NO_KEY_STORE; exists() tells", async () => {
    const file = fresh("none.vigil");
    assert.equal(SealedKeyStore.exists(file), false);
    await assert.rejects(SealedKeyStore.open(file, PASS), isVigil("not_found", "NO_KEY_STORE"));
  });

  describe("damaged or edited files are refused, never a wrong key", () => {
    type Mutation = (doc: any, text: string) => any; // returns a doc or a raw string
    const swap = (a: any[], i: number, j: number): void => {
      [a[i], a[j]] = [a[j], a[i]];
    };
    const flipHex = (h: string, at = 0): string => h.slice(0, at) + (h[at] === "0" ? "1" : "0") + h.slice(at + 1);
    const mutations: [string, Mutation][] = [
      ["a flipped byte in a sealed entry", (d) => ((d.keys[1].sealed = flipHex(d.keys[1].sealed, 10)), d)],
      ["a flipped bit in an entry's tag", (d) => ((d.keys[0].sealed = flipHex(d.keys[0].sealed, 95)), d)],
      ["a flipped byte in an entry's iv", (d) => ((d.keys[0].iv = flipHex(d.keys[0].iv)), d)],
      ["an edited pubkey", (d) => ((d.keys[0].pubkey = pubkeyFromSecret(randomSecret())), d)],
      ["two entries' sealed values swapped", (d) => (([d.keys[0].sealed, d.keys[1].sealed] = [d.keys[1].sealed, d.keys[0].sealed]), d)],
      ["two entries' sealed and iv swapped", (d) => {
        [d.keys[0].sealed, d.keys[1].sealed] = [d.keys[1].sealed, d.keys[0].sealed];
        [d.keys[0].iv, d.keys[1].iv] = [d.keys[1].iv, d.keys[0].iv];
        return d;
      }],
      ["two entries' pubkeys swapped", (d) => (([d.keys[0].pubkey, d.keys[1].pubkey] = [d.keys[1].pubkey, d.keys[0].pubkey]), d)],
      ["an entry deleted", (d) => (d.keys.splice(1, 1), d)],
      ["the last entry deleted", (d) => (d.keys.pop(), d)],
      ["all entries deleted", (d) => ((d.keys = []), d)],
      ["entries reordered", (d) => (swap(d.keys, 0, 2), d)],
      ["an edited path", (d) => ((d.keys[0].path = "m/12381/3600/9/0/0"), d)],
      ["an edited added time", (d) => ((d.keys[0].added = "2001-01-01T00:00:00.000Z"), d)],
      ["an entry duplicated", (d) => (d.keys.push({ ...d.keys[0] }), d)],
      ["a flipped byte in the salt", (d) => ((d.kdf.salt = flipHex(d.kdf.salt, 7)), d)],
      ["an edited scrypt n", (d) => ((d.kdf.n = 2048), d)],
      ["a flipped byte in the check", (d) => ((d.check.sealed = flipHex(d.check.sealed, 4)), d)],
      ["a flipped byte in the mac", (d) => ((d.mac = flipHex(d.mac, 3)), d)],
      ["an unknown field", (d) => ((d.keys[0].note = "x"), d)],
      ["upper-case hex", (d) => ((d.keys[0].pubkey = d.keys[0].pubkey.toUpperCase().replace("0X", "0x")), d)],
      ["a non-hex sealed value", (d) => ((d.keys[0].sealed = "zz" + d.keys[0].sealed.slice(2)), d)],
      ["the file truncated", (_d, t) => t.slice(0, Math.floor(t.length / 2))],
      ["the file truncated after the key list", (_d, t) => t.slice(0, t.indexOf('"mac"'))],
      ["an empty file", () => ""],
      ["garbage", () => "\u0000\u0001garbage{{{"],
      ["another JSON document", () => JSON.stringify({ crypto: {}, version: 4 })],
      ["a JSON array", () => "[]"],
      ["a string version", (d) => ((d.version = "1"), d)],
    ];

    // refused by parsing alone, whatever the checksum says
    const structural = new Set(["an entry duplicated", "an unknown field", "upper-case hex", "a non-hex sealed value", "a string version"]);
    for (const [name, mutate] of mutations) {
      test(name, async () => {
        const { file } = await makeStore(3);
        const out = mutate(readJson(file), fs.readFileSync(file, "utf8"));
        if (typeof out === "string") fs.writeFileSync(file, out);
        else writeJson(file, out);
        await assert.rejects(SealedKeyStore.open(file, PASS), isVigil("bad_request", "CORRUPT_KEY_STORE"));
        if (typeof out !== "string" && !structural.has(name)) {
          // A deliberate edit that also recomputes the (unkeyed) checksum: the mac (or, for the
          // kdf/salt/check, the passphrase check) still refuses it.
          out.checksum = internals.checksum(out);
          writeJson(file, out);
          const expected = /salt|scrypt n|the check/.test(name)
            ? isVigil("unauthorized", "WRONG_PASSPHRASE")
            : (e: unknown) => isVigil("bad_request", "CORRUPT_KEY_STORE")(e) && /\(mac\) mismatch/.test((e as Error).message);
          await assert.rejects(SealedKeyStore.open(file, PASS), expected);
        }
      });
    }

    test("an unknown version is UNSUPPORTED_KEY_STORE_VERSION", async () => {
      const { file } = await makeStore(1);
      const doc = readJson(file);
      doc.version = 2;
      doc.kdf = { function: "argon2id" }; // a later format may change anything
      fs.writeFileSync(file, JSON.stringify(doc));
      await assert.rejects(SealedKeyStore.open(file, PASS), isVigil("bad_request", "UNSUPPORTED_KEY_STORE_VERSION"));
      await assert.rejects(SealedKeyStore.inspect(file), isVigil("bad_request", "UNSUPPORTED_KEY_STORE_VERSION"));
    });

    test("even with a forged mac (an attacker holding the keys), swapped or flipped sealed values never unseal", async () => {
      const { file, secrets } = await makeStore(3);
      const doc = readJson(file);
      const k = await internals.deriveKeys(PASS, doc.kdf);
      [doc.keys[0].sealed, doc.keys[1].sealed] = [doc.keys[1].sealed, doc.keys[0].sealed];
      [doc.keys[0].iv, doc.keys[1].iv] = [doc.keys[1].iv, doc.keys[0].iv];
      doc.mac = internals.mac(k.mac, doc);
      doc.checksum = internals.checksum(doc);
      writeJson(file, doc);
      const s = await SealedKeyStore.open(file, PASS); // the mac is right: only the AEAD can refuse now
      assert.throws(() => s.unsealAll(), isVigil("bad_request", "CORRUPT_KEY_STORE"));
      assert.throws(() => s.unseal(doc.keys[0].pubkey), isVigil("bad_request", "CORRUPT_KEY_STORE"));
      assert.throws(() => s.unseal(doc.keys[1].pubkey), isVigil("bad_request", "CORRUPT_KEY_STORE"));
      // the untouched entry still opens, with its own key
      assert.equal(hex(s.unseal(doc.keys[2].pubkey)), hex(secrets.get(doc.keys[2].pubkey)!));
      s.close();
    });
  });

  test("an entry copied from another store (same passphrase, other salt) is refused", async () => {
    const a = await makeStore(2);
    const b = await makeStore(1);
    const docA = readJson(a.file);
    const [foreign] = readJson(b.file).keys;
    docA.keys.push(foreign);
    writeJson(a.file, docA);
    await assert.rejects(SealedKeyStore.open(a.file, PASS), isVigil("bad_request", "CORRUPT_KEY_STORE")); // checksum
    docA.checksum = internals.checksum(docA);
    writeJson(a.file, docA);
    await assert.rejects(SealedKeyStore.open(a.file, PASS), (e) => isVigil("bad_request", "CORRUPT_KEY_STORE")(e) && /mac/.test((e as Error).message));
    // Forge the mac too: the AAD (format version + this store's salt + pubkey) still refuses it.
    const k = await internals.deriveKeys(PASS, docA.kdf);
    docA.mac = internals.mac(k.mac, docA);
    docA.checksum = internals.checksum(docA);
    writeJson(a.file, docA);
    const s = await SealedKeyStore.open(a.file, PASS);
    assert.throws(() => s.unseal(foreign.pubkey), isVigil("bad_request", "CORRUPT_KEY_STORE"));
    assert.throws(() => s.unsealAll(), isVigil("bad_request", "CORRUPT_KEY_STORE"));
    s.close();
  });

  test("duplicates are reported, not imported twice; nothing new means no rewrite", async () => {
    const { file, secrets } = await makeStore(2);
    const [p0, s0] = [...secrets][0];
    const store = await SealedKeyStore.open(file, PASS);
    const before = fs.readFileSync(file);
    assert.deepEqual(await store.add([{ secret: s0 }]), [{ pubkey: p0, status: "duplicate" }]);
    assert.deepEqual(fs.readFileSync(file), before);
    const n = randomSecret();
    const pn = pubkeyFromSecret(n);
    assert.deepEqual(await store.add([{ secret: n }, { secret: s0 }, { secret: n }]), [
      { pubkey: pn, status: "imported" },
      { pubkey: p0, status: "duplicate" },
      { pubkey: pn, status: "duplicate" },
    ]);
    assert.equal(store.size, 3);
    store.close();
    const again = await SealedKeyStore.open(file, PASS);
    assert.equal(again.list().length, 3);
    again.close();
  });

  test("remove: deleted / not_found, persisted", async () => {
    const { file, secrets } = await makeStore(3);
    const [p0, p1, p2] = [...secrets.keys()];
    const store = await SealedKeyStore.open(file, PASS);
    const absent = pubkeyFromSecret(randomSecret());
    assert.deepEqual(await store.remove([p1.toUpperCase().replace("0X", "0x"), absent, p1]), [
      { pubkey: p1, status: "deleted" },
      { pubkey: absent, status: "not_found" },
      { pubkey: p1, status: "not_found" },
    ]);
    await assert.rejects(store.remove(["nope"]), isVigil("bad_request", "INVALID_PUBKEY"));
    assert.throws(() => store.unseal(p1), isVigil("not_found", "KEY_NOT_FOUND"));
    store.close();
    const again = await SealedKeyStore.open(file, PASS);
    assert.deepEqual(again.list().map((k) => k.pubkey), [p0, p2]);
    assert.deepEqual(again.unsealAll().map((k) => hex(k.secret)), [hex(secrets.get(p0)!), hex(secrets.get(p2)!)]);
    assert.deepEqual(await again.remove([p0, p2]), [{ pubkey: p0, status: "deleted" }, { pubkey: p2, status: "deleted" }]);
    again.close();
    const empty = await SealedKeyStore.open(file, PASS);
    assert.deepEqual(empty.list(), []);
    empty.close();
  });

  test("writes are atomic: mode 0600, no .tmp left; create never overwrites; a leftover .tmp or a foreign change blocks writes", async () => {
    const old = process.umask(0o000); // even with a permissive umask
    let file: string;
    try {
      ({ file } = await makeStore(2));
    } finally {
      process.umask(old);
    }
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.ok(!fs.existsSync(`${file}.tmp`));
    assert.deepEqual(fs.readdirSync(path.dirname(file)).filter((f) => f.startsWith(path.basename(file))), [path.basename(file)]);

    const before = fs.readFileSync(file);
    await assert.rejects(SealedKeyStore.create(file, PASS, { scryptN: N }), isVigil("conflict", "STORE_EXISTS"));
    assert.deepEqual(fs.readFileSync(file), before);

    const a = await SealedKeyStore.open(file, PASS);
    const b = await SealedKeyStore.open(file, PASS);
    fs.writeFileSync(`${file}.tmp`, "left by a crash");
    await assert.rejects(a.add([{ secret: randomSecret() }]), isVigil("conflict", "KEY_STORE_BUSY"));
    assert.equal(fs.readFileSync(`${file}.tmp`, "utf8"), "left by a crash"); // not ours to delete
    fs.rmSync(`${file}.tmp`);
    await a.add([{ secret: randomSecret() }]);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.ok(!fs.existsSync(`${file}.tmp`));
    // b read the file before a changed it: its write would lose a's key
    const mid = fs.readFileSync(file);
    await assert.rejects(b.add([{ secret: randomSecret() }]), isVigil("conflict", "KEY_STORE_CHANGED"));
    await assert.rejects(b.remove([a.list()[0].pubkey]), isVigil("conflict", "KEY_STORE_CHANGED"));
    assert.deepEqual(fs.readFileSync(file), mid);
    assert.ok(!fs.existsSync(`${file}.tmp`));
    a.close();
    b.close();
    const c = await SealedKeyStore.open(file, PASS);
    assert.equal(c.size, 3);
    c.close();
  });

  test("changePassphrase: new salt and KDF, every key re-sealed; the old passphrase no longer opens it", async () => {
    const { file, secrets } = await makeStore(3);
    const before = readJson(file);
    const store = await SealedKeyStore.open(file, PASS);
    const other = await SealedKeyStore.open(file, PASS); // read before the change
    await assert.rejects(store.changePassphrase("\u0007", { scryptN: N }), isVigil("bad_request", "EMPTY_PASSPHRASE"));
    assert.deepEqual(readJson(file), before);
    const { kdf } = await store.changePassphrase("a new passphrase", { scryptN: 2 * N });
    assert.deepEqual(kdf, { function: "scrypt", n: 2 * N, r: 8, p: 16 });
    const after = readJson(file);
    assert.notEqual(after.kdf.salt, before.kdf.salt);
    assert.equal(after.kdf.n, 2 * N);
    assert.deepEqual(after.keys.map((k: any) => [k.pubkey, k.path, k.added]), before.keys.map((k: any) => [k.pubkey, k.path, k.added]));
    for (const [i, k] of after.keys.entries()) assert.notEqual(k.sealed, before.keys[i].sealed);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    // the same object keeps working under the new keys
    assert.deepEqual(store.unsealAll().map((k) => hex(k.secret)), [...secrets.values()].map(hex));
    await store.add([{ secret: randomSecret() }]);
    store.close();
    // an object that read the old file cannot write over the new one
    await assert.rejects(other.add([{ secret: randomSecret() }]), isVigil("conflict", "KEY_STORE_CHANGED"));
    other.close();
    await assert.rejects(SealedKeyStore.open(file, PASS), isVigil("unauthorized", "WRONG_PASSPHRASE"));
    const reopened = await SealedKeyStore.open(file, "a new passphrase");
    assert.equal(reopened.size, 4);
    assert.deepEqual(reopened.unsealAll().slice(0, 3).map((k) => hex(k.secret)), [...secrets.values()].map(hex));
    reopened.close();
  });

  test("changePassphrase that cannot write leaves the file and the open store as they were", async () => {
    const { file, secrets } = await makeStore(2);
    const store = await SealedKeyStore.open(file, PASS);
    const before = fs.readFileSync(file);
    fs.writeFileSync(`${file}.tmp`, "left by a crash");
    await assert.rejects(store.changePassphrase("another", { scryptN: N }), isVigil("conflict", "KEY_STORE_BUSY"));
    fs.rmSync(`${file}.tmp`);
    assert.deepEqual(fs.readFileSync(file), before);
    assert.deepEqual(store.unsealAll().map((k) => hex(k.secret)), [...secrets.values()].map(hex));
    await store.add([{ secret: randomSecret() }]); // still the old keys: the file opens with the old passphrase
    store.close();
    const again = await SealedKeyStore.open(file, PASS);
    assert.equal(again.size, 3);
    again.close();
  });

  test("concurrent add/remove on one store object are serialised", async () => {
    const { file } = await makeStore(1);
    const s = await SealedKeyStore.open(file, PASS);
    const batches = Array.from({ length: 5 }, () => [{ secret: randomSecret() }, { secret: randomSecret() }]);
    const first = s.list()[0].pubkey;
    await Promise.all([...batches.map((b) => s.add(b)), s.remove([first])]);
    s.close();
    const again = await SealedKeyStore.open(file, PASS);
    assert.equal(again.size, 10);
    assert.equal(again.has(first), false);
    again.close();
  });

  test("close() zeroes the store keys; secrets are then refused, the public list is not", async () => {
    const { file } = await makeStore(2);
    const s = await SealedKeyStore.open(file, PASS);
    const keys = (s as any).keys as { seal: Buffer; mac: Buffer };
    assert.ok(keys.seal.some((b) => b !== 0));
    s.close();
    assert.ok(keys.seal.every((b) => b === 0) && keys.mac.every((b) => b === 0));
    assert.equal(s.isOpen, false);
    assert.throws(() => s.unsealAll(), isVigil("unavailable", "KEY_STORE_LOCKED"));
    assert.throws(() => s.unseal(s.list()[0].pubkey), isVigil("unavailable", "KEY_STORE_LOCKED"));
    await assert.rejects(s.add([{ secret: randomSecret() }]), isVigil("unavailable", "KEY_STORE_LOCKED"));
    assert.equal(s.list().length, 2);
  });

  test("10,000 keys: open + unsealAll + pubkey check are correct (times reported)", async (t) => {
    const COUNT = 10_000;
    const file = fresh("keys.vigil");
    const secrets = Array.from({ length: COUNT }, randomSecret);
    const store = await SealedKeyStore.create(file, PASS, { scryptN: N });
    let t0 = performance.now();
    const res = await store.add(secrets.map((secret, i) => ({ secret, path: `m/12381/3600/${i}/0/0` })));
    const addMs = performance.now() - t0;
    assert.ok(res.every((r) => r.status === "imported"));
    store.close();

    t0 = performance.now();
    const s = await SealedKeyStore.open(file, PASS);
    const openMs = performance.now() - t0;
    t0 = performance.now();
    const all = s.unsealAll();
    const unsealMs = performance.now() - t0;
    t0 = performance.now();
    for (const k of all) assert.equal(pubkeyFromSecret(k.secret), k.pubkey);
    const pubkeyMs = performance.now() - t0;
    s.close();

    assert.equal(all.length, COUNT);
    all.forEach((k, i) => assert.equal(hex(k.secret), hex(secrets[i])));
    t.diagnostic(
      `10k keys (scrypt n=${N}): add ${addMs.toFixed(0)} ms, open ${openMs.toFixed(0)} ms, unsealAll ${unsealMs.toFixed(0)} ms, ` +
        `pubkey check ${pubkeyMs.toFixed(0)} ms; file ${(fs.statSync(file).size / 1e6).toFixed(1)} MB`,
    );
    for (const k of all) k.secret.fill(0);
  });
});

// ---------------------------------------------------------------- passphrase sources

describe("readPassphrase", () => {
  const stream = (text: string): PassThrough => {
    const s = new PassThrough();
    s.end(text);
    return s;
  };

  test("stdin: the first line", async () => {
    assert.equal(await readPassphrase("stdin", { stdin: stream("hunter2\nsecond line\n") }), "hunter2");
    assert.equal(await readPassphrase("stdin", { stdin: stream("crlf pass\r\n") }), "crlf pass");
    assert.equal(await readPassphrase("stdin", { stdin: stream("no newline") }), "no newline");
    assert.equal(await readPassphrase("stdin", { stdin: stream("  spaces kept  \n") }), "  spaces kept  ");
    const slow = new PassThrough();
    const p = readPassphrase("stdin", { stdin: slow });
    slow.write("in ");
    slow.write("chunks");
    slow.write("\nrest");
    assert.equal(await p, "in chunks");
    await assert.rejects(readPassphrase("stdin", { stdin: stream("\n") }), isVigil("bad_request", "EMPTY_PASSPHRASE"));
    await assert.rejects(readPassphrase("stdin", { stdin: stream("") }), isVigil("bad_request", "EMPTY_PASSPHRASE"));
    const tty = Object.assign(stream("x\n"), { isTTY: true });
    await assert.rejects(readPassphrase("stdin", { stdin: tty }), isVigil("bad_request", "STDIN_IS_A_TERMINAL"));
  });

  test("file: the whole file minus one trailing newline; refused when group/others can read it", async () => {
    const file = fresh("pass.txt");
    fs.writeFileSync(file, "file pass\n\n", { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    assert.equal(await readPassphrase(`file:${file}`), "file pass\n");
    fs.writeFileSync(file, "p\r\n");
    assert.equal(await readPassphrase(`file:${file}`), "p");
    fs.chmodSync(file, 0o644);
    delete process.env[INSECURE_FILE_ENV];
    await assert.rejects(
      readPassphrase(`file:${file}`),
      (e) => isVigil("bad_request", "INSECURE_PASSPHRASE_FILE")(e) && /chmod 600/.test((e as Error).message) && /0?644/.test((e as Error).message),
    );
    fs.chmodSync(file, 0o640);
    await assert.rejects(readPassphrase(`file:${file}`), isVigil("bad_request", "INSECURE_PASSPHRASE_FILE"));
    process.env[INSECURE_FILE_ENV] = "1";
    try {
      assert.equal(await readPassphrase(`file:${file}`), "p");
    } finally {
      delete process.env[INSECURE_FILE_ENV];
    }
    await assert.rejects(readPassphrase(`file:${fresh("missing")}`), isVigil("bad_request", "PASSPHRASE_FILE_UNREADABLE"));
    const empty = fresh("empty.txt");
    fs.writeFileSync(empty, "\n", { mode: 0o600 });
    await assert.rejects(readPassphrase(`file:${empty}`), isVigil("bad_request", "EMPTY_PASSPHRASE"));
  });

  test("env: the variable, deleted afterwards", async () => {
    process.env.VIGIL_TEST_PASSPHRASE = "from env";
    assert.equal(await readPassphrase("env:VIGIL_TEST_PASSPHRASE"), "from env");
    assert.equal("VIGIL_TEST_PASSPHRASE" in process.env, false);
    await assert.rejects(readPassphrase("env:VIGIL_TEST_PASSPHRASE"), isVigil("bad_request", "PASSPHRASE_ENV_UNSET"));
    process.env.VIGIL_TEST_PASSPHRASE = "";
    await assert.rejects(readPassphrase("env:VIGIL_TEST_PASSPHRASE"), isVigil("bad_request", "PASSPHRASE_ENV_UNSET"));
    assert.equal("VIGIL_TEST_PASSPHRASE" in process.env, false);
  });

  test("invalid sources are INVALID_UNLOCK_SOURCE", async () => {
    for (const s of ["", "promptx", "STDIN", "file:", "env:", "env:1X", "env:A-B", "password:x", "file"]) {
      await assert.rejects(readPassphrase(s), isVigil("bad_request", "INVALID_UNLOCK_SOURCE"), s);
    }
  });

  test("prompt: refused without a TTY; reads without echo; confirm must match", async () => {
    await assert.rejects(readPassphrase("prompt", { stdin: stream("x\n"), stderr: sink() }), (e) => {
      isVigil("bad_request", "PROMPT_NEEDS_TTY")(e);
      assert.match((e as Error).message, /stdin/);
      assert.match((e as Error).message, /file:/);
      assert.match((e as Error).message, /env:/);
      return true;
    });
    const tty = (): PassThrough & { isTTY: boolean } => Object.assign(new PassThrough(), { isTTY: true });

    let input = tty();
    let err = sink();
    let p = readPassphrase("prompt", { stdin: input, stderr: err, prompt: "Pass: " });
    input.write("s3cret typed\r");
    assert.equal(await p, "s3cret typed");
    assert.equal(err.text(), "Pass: \n");

    input = tty();
    err = sink();
    p = readPassphrase("prompt", { stdin: input, stderr: err, confirm: true });
    input.write("new pass\n");
    setImmediate(() => input.write("new pass\n"));
    assert.equal(await p, "new pass");
    assert.ok(!err.text().includes("new pass"));
    assert.match(err.text(), /Repeat/);

    input = tty();
    p = readPassphrase("prompt", { stdin: input, stderr: sink(), confirm: true });
    input.write("one\ntwo\n");
    await assert.rejects(p, isVigil("bad_request", "PASSPHRASE_MISMATCH"));

    input = tty();
    p = readPassphrase("prompt", { stdin: input, stderr: sink() });
    input.write("\u0003"); // Ctrl-C
    await assert.rejects(p, isVigil("bad_request", "PASSPHRASE_CANCELLED"));

    input = tty();
    p = readPassphrase("prompt", { stdin: input, stderr: sink() });
    input.end();
    await assert.rejects(p, isVigil("bad_request", "PASSPHRASE_CANCELLED"));
  });
});

// ---------------------------------------------------------------- CLI

describe("keys import / export / list", () => {
  const ENV = "VIGIL_TEST_STORE_PASS";
  const unlock = (pass = PASS): string => {
    process.env[ENV] = pass;
    return `env:${ENV}`;
  };
  const secretFile = (content: string): string => {
    const f = fresh("pw.txt");
    fs.writeFileSync(f, content, { mode: 0o600 });
    return f;
  };

  test("EIP-2335 keystores → store → EIP-2335 keystores: same pubkeys and secrets", async () => {
    const keystores = fresh("keystores");
    fs.mkdirSync(keystores);
    const password = "keystore password";
    const passwordFile = secretFile(`${password}\n`);
    const secrets = [randomSecret(), randomSecret(), randomSecret()];
    const pubkeys = secrets.map(pubkeyFromSecret);
    for (const [i, s] of secrets.entries()) {
      const ks = await encryptKeystore(s, password, { kdf: "pbkdf2", path: `m/12381/3600/${i}/0/0` });
      fs.writeFileSync(path.join(keystores, `keystore-${i}.json`), JSON.stringify(ks));
    }
    const dataDir = fresh("data");

    // first import creates the store
    let out = sink();
    const sum = await keysImport({ keystores, passwordFile, dataDir, unlock: unlock(), scryptN: N, stdout: out });
    assert.equal(sum.created, true);
    assert.deepEqual(sum.imported.map((k) => k.pubkey).sort(), [...pubkeys].sort());
    assert.deepEqual(sum.duplicate, []);
    assert.deepEqual(sum.failed, []);
    assert.match(out.text(), /created key store .*: 3 imported, 0 duplicate, 0 failed; 3 keys in the store/);
    const storeFile = path.join(dataDir, KEY_STORE_FILE);
    assert.equal(fs.statSync(storeFile).mode & 0o777, 0o600);
    assert.equal(ENV in process.env, false); // the env source was consumed

    // again: all duplicates, and a keystore with another password fails (the others are still reported)
    const extra = randomSecret();
    fs.writeFileSync(path.join(keystores, "keystore-x.json"), JSON.stringify(await encryptKeystore(extra, "other", { kdf: "pbkdf2" })));
    out = sink();
    await assert.rejects(
      keysImport({ keystores, passwordFile, dataDir, unlock: unlock(), stdout: out }),
      isVigil("bad_request", "IMPORT_INCOMPLETE"),
    );
    assert.match(out.text(), /0 imported, 3 duplicate, 1 failed; 3 keys in the store/);
    assert.match(out.text(), /failed +keystore-x\.json: WRONG_PASSWORD/);
    fs.rmSync(path.join(keystores, "keystore-x.json"));

    // a wrong store passphrase fails before any keystore is decrypted
    await assert.rejects(keysImport({ keystores, passwordFile, dataDir, unlock: unlock("wrong"), stdout: sink() }), isVigil("unauthorized", "WRONG_PASSPHRASE"));

    // list needs no passphrase
    out = sink();
    const listed = await keysList({ dataDir, stdout: out });
    assert.deepEqual(listed.map((k) => k.pubkey).sort(), [...pubkeys].sort());
    assert.deepEqual(listed.map((k) => k.path).sort(), ["m/12381/3600/0/0/0", "m/12381/3600/1/0/0", "m/12381/3600/2/0/0"]);
    assert.equal(out.text().trim().split("\n").length, 3);
    assert.match(out.text(), new RegExp(`${pubkeys[0]}\\tm/12381/3600/0/0/0\\t\\d{4}-`));

    // export, and load the exported keystores back
    const exportPassword = "export password";
    const exportPwFile = secretFile(exportPassword);
    const outDir = path.join(fresh("export"), "keys");
    const exported = await keysExport({ dataDir, unlock: unlock(), out: outDir, passwordFile: exportPwFile, kdf: "pbkdf2", stdout: sink() });
    assert.equal(exported.length, 3);
    assert.equal(fs.statSync(outDir).mode & 0o777, 0o700);
    for (const e of exported) {
      assert.equal(path.basename(e.file), `keystore-${e.pubkey.slice(2, 18)}.json`);
      assert.equal(fs.statSync(e.file).mode & 0o777, 0o600);
    }
    const back = await loadKeystores({ dir: outDir, passwordFile: exportPwFile });
    assert.deepEqual(back.errors, []);
    const bySecret = new Map(back.keys.map((k) => [k.pubkey, hex(k.secret)]));
    assert.deepEqual([...bySecret.keys()].sort(), [...pubkeys].sort());
    for (const [i, p] of pubkeys.entries()) assert.equal(bySecret.get(p), hex(secrets[i]));
    const ks0 = readJson(exported.find((e) => e.pubkey === pubkeys[0])!.file);
    assert.equal(ks0.path, "m/12381/3600/0/0/0");
    assert.equal(ks0.crypto.kdf.function, "pbkdf2");

    // never overwrites; a subset; unknown keys refused
    await assert.rejects(
      keysExport({ dataDir, unlock: unlock(), out: outDir, passwordFile: exportPwFile, kdf: "pbkdf2", stdout: sink() }),
      isVigil("conflict", "FILE_EXISTS"),
    );
    const subDir = fresh("subset");
    const sub = await keysExport({ dataDir, unlock: unlock(), out: subDir, passwordFile: exportPwFile, pubkeys: [pubkeys[1].toUpperCase().replace("0X", "0x")], kdf: "pbkdf2", stdout: sink() });
    assert.deepEqual(sub.map((e) => e.pubkey), [pubkeys[1]]);
    assert.deepEqual(fs.readdirSync(subDir), [path.basename(sub[0].file)]);
    await assert.rejects(
      keysExport({ dataDir, unlock: unlock(), out: fresh("x"), passwordFile: exportPwFile, pubkeys: [pubkeyFromSecret(extra)], kdf: "pbkdf2", stdout: sink() }),
      isVigil("not_found", "KEY_NOT_FOUND"),
    );
    // an export password file readable by others is refused
    fs.chmodSync(exportPwFile, 0o644);
    await assert.rejects(
      keysExport({ dataDir, unlock: unlock(), out: fresh("y"), passwordFile: exportPwFile, kdf: "pbkdf2", stdout: sink() }),
      isVigil("bad_request", "INSECURE_PASSPHRASE_FILE"),
    );
    delete process.env[ENV];
  });

  test("keys passphrase: the current passphrase first, then the new one; the store opens with the new one only", async () => {
    const keystores = fresh("keystores");
    fs.mkdirSync(keystores);
    const secret = randomSecret();
    fs.writeFileSync(path.join(keystores, "keystore-0.json"), JSON.stringify(await encryptKeystore(secret, "pw", { kdf: "pbkdf2" })));
    const dataDir = fresh("data");
    await keysImport({ keystores, passwordFile: secretFile("pw"), dataDir, unlock: unlock(), scryptN: N, stdout: sink() });
    const storeFile = path.join(dataDir, KEY_STORE_FILE);
    const before = fs.readFileSync(storeFile);

    await assert.rejects(
      keysPassphrase({ dataDir, unlock: unlock("wrong"), newPassphrase: `file:${secretFile("new one")}`, scryptN: N, stdout: sink() }),
      isVigil("unauthorized", "WRONG_PASSPHRASE"),
    );
    await assert.rejects(keysPassphrase({ dataDir, unlock: "stdin", newPassphrase: "stdin", stdout: sink() }), isVigil("bad_request", "INVALID_UNLOCK_SOURCE"));
    await assert.rejects(keysPassphrase({ dataDir: fresh("none"), unlock: unlock(), newPassphrase: unlock(), stdout: sink() }), isVigil("not_found", "NO_KEY_STORE"));
    assert.deepEqual(fs.readFileSync(storeFile), before);

    const out = sink();
    const { kdf } = await keysPassphrase({ dataDir, unlock: unlock(), newPassphrase: `file:${secretFile("new one\n")}`, scryptN: N, stdout: out });
    assert.equal(kdf.n, N);
    assert.match(out.text(), /changed the passphrase of .*keys\.vigil \(1 key re-sealed; scrypt n=1024, r=8, p=16\)/);
    await assert.rejects(SealedKeyStore.open(storeFile, PASS), isVigil("unauthorized", "WRONG_PASSPHRASE"));
    const store = await SealedKeyStore.open(storeFile, "new one");
    assert.deepEqual(store.unsealAll().map((k) => hex(k.secret)), [hex(secret)]);
    store.close();
  });

  test("no store: list and export say so; an empty keystore directory creates nothing", async () => {
    const dataDir = fresh("data");
    await assert.rejects(keysList({ dataDir, stdout: sink() }), isVigil("not_found", "NO_KEY_STORE"));
    await assert.rejects(
      keysExport({ dataDir, unlock: unlock(), out: fresh("o"), passwordFile: secretFile("x"), stdout: sink() }),
      isVigil("not_found", "NO_KEY_STORE"),
    );
    const empty = fresh("empty");
    fs.mkdirSync(empty);
    await assert.rejects(
      keysImport({ keystores: empty, passwordFile: secretFile("x"), dataDir, unlock: unlock(), stdout: sink() }),
      isVigil("bad_request", "NO_KEYSTORES"),
    );
    assert.equal(fs.existsSync(path.join(dataDir, KEY_STORE_FILE)), false);
    delete process.env[ENV];
  });
});
