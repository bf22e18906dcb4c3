/**
 * The ceiling: raw @chainsafe/blst SecretKey.sign(32-byte message) on one core, timed one signature
 * at a time. The one-core rate is 1 / median (robust to the odd preemption by another process; the
 * plain count / wall time is kept beside it); the N-core ceiling is that rate times
 * os.availableParallelism(). As a check, the same loop also runs on N worker threads at once.
 */
import { SecretKey } from "@chainsafe/blst";
import { randomBytes } from "node:crypto";
import os from "node:os";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { summarize, type Summary } from "./stats.js";

/** Sign `n` distinct random messages with a random key; per-signature timings (ms) and the wall time. */
function signLoop(n: number): { samplesMs: Float64Array; wallMs: number } {
  const sk = SecretKey.fromKeygen(randomBytes(32));
  const msgs = Array.from({ length: n }, () => randomBytes(32));
  for (let i = 0; i < Math.min(100, n); i++) sk.sign(msgs[i]); // warm up
  const samplesMs = new Float64Array(n);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    sk.sign(msgs[i]);
    samplesMs[i] = performance.now() - t;
  }
  return { samplesMs, wallMs: performance.now() - t0 };
}

if (!isMainThread) parentPort!.postMessage(signLoop(workerData as number).wallMs);

export interface Ceiling {
  signatures: number;
  /** perSecond = 1 s / median; wallPerSecond = signatures / wall time of the loop */
  oneCore: Summary & { perSecond: number; wallPerSecond: number };
  cores: number;
  /** oneCore.perSecond × cores: the reference for Vigil's ratios. */
  ceilingPerSecond: number;
  /** The same loop on `cores` worker threads at once (all signatures / slowest thread's wall time). */
  measuredParallelPerSecond: number;
}

export async function measureCeiling(n: number): Promise<Ceiling> {
  const { samplesMs, wallMs } = signLoop(n);
  const sum = summarize(samplesMs);
  const oneCore = { ...sum, perSecond: 1000 / sum.p50Ms, wallPerSecond: (n * 1000) / wallMs };
  const cores = os.availableParallelism();
  const walls = await Promise.all(
    Array.from({ length: cores }, () =>
      new Promise<number>((resolve, reject) => {
        const w = new Worker(new URL(import.meta.url), { workerData: n });
        w.once("message", (ms: number) => resolve(ms));
        w.once("error", reject);
      }),
    ),
  );
  return { signatures: n, oneCore, cores, ceilingPerSecond: oneCore.perSecond * cores, measuredParallelPerSecond: (n * cores * 1000) / Math.max(...walls) };
}
