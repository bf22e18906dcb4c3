/**
 * The in-memory key vault's bulk add (used by the sealed store's unlock): with and without signing
 * threads, a secret that does not yield its pubkey refuses the whole batch (no key of it is held or
 * signs), keys already held are skipped, and the caller's secrets are zeroed.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { after, describe, it } from "node:test";
import { SecretKey } from "@chainsafe/blst";
import { VigilError } from "../src/errors.js";
import { SignPool } from "../src/keys/sign-pool.js";
import { KeyVault } from "../src/keys/vault.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const fresh = (n: number): { sk: SecretKey; pubkey: string }[] =>
  Array.from({ length: n }, () => {
    const sk = SecretKey.fromKeygen(crypto.randomBytes(32));
    return { sk, pubkey: "0x" + hex(sk.toPublicKey().toBytes()) };
  });
const entries = (keys: { sk: SecretKey; pubkey: string }[], swap = -1) =>
  keys.map((k, i) => ({ pubkey: k.pubkey, secret: (i === swap ? keys[(i + 1) % keys.length] : k).sk.toBytes(), origin: `entry ${i}` }));

const pool = new SignPool(2);
const alive = setInterval(() => undefined, 1000); // the signing threads are unref'd
after(async () => {
  clearInterval(alive);
  await pool.close();
});

for (const threads of [true, false]) {
  describe(`KeyVault.addAll ${threads ? "with signing threads" : "on the main thread"}`, () => {
    it("holds every key, signs as blst does, skips keys already held and zeroes the secrets handed in", async () => {
      const vault = new KeyVault();
      if (threads) vault.attachPool(pool);
      const keys = fresh(40);
      assert.equal(vault.add("keystore", entries(keys.slice(0, 1))[0]), true);
      const batch = entries(keys);
      assert.equal(await vault.addAll("sealed", batch), 39);
      assert.ok(batch.every((e) => e.secret.every((b) => b === 0)));
      assert.equal(vault.size, 40);
      assert.equal(vault.sourceOf(keys[0].pubkey), "keystore");
      assert.equal(vault.sourceOf(keys[39].pubkey), "sealed");
      const root = crypto.randomBytes(32);
      for (const i of [0, 17, 39]) assert.equal(hex(await vault.signAsync(keys[i].pubkey, root)), hex(keys[i].sk.sign(root).toBytes()));
    });

    it("a secret that does not yield its pubkey refuses the whole batch: no key of it is held or signs", async () => {
      const vault = new KeyVault();
      if (threads) vault.attachPool(pool);
      const keys = fresh(25);
      await assert.rejects(
        vault.addAll("sealed", entries(keys, 13)),
        (e: unknown) => e instanceof VigilError && e.code === "PUBKEY_MISMATCH" && e.message.includes(keys[13].pubkey),
      );
      assert.equal(vault.size, 0);
      for (const i of [0, 13, 24]) {
        await assert.rejects(vault.signAsync(keys[i].pubkey, crypto.randomBytes(32)), (e: unknown) => e instanceof VigilError && e.code === "KEY_NOT_FOUND");
        if (threads) await assert.rejects(pool.sign(keys[i].pubkey, crypto.randomBytes(32)), (e: unknown) => e instanceof VigilError && e.code === "KEY_NOT_FOUND");
      }
    });
  });
}

describe("KeyVault.replaceSource (start-up, reload)", () => {
  it("a key loaded again from its source keeps the copy held; the new copy and a dropped key's copy are zeroed", async () => {
    const vault = new KeyVault();
    vault.attachPool(pool);
    const [a, b] = fresh(2);
    vault.replaceSource("keystore", entries([a, b]));
    const held = (vault as unknown as { keys: Map<string, { secret: Uint8Array }> }).keys;
    const heldA = held.get(a.pubkey)!.secret;
    const heldB = held.get(b.pubkey)!.secret;
    const again = entries([a]);
    vault.replaceSource("keystore", again); // a reload in which b's file is gone
    assert.ok(again[0].secret.every((x) => x === 0), "the caller's copy is zeroed");
    assert.equal(held.get(a.pubkey)!.secret, heldA, "the copy held is kept");
    assert.ok(heldA.some((x) => x !== 0));
    assert.ok(heldB.every((x) => x === 0), "the dropped key's copy is zeroed");
    assert.equal(vault.has(b.pubkey), false);
    const root = crypto.randomBytes(32);
    assert.equal(hex(await vault.signAsync(a.pubkey, root)), hex(a.sk.sign(root).toBytes()));
    await assert.rejects(vault.signAsync(b.pubkey, root), (e: unknown) => e instanceof VigilError && e.code === "KEY_NOT_FOUND");
  });
});
