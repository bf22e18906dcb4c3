/**
 * BLS signing off the event loop: a pool of worker threads inside the vault process, so every
 * core signs while the main thread decodes requests and runs slashing protection. Jobs queued
 * in one turn of the event loop go to the workers in batches (one message per worker).
 */
import { Worker } from "node:worker_threads";
import { VigilError } from "../errors.js";
import type { WorkerRequest, WorkerResponse } from "./sign-worker.js";

const WORKER = new URL("./sign-worker.js", import.meta.url);

export class SignPool {
  private readonly workers: Worker[];
  private readonly pending = new Map<number, { resolve: (s: Uint8Array) => void; reject: (e: unknown) => void }>();
  private queue: { id: number; pubkey: string; root: Uint8Array }[] = [];
  private scheduled = false;
  private nextId = 1;
  private next = 0;
  private broken: string | null = null;

  constructor(readonly size: number) {
    this.workers = Array.from({ length: size }, () => {
      const w = new Worker(WORKER);
      w.on("message", (m: WorkerResponse) => this.onResults(m));
      w.on("error", (e) => this.failAll(e.message));
      w.on("exit", (code) => this.failAll(`exit code ${code}`));
      w.unref();
      return w;
    });
  }

  private post(m: WorkerRequest): void {
    for (const w of this.workers) w.postMessage(m);
  }

  /** Give every worker a copy of these keys; the caller's buffers are zeroed. */
  add(keys: { pubkey: string; secret: Uint8Array }[]): void {
    if (keys.length === 0) return;
    this.post({ op: "add", keys }); // structured clone copies the bytes now
    for (const k of keys) k.secret.fill(0);
  }

  remove(pubkeys: string[]): void {
    if (pubkeys.length > 0) this.post({ op: "remove", pubkeys });
  }

  sign(pubkey: string, root: Uint8Array): Promise<Uint8Array> {
    if (this.broken) return Promise.reject(new VigilError("internal", "SIGNER_THREAD_FAILED", `a signing thread failed: ${this.broken}`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.queue.push({ id, pubkey, root });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.dispatch());
      }
    });
  }

  /** Split the queued jobs into one batch per worker. */
  private dispatch(): void {
    this.scheduled = false;
    const jobs = this.queue;
    this.queue = [];
    const per = Math.ceil(jobs.length / this.workers.length);
    for (let i = 0; i < jobs.length; i += per) {
      this.workers[this.next].postMessage({ op: "sign", jobs: jobs.slice(i, i + per) } satisfies WorkerRequest);
      this.next = (this.next + 1) % this.workers.length;
    }
  }

  private onResults(m: WorkerResponse): void {
    for (const r of m.results) {
      const p = this.pending.get(r.id);
      if (!p) continue;
      this.pending.delete(r.id);
      if (r.signature) p.resolve(r.signature);
      else p.reject(new VigilError("not_found", "KEY_NOT_FOUND", "the key was removed"));
    }
  }

  /** A dead signing thread breaks the pool for good: nothing is signed by a partial pool. */
  private failAll(why: string): void {
    if (this.closing) return;
    this.broken ??= why;
    for (const p of this.pending.values()) p.reject(new VigilError("internal", "SIGNER_THREAD_FAILED", `a signing thread failed: ${why}`));
    this.pending.clear();
  }

  private closing = false;

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
