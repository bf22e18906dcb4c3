/**
 * The SQLite store on a thread of its own. better-sqlite3 is synchronous: on the vault's event
 * loop each group commit's fsync would stop everything else (decoding, policy, handing roots to
 * the BLS threads) for its duration. Here the loop only posts the calls of one turn as one
 * message; decisions still resolve only after their transaction is durably committed.
 * If the thread dies, every pending and later call fails with 503 SLASHING_DB_ERROR: fail closed.
 */
import { Worker } from "node:worker_threads";
import { VigilError } from "../../errors.js";
import type { Decision, ImportSummary, Interchange, OnTentative, SlashingStore, Watermark, WatermarkSetting } from "./store.js";
import type { StoreCall, StoreMethod, StoreReply, StoreWorkerMessage } from "./sqlite-worker.js";

const WORKER = new URL("./sqlite-worker.js", import.meta.url);

/** A compact copy: a view into a larger buffer would be cloned whole. */
const own = (b: Uint8Array | null): Uint8Array | null => (b === null || b.byteLength === b.buffer.byteLength ? b : b.slice());

export class ThreadedSqliteStore implements SlashingStore {
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void; onTentative?: OnTentative }>();
  private outbox: StoreCall[] = [];
  private scheduled = false;
  private nextId = 1;
  private dead: string | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on("message", (m: StoreWorkerMessage) => {
      if ("replies" in m) for (const r of m.replies) this.settle(r);
      else if ("tentative" in m) for (const t of m.tentative) this.pending.get(t.id)?.onTentative?.(t.decision);
    });
    worker.on("error", (e) => this.die(e.message));
    worker.on("exit", (code) => this.die(`exit code ${code}`));
  }

  /** Start the thread and open (create, migrate) the database at `file`. */
  static open(file: string): Promise<ThreadedSqliteStore> {
    const worker = new Worker(WORKER, { workerData: { file } });
    return new Promise((resolve, reject) => {
      const onExit = (code: number): void => reject(unavailable(`the slashing database thread exited (code ${code})`));
      worker.once("exit", onExit);
      worker.on("error", (e) => reject(unavailable(`the slashing database thread failed: ${e.message}`))); // no-op once settled
      worker.on("message", function first(m: StoreWorkerMessage) {
        if ("ready" in m) {
          worker.off("message", first);
          worker.off("exit", onExit);
          resolve(new ThreadedSqliteStore(worker));
        } else if ("fatal" in m) {
          worker.off("message", first);
          worker.off("exit", onExit);
          reject(fromWire(m.fatal));
        }
      });
    });
  }

  private settle(r: StoreReply): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (r.ok) p.resolve(r.value);
    else p.reject(fromWire(r));
  }

  private die(why: string): void {
    if (this.dead) return;
    this.dead = why;
    const err = unavailable(`the slashing database thread stopped (${why})`);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private call<T>(method: StoreMethod | "close", args: unknown[] = [], onTentative?: OnTentative): Promise<T> {
    if (this.dead) return Promise.reject(unavailable(`the slashing database thread stopped (${this.dead})`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onTentative });
      this.outbox.push(onTentative ? { id, method, args, tentative: true } : { id, method, args });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        const calls = this.outbox;
        this.outbox = [];
        if (!this.dead) this.worker.postMessage(calls);
      });
    });
  }

  getGenesisValidatorsRoot(): Promise<Uint8Array | null> {
    return this.call("getGenesisValidatorsRoot");
  }
  bindGenesisValidatorsRoot(gvr: Uint8Array): Promise<void> {
    return this.call("bindGenesisValidatorsRoot", [gvr instanceof Uint8Array ? own(gvr) : gvr]);
  }
  checkAndRecordBlock(pubkey: string, slot: number, signingRoot: Uint8Array | null, onTentative?: OnTentative): Promise<Decision> {
    return this.call("checkAndRecordBlock", [pubkey, slot, signingRoot instanceof Uint8Array ? own(signingRoot) : signingRoot], onTentative);
  }
  checkAndRecordAttestation(pubkey: string, source: number, target: number, signingRoot: Uint8Array | null, onTentative?: OnTentative): Promise<Decision> {
    const root = signingRoot instanceof Uint8Array ? own(signingRoot) : signingRoot;
    return this.call("checkAndRecordAttestation", [pubkey, source, target, root], onTentative);
  }
  importInterchange(doc: Interchange): Promise<ImportSummary> {
    return this.call("importInterchange", [doc]);
  }
  exportInterchange(pubkeys?: string[]): Promise<Interchange> {
    return this.call("exportInterchange", [pubkeys]);
  }
  setWatermark(w: WatermarkSetting): Promise<void> {
    return this.call("setWatermark", [w]);
  }
  getWatermarks(pubkey?: string): Promise<Watermark[]> {
    return this.call("getWatermarks", [pubkey]);
  }

  /** Decide what is queued, close the database, end the thread. */
  async close(): Promise<void> {
    if (!this.dead) await this.call("close").catch(() => undefined);
    this.dead ??= "closed";
    await this.worker.terminate();
  }
}

function unavailable(message: string): VigilError {
  return new VigilError("unavailable", "SLASHING_DB_ERROR", message);
}

function fromWire(r: StoreReply & { ok: false }): VigilError {
  return new VigilError(r.error.kind, r.error.code, r.error.message, r.error.details);
}
