/** `vigil start`: load keys, open the protection database, serve the Web3Signer API. */
import fs from "node:fs";
import path from "node:path";
import { ACTIVE_PRESET } from "@lodestar/params";
import pino from "pino";
import { describeNetwork, resolveNetwork } from "../config/networks.js";
import type { StartOptions } from "../config/options.js";
import { VigilError } from "../errors.js";
import { ensureDevKeys } from "../keys/dev.js";
import { loadKeystores } from "../keys/load.js";
import { KeyVault } from "../keys/vault.js";
import { buildApp } from "../server/app.js";
import { Metrics } from "../server/metrics.js";
import { Reloader } from "../server/reload.js";
import { Signer } from "../signer.js";
import { openSqliteStore } from "../slashing/store/sqlite.js";

export const DB_FILE = "slashing-protection.sqlite";

export async function start(opts: StartOptions): Promise<void> {
  const log = pino({ level: opts.logLevel, base: undefined });
  const network = resolveNetwork(opts.network);
  if (ACTIVE_PRESET !== network.preset) {
    throw new Error(`network ${network.name} needs the ${network.preset} preset, but ${ACTIVE_PRESET} is active`);
  }
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
  const store = openSqliteStore(path.join(opts.dataDir, DB_FILE));

  // Keys: the configured keystores, or DEV keys on a first run with none.
  let source: { dir: string; passwordsDir?: string; passwordFile?: string };
  let dev = false;
  if (opts.keystores) {
    source = { dir: opts.keystores, passwordsDir: opts.passwords, passwordFile: opts.passwordFile };
  } else {
    const devKeys = await ensureDevKeys(opts.dataDir);
    source = { dir: devKeys.dir, passwordFile: devKeys.passwordFile };
    dev = true;
    if (devKeys.created) log.warn({ dir: devKeys.dir }, "no --keystores given: generated DEV keys (never deposit to them)");
  }
  const vault = new KeyVault();
  const loadKeys = async (): Promise<{ errors: number }> => {
    const started = Date.now();
    const { keys, errors } = await loadKeystores(source);
    for (const e of errors) log.error({ file: e.file, code: e.code }, `keystore not loaded: ${e.message}`);
    vault.replaceAll(keys);
    log.info({ keys: vault.size, errors: errors.length, ms: Date.now() - started }, "keystores loaded");
    return { errors: errors.length };
  };
  await loadKeys();

  const signer = new Signer(network, store, vault);
  try {
    await signer.init();
  } catch (e) {
    if (e instanceof VigilError && e.code === "GENESIS_VALIDATORS_ROOT_MISMATCH") {
      throw new VigilError(
        e.kind,
        e.code,
        `the protection database in ${opts.dataDir} belongs to another network than ${network.name} (${e.message}); use a separate --data-dir per network`,
      );
    }
    throw e;
  }
  const metrics = new Metrics();
  const reload = new Reloader(loadKeys);
  const app = buildApp({ signer, vault, store, metrics, reload }, { logger: log });
  const address = await app.listen({ host: opts.host, port: opts.port });

  const shutdown = async (signal: string): Promise<void> => {
    log.info({ signal }, "shutting down");
    await app.close();
    await store.close();
    process.exit(0);
  };
  process.once("SIGINT", () => void shutdown("SIGINT"));
  process.once("SIGTERM", () => void shutdown("SIGTERM"));

  const lines = [
    `Vigil is signing on ${address} for ${describeNetwork(network)}`,
    `  keys loaded: ${vault.size}${dev ? " (DEV keys, generated for trying Vigil out: never deposit to them)" : ""}`,
    `  slashing protection: ${path.resolve(opts.dataDir, DB_FILE)}`,
  ];
  if (!network.genesisValidatorsRoot && !signer.genesisValidatorsRoot) {
    lines.push("  genesis validators root: pinned by the first signing request");
  }
  if (dev) {
    lines.push(
      "Next steps:",
      `  curl ${address}/api/v1/eth2/publicKeys       # the keys Vigil holds`,
      "  npx vigil start --network <name> --keystores <dir> --passwords <dir>   # your own EIP-2335 keystores",
      "  point your validator client's external-signer URL at this address (see README)",
    );
  }
  process.stdout.write(lines.join("\n") + "\n");
}
