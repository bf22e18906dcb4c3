/**
 * The ceiling: raw @chainsafe/blst SecretKey.sign(32-byte message) on one core, timed one signature
 * at a time, in a few rounds a moment apart. A round's rate is 1 / its median (robust to the odd
 * preemption); the one-core rate is the fastest round's (the hardware's speed: on a shared host
 * other tenants only ever slow a round down), and the N-core ceiling is that rate times
 * os.availableParallelism(). As a check, the same loop also runs on N worker threads at once.
 * `probeOneCore` is a short round taken right before and after a saturation run, so that a ratio
 * can also be read against the machine's speed at that moment.
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
  /** median µs per signature of each round (the fastest one sets oneCore); absent in older results */
  roundsUs?: number[];
  /** perSecond = 1 s / median; wallPerSecond = signatures / wall time of the loop */
  oneCore: Summary & { perSecond: number; wallPerSecond: number };
  cores: number;
  /** oneCore.perSecond × cores: the reference for Vigil's ratios. */
  ceilingPerSecond: number;
  /** The same loop on `cores` worker threads at once (all signatures / slowest thread's wall time). */
  measuredParallelPerSecond: number;
}

const ROUNDS = 3;

export async function measureCeiling(n: number): Promise<Ceiling> {
  const per = Math.ceil(n / ROUNDS);
  const rounds: { samplesMs: Float64Array; wallMs: number; sum: Summary }[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 500));
    const { samplesMs, wallMs } = signLoop(per);
    rounds.push({ samplesMs, wallMs, sum: summarize(samplesMs) });
  }
  const best = rounds.reduce((a, b) => (b.sum.p50Ms < a.sum.p50Ms ? b : a));
  const oneCore = { ...best.sum, perSecond: 1000 / best.sum.p50Ms, wallPerSecond: (per * 1000) / best.wallMs };
  const cores = os.availableParallelism();
  const walls = await Promise.all(
    Array.from({ length: cores }, () =>
      new Promise<number>((resolve, reject) => {
        const w = new Worker(new URL(import.meta.url), { workerData: per });
        w.once("message", (ms: number) => resolve(ms));
        w.once("error", reject);
      }),
    ),
  );
  return {
    signatures: per,
    roundsUs: rounds.map((r) => r.sum.p50Ms * 1000),
    oneCore,
    cores,
    ceilingPerSecond: oneCore.perSecond * cores,
    measuredParallelPerSecond: (per * cores * 1000) / Math.max(...walls),
  };
}

/** One short round on this thread: median µs per signature. */
export function probeOneCore(n: number): number {
  return summarize(signLoop(n).samplesMs).p50Ms * 1000;
}
