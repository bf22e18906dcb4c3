/**
 * A BLS signing thread of the vault process. It holds copies of the secret keys (sent by the
 * vault's main thread, zeroed after use; zeroed here when a key is removed) and signs batches of signing roots that the main
 * thread sends only after slashing protection has durably recorded them.
 *
 * A batch is compact: key slots (Int32Array) and roots (32 bytes each) in transferred buffers;
 * the answer carries the signatures (96 bytes each) the same way.
 */
import { parentPort } from "node:worker_threads";
import { SecretKey } from "@chainsafe/blst";
import { SIGNATURE_BYTES } from "./sign-pool.js";

export type WorkerRequest =
  /** With `verify`, this thread also checks that keys[i]'s secret yields pubkeys[i] for every i ≡ part (mod parts). */
  | { op: "add"; keys: { slot: number; secret: Uint8Array }[]; verify?: { id: number; pubkeys: Uint8Array; part: number; parts: number } }
  | { op: "remove"; slots: number[] }
  | { op: "sign"; batch: number; slots: Int32Array; roots: Uint8Array };

/** Signatures for jobs [from, from + count) of `batch`; `missing[i]` = 1 when that key was removed. */
export type WorkerResponse = { batch: number; from: number; signatures: Uint8Array; missing: Uint8Array };
/** The answer to an `add` with `verify`: the slots (of this thread's share) whose secret does not yield the given pubkey. */
export type VerifyResponse = { verified: number; bad: number[] };


/** Secrets by slot, packed (32 bytes each; a SecretKey object per key would cost over 1 KB); a zeroed slot has no key. */
let secrets = new Uint8Array(32 * 1024);
let present = new Uint8Array(1024);

function ensure(slot: number): void {
  if (slot < present.length) return;
  let n = present.length;
  while (n <= slot) n *= 2;
  const s = new Uint8Array(32 * n);
  s.set(secrets);
  secrets.fill(0);
  secrets = s;
  const p = new Uint8Array(n);
  p.set(present);
  present = p;
}

function keyAt(slot: number): SecretKey | null {
  return slot >= 0 && slot < present.length && present[slot] ? SecretKey.fromBytes(secrets.subarray(slot * 32, slot * 32 + 32)) : null;
}

function yields(secret: Uint8Array, pubkey: Uint8Array): boolean {
  try {
    return Buffer.from(SecretKey.fromBytes(secret).toPublicKey().toBytes()).equals(pubkey);
  } catch {
    return false; // not a valid secret key (zero, or not below the group order)
  }
}

function answer(batch: number, from: number, sigs: Uint8Array<ArrayBuffer>, missing: Uint8Array<ArrayBuffer>): void {
  parentPort!.postMessage({ batch, from, signatures: sigs, missing } satisfies WorkerResponse, [sigs.buffer, missing.buffer]);
}

parentPort!.on("message", (m: WorkerRequest) => {
  if (m.op === "add") {
    const v = m.verify;
    const bad: number[] = [];
    m.keys.forEach((k, i) => {
      if (v && i % v.parts === v.part && !yields(k.secret.subarray(0, 32), v.pubkeys.subarray(i * 48, i * 48 + 48))) bad.push(k.slot);
      ensure(k.slot);
      secrets.set(k.secret.subarray(0, 32), k.slot * 32);
      present[k.slot] = 1;
      k.secret.fill(0);
    });
    if (v) parentPort!.postMessage({ verified: v.id, bad } satisfies VerifyResponse);
  } else if (m.op === "remove") {
    for (const slot of m.slots) {
      if (slot >= present.length) continue;
      present[slot] = 0;
      secrets.fill(0, slot * 32, slot * 32 + 32);
    }
  } else {
    // One answer per batch: answering every few signatures cost about 5 % of the throughput at
    // saturation (measured), and at moderate load batches hold one or two jobs anyway.
    const n = m.slots.length;
    const sigs = new Uint8Array(n * SIGNATURE_BYTES);
    const missing = new Uint8Array(n);
    for (let j = 0; j < n; j++) {
      const sk = keyAt(m.slots[j]);
      if (sk) sigs.set(sk.sign(m.roots.subarray(j * 32, j * 32 + 32)).toBytes(), j * SIGNATURE_BYTES);
      else missing[j] = 1;
    }
    answer(m.batch, 0, sigs, missing);
  }
});
