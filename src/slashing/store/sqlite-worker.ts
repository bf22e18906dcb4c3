/**
 * The SQLite store's own thread (see sqlite-thread.ts): it owns the better-sqlite3 connection,
 * so a commit's fsync blocks this thread only, never the vault's event loop. Calls that arrive
 * together are decided in one transaction (the store's group commit) and answered together.
 */
import { parentPort, workerData } from "node:worker_threads";
import { VigilError } from "../../errors.js";
import { openSqliteStore, type SqliteSlashingStore } from "./sqlite.js";
import type { Decision, SlashingStore } from "./store.js";

export type StoreMethod = Exclude<keyof SlashingStore, "close">;
/** `tentative`: post this call's decision before its commit (see OnTentative in store.ts). */
export type StoreCall = { id: number; method: StoreMethod | "close"; args: unknown[]; tentative?: true };
export type StoreReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { kind: VigilError["kind"]; code: string; message: string; details?: Record<string, unknown> } };
export type StoreWorkerMessage =
  | { ready: true }
  | { fatal: StoreReply & { ok: false } }
  | { replies: StoreReply[] }
  | { tentative: { id: number; decision: Decision }[] };

const METHODS: readonly string[] = [
  "getGenesisValidatorsRoot",
  "bindGenesisValidatorsRoot",
  "checkAndRecordBlock",
  "checkAndRecordAttestation",
  "importInterchange",
  "exportInterchange",
  "setWatermark",
  "getWatermarks",
  "close",
] satisfies (StoreMethod | "close")[];

const port = parentPort!;

function wireError(id: number, e: unknown): StoreReply & { ok: false } {
  if (e instanceof VigilError) {
    return { id, ok: false, error: { kind: e.kind, code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) } };
  }
  return { id, ok: false, error: { kind: "unavailable", code: "SLASHING_DB_ERROR", message: `slashing database: ${(e as Error)?.message ?? String(e)}` } };
}

/** Tentative decisions of the group being committed: posted just before its COMMIT, so the vault overlaps BLS with the fsync. */
let tentative: { id: number; decision: Decision }[] = [];
function postTentative(): void {
  if (tentative.length === 0) return;
  port.postMessage({ tentative } satisfies StoreWorkerMessage);
  tentative = [];
}

let store: SqliteSlashingStore;
try {
  store = openSqliteStore(workerData.file as string, postTentative);
} catch (e) {
  port.postMessage({ fatal: wireError(0, e) } satisfies StoreWorkerMessage);
  throw e; // ends the thread
}

let outbox: StoreReply[] = [];
let scheduled = false;
function reply(r: StoreReply): void {
  outbox.push(r);
  if (scheduled) return;
  scheduled = true;
  setImmediate(() => {
    scheduled = false;
    const replies = outbox;
    outbox = [];
    port.postMessage({ replies } satisfies StoreWorkerMessage);
  });
}

port.on("message", (calls: StoreCall[]) => {
  for (const c of calls) {
    if (!METHODS.includes(c.method)) {
      reply(wireError(c.id, new VigilError("internal", "STORE_CALL_INVALID", `unknown store method ${String(c.method)}`)));
      continue;
    }
    const fn = store[c.method] as (...a: unknown[]) => Promise<unknown>;
    const isCheck = c.method === "checkAndRecordBlock" || c.method === "checkAndRecordAttestation";
    const args = isCheck && c.tentative ? [...c.args, (decision: Decision) => tentative.push({ id: c.id, decision })] : c.args;
    // Each call's promise settles after the group commit that holds it (sqlite.ts flush).
    fn.apply(store, args).then(
      (value) => reply({ id: c.id, ok: true, value }),
      (e: unknown) => reply(wireError(c.id, e)),
    );
  }
});
port.postMessage({ ready: true } satisfies StoreWorkerMessage);
