/**
 * The BLS signing threads: signatures equal blst's on the main thread for keys in any slot (the
 * packed secret table grows past its first 1,024 slots), a thread gets a batch only when idle, a removed
 * key signs nothing, closing fails what was not signed, and the caller's secret buffers are zeroed once handed over.
 */
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { after, test } from "node:test";
import { SecretKey } from "@chainsafe/blst";
import { VigilError } from "../src/errors.js";
import { SignPool } from "../src/keys/sign-pool.js";

const pool = new SignPool(2);
// The signing threads are unref'd (the vault's IPC channel keeps its process alive): keep this one alive.
const alive = setInterval(() => undefined, 1000);
after(async () => {
  clearInterval(alive);
  await pool.close();
});

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const keys = Array.from({ length: 1100 }, () => {
  const sk = SecretKey.fromKeygen(crypto.randomBytes(32));
  return { sk, pubkey: "0x" + hex(sk.toPublicKey().toBytes()) };
});

test("signatures from the threads equal blst's, for keys in every part of the table", async () => {
  const handed = keys.map((k) => ({ pubkey: k.pubkey, secret: k.sk.toBytes() }));
  pool.add(handed);
  assert.ok(handed.every((h) => h.secret.every((b) => b === 0)), "the caller's secret copies are zeroed");
  // One turn of the event loop: one batch per thread, each answered in one message.
  const picks = [0, 1, 2, 511, 1023, 1024, 1025, 1099, 7, 8, 9, 10, 11, 12, 13];
  const roots = picks.map(() => crypto.randomBytes(32));
  const sigs = await Promise.all(picks.map((i, j) => pool.sign(keys[i].pubkey, roots[j])));
  picks.forEach((i, j) => assert.equal(hex(sigs[j]), hex(keys[i].sk.sign(roots[j]).toBytes()), `key ${i}`));
});

test("a root given as a view into a larger buffer is signed as its own 32 bytes", async () => {
  const big = crypto.randomBytes(4096);
  const root = big.subarray(100, 132);
  const sig = await pool.sign(keys[5].pubkey, root);
  assert.equal(hex(sig), hex(keys[5].sk.sign(Uint8Array.from(root)).toBytes()));
});

test("a removed key signs nothing (KEY_NOT_FOUND), others still sign", async () => {
  pool.remove([keys[1030].pubkey]);
  await assert.rejects(pool.sign(keys[1030].pubkey, crypto.randomBytes(32)), (e: unknown) => e instanceof VigilError && e.code === "KEY_NOT_FOUND");
  const root = crypto.randomBytes(32);
  assert.equal(hex(await pool.sign(keys[1031].pubkey, root)), hex(keys[1031].sk.sign(root).toBytes()));
});

test("jobs sent at once to an idle thread and jobs batched while the threads are busy interleave: every signature is right", async () => {
  // Waves of 1 to 40 jobs, each wave started before the last one is answered: single jobs meet idle
  // threads, the rest wait and go out as batches to threads that went idle.
  const waves: Promise<void>[] = [];
  for (let w = 0; w < 30; w++) {
    const picks = Array.from({ length: 1 + ((w * 17) % 40) }, (_, j) => (w * 31 + j * 7) % 1000);
    const roots = picks.map(() => crypto.randomBytes(32));
    waves.push(
      Promise.all(picks.map((i, j) => pool.sign(keys[i].pubkey, roots[j]))).then((sigs) =>
        picks.forEach((i, j) => assert.equal(hex(sigs[j]), hex(keys[i].sk.sign(roots[j]).toBytes()), `wave ${w}, key ${i}`)),
      ),
    );
    if (w % 3 === 0) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(waves);
});

test("while every thread is busy jobs wait: a thread gets a batch only when idle, its share of the queue", async () => {
  const before = { ...pool.stats };
  // Two single jobs meet the two idle threads; the 300 after them (same turn) find both busy.
  const picks = Array.from({ length: 302 }, (_, j) => (j * 13) % 1100);
  const roots = picks.map(() => crypto.randomBytes(32));
  const sigs = await Promise.all(picks.map((i, j) => pool.sign(keys[i].pubkey, roots[j])));
  picks.forEach((i, j) => assert.equal(hex(sigs[j]), hex(keys[i].sk.sign(roots[j]).toBytes()), `job ${j}`));
  assert.equal(pool.stats.mostPerThread, 1, "no thread ever had two batches at once");
  assert.equal(pool.stats.jobs - before.jobs, 302);
  // Shares of what waits (half of the queue each time a thread goes idle): 150, 75, 38, … — not one batch per job.
  const batches = pool.stats.batches - before.batches;
  assert.ok(batches >= 4 && batches <= 40, `${batches} batches`);
});

test("close: jobs still waiting or out on a thread fail (SIGNER_CLOSED) instead of hanging", async () => {
  const own = new SignPool(2);
  own.add(keys.slice(0, 10).map((k) => ({ pubkey: k.pubkey, secret: k.sk.toBytes() })));
  const jobs = Array.from({ length: 50 }, (_, j) => own.sign(keys[j % 10].pubkey, crypto.randomBytes(32)));
  const outcomes = Promise.allSettled(jobs);
  await own.close();
  const settled = await outcomes;
  for (const r of settled) {
    assert.equal(r.status, "rejected");
    assert.ok(r.reason instanceof VigilError && r.reason.code === "SIGNER_CLOSED", String(r.reason));
  }
});

test("add with verify: the threads name every key whose secret does not yield its pubkey, and accept the rest", async () => {
  const fresh = Array.from({ length: 9 }, () => {
    const sk = SecretKey.fromKeygen(crypto.randomBytes(32));
    return { sk, pubkey: "0x" + hex(sk.toPublicKey().toBytes()) };
  });
  // Entries 2 and 7 carry another key's secret (7 is checked by the other thread than 2: i mod 2 differs).
  const handed = fresh.map((k, i) => ({ pubkey: k.pubkey, secret: (i === 2 || i === 7 ? fresh[(i + 1) % 9] : k).sk.toBytes() }));
  const bad = await pool.add(handed, true);
  assert.deepEqual(bad.sort(), [fresh[2].pubkey, fresh[7].pubkey].sort());
  assert.ok(handed.every((h) => h.secret.every((b) => b === 0)), "the caller's secret copies are zeroed");
  const root = crypto.randomBytes(32);
  assert.equal(hex(await pool.sign(fresh[4].pubkey, root)), hex(fresh[4].sk.sign(root).toBytes()));
  assert.deepEqual(await pool.add([{ pubkey: fresh[0].pubkey, secret: fresh[0].sk.toBytes() }], true), []);
  // A secret that is no valid BLS secret key (zero) fails the check instead of breaking the thread.
  assert.deepEqual(await pool.add([{ pubkey: fresh[1].pubkey, secret: new Uint8Array(32) }], true), [fresh[1].pubkey]);
  pool.remove([fresh[1].pubkey, fresh[2].pubkey, fresh[7].pubkey]);
});
