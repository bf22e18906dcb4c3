/**
 * A BLS signing thread of the vault process. It holds copies of the secret keys (sent by the
 * vault's main thread, zeroed after use) and signs batches of signing roots that the main
 * thread sends only after slashing protection has durably recorded them.
 */
import { parentPort } from "node:worker_threads";
import { SecretKey } from "@chainsafe/blst";

export type WorkerRequest =
  | { op: "add"; keys: { pubkey: string; secret: Uint8Array }[] }
  | { op: "remove"; pubkeys: string[] }
  | { op: "sign"; jobs: { id: number; pubkey: string; root: Uint8Array }[] };

export type WorkerResponse = { results: { id: number; signature?: Uint8Array; missing?: true }[] };

const keys = new Map<string, SecretKey>();

parentPort!.on("message", (m: WorkerRequest) => {
  if (m.op === "add") {
    for (const k of m.keys) {
      keys.set(k.pubkey, SecretKey.fromBytes(k.secret));
      k.secret.fill(0);
    }
  } else if (m.op === "remove") {
    for (const pk of m.pubkeys) keys.delete(pk);
  } else {
    const results = m.jobs.map((j) => {
      const sk = keys.get(j.pubkey);
      return sk ? { id: j.id, signature: sk.sign(j.root).toBytes() } : { id: j.id, missing: true as const };
    });
    parentPort!.postMessage({ results } satisfies WorkerResponse);
  }
});
