/**
 * Entry of the vault process. It is forked by `vigil start`; its configuration (nothing
 * secret) arrives in VIGIL_VAULT_CONFIG. It answers typed requests from its parent only.
 * The SSZ preset must be chosen before Lodestar loads, so everything else is imported after.
 */
import { choosePreset } from "../config/preset.js";
import type { SealedKeyStore } from "../keys/sealed-store.js";
import type { VaultConfig } from "./service.js";
import type { VaultResponse } from "./protocol.js";

const config = JSON.parse(process.env.VIGIL_VAULT_CONFIG ?? "null") as (VaultConfig & { logLevel?: string }) | null;
delete process.env.VIGIL_VAULT_CONFIG;
if (!config || typeof process.send !== "function") {
  process.stderr.write("vigil vault: to be started by `vigil start` only\n");
  process.exit(2);
}
choosePreset(config.network);

/**
 * A passphrase that needs no terminal is read, and the key store's KDF (about 1.6 s) started, at
 * once: it then runs on the thread pool while the rest of the vault loads and opens its database.
 */
async function openEarly(cfg: VaultConfig): Promise<SealedKeyStore | undefined> {
  if (!cfg.unlock || cfg.unlock === "prompt") return undefined;
  const [{ SealedKeyStore }, { readPassphrase }, { KEY_STORE_FILE }, path] = await Promise.all([
    import("../keys/sealed-store.js"),
    import("../keys/unlock.js"),
    import("../config/files.js"),
    import("node:path"),
  ]);
  const file = path.join(cfg.dataDir, KEY_STORE_FILE);
  if (!SealedKeyStore.exists(file)) return undefined; // created later, after the new passphrase is confirmed
  return SealedKeyStore.open(file, await readPassphrase(cfg.unlock));
}
const early = openEarly(config);
early.catch(() => undefined); // its error is reported by the first unlock attempt below

const [{ default: pino }, { VaultService }, protocol] = await Promise.all([
  import("pino"),
  import("./service.js"),
  import("./protocol.js"),
]);
const log = pino({ level: config.logLevel ?? "info", base: { proc: "vault" } });
const send = (m: unknown): void => {
  if (process.connected) process.send!(m);
};

// Parent gone: stop at once (fail closed: nobody could receive a signature anyway).
process.on("disconnect", () => process.exit(0));

const service = await VaultService.open(config, log).catch(async (e: unknown) => {
  if (!(e instanceof Error && "kind" in e)) log.error({ err: e }, "vault failed to start");
  // Exit once the parent has the reason.
  process.send!({ event: "fatal", error: protocol.errorToWire(e) }, () => process.exit(1));
  return new Promise<never>(() => {});
});

// BLS signing on one thread per core, off the event loop that decodes and protects.
service.useSigningThreads(Number(process.env.VIGIL_SIGNING_THREADS ?? (await import("node:os")).availableParallelism()));

let inFlight = 0;
const outbox = new protocol.Batcher<VaultResponse>(
  (batch) => send({ batch }),
  (m, e) => {
    log.error({ err: e, id: m.id }, "an answer could not be sent to the parent process");
    send({ batch: [{ id: m.id, ok: false, error: { kind: "internal", code: "INTERNAL_ERROR", message: "the key vault could not send its answer" } }] });
  },
);

async function handle(m: unknown): Promise<void> {
  if (!protocol.isVaultRequest(m)) {
    log.error("malformed message from the parent process");
    return;
  }
  if (inFlight >= protocol.MAX_IN_FLIGHT) {
    outbox.push({ id: m.id, ok: false, error: { kind: "unavailable", code: "VAULT_BUSY", message: "too many requests in flight" } });
    return;
  }
  inFlight++;
  try {
    const fn = service[m.op] as (...args: unknown[]) => Promise<unknown>;
    const result = await fn.apply(service, m.args);
    outbox.push({ id: m.id, ok: true, result });
  } catch (e) {
    const wire = protocol.errorToWire(e);
    if (wire.kind === "internal") log.error({ err: e, op: m.op }, "vault operation failed");
    outbox.push({ id: m.id, ok: false, error: wire });
  } finally {
    inFlight--;
  }
}

process.on("message", (m: { batch?: unknown }) => {
  if (!m || !Array.isArray(m.batch) || m.batch.length > protocol.MAX_IN_FLIGHT) {
    log.error("malformed message from the parent process");
    return;
  }
  for (const r of m.batch) void handle(r);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    void service.close().finally(() => process.exit(0));
  });
}
send({ event: "ready" });
if (config.pruneKeepEpochs) service.startPruning(config.pruneKeepEpochs, (await import("@lodestar/params")).SLOTS_PER_EPOCH);

// A locked vault answers (503 LOCKED) while it waits for its passphrase.
if (service.pendingUnlock) {
  const source = service.pendingUnlock;
  const tries = source === "prompt" ? 3 : 1;
  for (let i = 1; ; i++) {
    try {
      await service.unlock(source, undefined, i === 1 ? await early : undefined);
      send({ event: "locked", locked: false });
      break;
    } catch (e) {
      const wire = protocol.errorToWire(e);
      if (wire.code === "SHUTTING_DOWN") break; // a signal arrived while waiting: its handler exits
      log.error({ code: wire.code, ...(wire.kind === "internal" ? { err: e } : {}) }, `cannot unlock the key store: ${wire.message}`);
      if (i >= tries || wire.code !== "WRONG_PASSPHRASE") {
        process.stderr.write(`vigil: ${wire.code}: ${wire.message}\n`);
        await service.close();
        process.exit(1);
      }
    }
  }
}
