/**
 * `vigil start`: fork the key vault process (keys, protection database, signing), then serve
 * the Web3Signer API from this process, which never holds key material.
 */
import pino from "pino";
import { isLoopback, type StartOptions } from "../config/options.js";
import { VaultClient } from "../vault/client.js";
import { VigilError } from "../errors.js";
import { API_TOKEN_FILE, DB_FILE } from "../config/files.js";
import fs from "node:fs";
import path from "node:path";

/** A database URL without its password, for logs. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable URL)";
  }
}

/** Why the port could not be bound, in words (the address is taken, not on this machine, or privileged). */
function listenError(e: unknown, host: string, port: number): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  if (code === "EADDRINUSE") return new VigilError("bad_request", "PORT_IN_USE", `${where} is already in use (another Vigil or another program): stop it or choose another --port`);
  if (code === "EADDRNOTAVAIL") return new VigilError("bad_request", "ADDRESS_UNAVAILABLE", `${host} is not an address of this machine (--host)`);
  if (code === "EACCES") return new VigilError("bad_request", "PORT_NOT_ALLOWED", `not allowed to listen on ${where} (ports below 1024 need privileges): choose another --port`);
  return e;
}

export async function start(opts: StartOptions): Promise<void> {
  const log = pino({ level: opts.logLevel, base: undefined });
  let stopping = false;
  const spawning = VaultClient.spawn(
    {
      network: opts.network,
      dataDir: opts.dataDir,
      keystores: opts.keystores ? { dir: opts.keystores, passwordsDir: opts.passwords, passwordFile: opts.passwordFile } : undefined,
      devKeys: !opts.keystores,
      unlock: opts.unlock,
      dbUrl: opts.dbUrl,
      dbSchema: opts.dbSchema,
      haGroup: opts.haGroup,
      haLeaseMs: opts.haLeaseMs,
      pruneKeepEpochs: opts.pruneKeepEpochs,
      policyFile: opts.policy,
      logLevel: opts.logLevel,
    },
    (why) => {
      if (stopping) return;
      log.fatal({ why }, "the key vault process stopped: exiting (nothing can be signed without it)");
      process.exit(1);
    },
  );
  spawning.catch(() => undefined); // awaited below, after the imports
  // The HTTP side (fastify, metrics) loads while the vault process boots and derives its key store's key.
  const [{ buildApp }, { Metrics }, { Reloader }, { loadOrCreateToken }, { ClientAuth }] = await Promise.all([
    import("../server/app.js"),
    import("../server/metrics.js"),
    import("../server/reload.js"),
    import("../server/auth.js"),
    import("../server/clients.js"),
  ]);
  const vault = await spawning;
  const tokenFile = opts.keymanagerTokenFile ?? path.join(opts.dataDir, API_TOKEN_FILE);
  const { token: apiToken, created } = loadOrCreateToken(tokenFile);
  if (created) log.info({ file: tokenFile }, "created the Keymanager API token");
  const metrics = new Metrics();
  const reload = new Reloader(() => vault.reload());
  const { clients } = await vault.status();
  const clientAuth = clients ? new ClientAuth(clients) : undefined;
  const https = opts.tlsCert
    ? {
        cert: fs.readFileSync(opts.tlsCert),
        key: fs.readFileSync(opts.tlsKey!),
        ...(opts.tlsClientCa ? { ca: fs.readFileSync(opts.tlsClientCa) } : {}),
      }
    : undefined;
  const app = buildApp({ vault, metrics, reload, apiToken, clientAuth }, { logger: log, https });
  let address: string;
  try {
    address = await app.listen({ host: opts.host, port: opts.port });
  } catch (e) {
    stopping = true; // the vault process stops because we close it
    await vault.close().catch(() => undefined);
    throw listenError(e, opts.host, opts.port);
  }
  await vault.started(); // a new policy is recorded as accepted now (or once unlocked), not before

  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, "shutting down");
    await app.close();
    await vault.close();
    process.exit(0);
  };
  process.once("SIGINT", () => void shutdown("SIGINT"));
  process.once("SIGTERM", () => void shutdown("SIGTERM"));

  const status = await vault.status();
  const keys = await vault.listKeys();
  const dev = keys.some((k) => k.source === "dev");
  const lines = [
    `Vigil is signing on ${address} for ${status.network} (genesis validators root ${status.genesisValidatorsRoot ?? "pinned by the first signing request"})`,
    `  keys loaded: ${keys.length}${dev ? " (DEV keys, generated for trying Vigil out: never deposit to them)" : ""}`,
    `  slashing protection: ${opts.dbUrl ? `PostgreSQL ${redact(opts.dbUrl)}` : path.resolve(opts.dataDir, DB_FILE)}`,
    `  Keymanager and admin API token: ${path.resolve(tokenFile)}`,
    `  policy: ${opts.policy ?? "built-in default (or the policy accepted earlier)"}${clients ? `; clients: ${clients.map((c) => c.name).join(", ")}` : ""}`,
  ];
  if (status.role !== "single") lines.push(`  HA group ${opts.haGroup}: ${status.role.toUpperCase()}${status.fence !== null ? ` (fence ${status.fence})` : ""}`);
  if (status.locked) lines.push("  LOCKED: waiting for the key store passphrase; signing answers 503 until then");
  if (!isLoopback(opts.host) && !clientAuth) {
    const why = `listening on ${opts.host}, beyond loopback, and the signing API has no client authentication: anyone who reaches the port can ask for signatures (name clients in the policy: bearer tokens or TLS client certificates; see vigil doctor)`;
    log.warn(why);
    lines.push(`  WARNING: ${why}`);
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
