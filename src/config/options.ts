/**
 * Start options from, in increasing precedence: defaults, a YAML config file (--config or
 * VIGIL_CONFIG), VIGIL_* environment variables, command-line flags.
 */
import fs from "node:fs";
import { parse as parseYaml } from "yaml";

export interface StartOptions {
  network: string;
  keystores?: string;
  passwords?: string;
  passwordFile?: string;
  dataDir: string;
  host: string;
  port: number;
  logLevel: string;
  /** Passphrase source of the sealed key store: prompt, stdin, file:<path>, env:<VAR>. */
  unlock?: string;
  /** Keymanager API bearer token file (default <data-dir>/api-token.txt). */
  keymanagerTokenFile?: string;
  /** PostgreSQL URL of a protection database shared by several instances. */
  dbUrl?: string;
  /** PostgreSQL schema for Vigil's tables (default public). */
  dbSchema?: string;
  /** Active/standby group (needs dbUrl). */
  haGroup?: string;
  /** HA lease time-to-live in ms. */
  haLeaseMs?: number;
  /** Prune the protection history every 12 hours, keeping each validator's newest N epochs. */
  pruneKeepEpochs?: number;
  /** Operator policy file. */
  policy?: string;
  /** Serve HTTPS with this certificate and key (PEM files). */
  tlsCert?: string;
  tlsKey?: string;
  /** Ask clients for TLS certificates (identities by fingerprint); PEM CA file offered to clients. */
  tlsClientCa?: string;
}

export const DEFAULTS: StartOptions = {
  network: "mainnet",
  dataDir: "./data",
  host: "127.0.0.1",
  port: 9000,
  logLevel: "info",
};

/** Option name → environment variable. */
export const ENV: Record<keyof StartOptions, string> = {
  network: "VIGIL_NETWORK",
  keystores: "VIGIL_KEYSTORES",
  passwords: "VIGIL_PASSWORDS",
  passwordFile: "VIGIL_PASSWORD_FILE",
  dataDir: "VIGIL_DATA_DIR",
  host: "VIGIL_HOST",
  port: "VIGIL_PORT",
  logLevel: "VIGIL_LOG_LEVEL",
  unlock: "VIGIL_UNLOCK",
  keymanagerTokenFile: "VIGIL_KEYMANAGER_TOKEN_FILE",
  dbUrl: "VIGIL_DB_URL",
  dbSchema: "VIGIL_DB_SCHEMA",
  haGroup: "VIGIL_HA_GROUP",
  haLeaseMs: "VIGIL_HA_LEASE_MS",
  pruneKeepEpochs: "VIGIL_PRUNE_KEEP_EPOCHS",
  policy: "VIGIL_POLICY",
  tlsCert: "VIGIL_TLS_CERT",
  tlsKey: "VIGIL_TLS_KEY",
  tlsClientCa: "VIGIL_TLS_CLIENT_CA",
};

const kebab = (k: string): string => k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase());

export class OptionsError extends Error {}

function fromConfigFile(file: string): Partial<Record<keyof StartOptions, unknown>> {
  let doc: unknown;
  try {
    doc = parseYaml(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new OptionsError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new OptionsError(`config file ${file} must be a YAML mapping`);
  const out: Partial<Record<keyof StartOptions, unknown>> = {};
  const known = new Map(Object.keys(ENV).flatMap((k) => [[k, k], [kebab(k), k]] as [string, string][]));
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const name = known.get(key);
    if (!name) throw new OptionsError(`config file ${file}: unknown option "${key}" (known: ${[...new Set(Object.keys(ENV).map(kebab))].join(", ")})`);
    out[name as keyof StartOptions] = value;
  }
  return out;
}

function asPort(v: unknown, source: string): number {
  const n = typeof v === "number" ? v : typeof v === "string" && /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new OptionsError(`${source}: port must be 0-65535, got ${String(v)}`);
  return n;
}

function asLeaseMs(v: unknown, source: string): number {
  const n = typeof v === "number" ? v : typeof v === "string" && /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1000 || n > 60_000) throw new OptionsError(`${source}: ha-lease-ms must be 1000-60000, got ${String(v)}`);
  return n;
}

function asKeepEpochs(v: unknown, source: string): number {
  const n = typeof v === "number" ? v : typeof v === "string" && /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new OptionsError(`${source}: prune-keep-epochs must be a whole number >= 1, got ${String(v)}`);
  return n;
}

export function resolveStartOptions(
  flags: Partial<Record<keyof StartOptions, unknown>> & { config?: string },
  env: NodeJS.ProcessEnv = process.env,
): StartOptions {
  const configFile = flags.config ?? env.VIGIL_CONFIG;
  const layers: [string, Partial<Record<keyof StartOptions, unknown>>][] = [];
  if (configFile) layers.push([`config file ${configFile}`, fromConfigFile(configFile)]);
  const fromEnv: Partial<Record<keyof StartOptions, unknown>> = {};
  for (const [name, variable] of Object.entries(ENV)) if (env[variable] !== undefined && env[variable] !== "") fromEnv[name as keyof StartOptions] = env[variable];
  layers.push(["environment", fromEnv], ["command line", flags]);

  const opts: Record<string, unknown> = { ...DEFAULTS };
  for (const [source, layer] of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined || key === "config") continue;
      if (key === "port") opts.port = asPort(value, source);
      else if (key === "haLeaseMs") opts.haLeaseMs = asLeaseMs(value, source);
      else if (key === "pruneKeepEpochs") opts.pruneKeepEpochs = asKeepEpochs(value, source);
      else if (typeof value !== "string") throw new OptionsError(`${source}: ${kebab(key)} must be a string`);
      else opts[key] = value;
    }
  }
  const result = opts as unknown as StartOptions;
  if (result.passwords && result.passwordFile) throw new OptionsError("give --passwords or --password-file, not both");
  if (!!result.tlsCert !== !!result.tlsKey) throw new OptionsError("--tls-cert and --tls-key go together");
  if (result.tlsClientCa && !result.tlsCert) throw new OptionsError("--tls-client-ca needs --tls-cert and --tls-key");
  if (result.haGroup && !result.dbUrl) throw new OptionsError("--ha-group needs --db-url (the lease lives in PostgreSQL)");
  if (result.keystores && !result.passwords && !result.passwordFile) {
    throw new OptionsError("--keystores needs --passwords <dir> or --password-file <file>");
  }
  return result;
}

/** 127.0.0.0/8, ::1, localhost (and IPv4-mapped loopback). */
export function isLoopback(host: string): boolean {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h === "localhost" || h.endsWith(".localhost")) return true;
  if (h.startsWith("::ffff:")) h = h.slice(7);
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return h.split(".").every((p) => Number(p) <= 255);
  return /^(0{0,4}:){2,7}0{0,3}1$/.test(h) || h === "::1";
}
