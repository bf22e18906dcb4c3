/**
 * Networks Vigil signs for: fork schedule (versions and activation epochs), preset, genesis
 * validators root. Known public networks come from @lodestar/config; Holesky (dropped there)
 * is listed from its published config; custom networks come from a consensus-spec config.yaml.
 */
import fs from "node:fs";
import { parse as parseYaml } from "yaml";
import { genesisData, networksChainConfig } from "@lodestar/config/networks";
import { minimalChainConfig } from "@lodestar/config/configs";
import { VigilError } from "../errors.js";

/** Forks whose signing requests Vigil understands, in activation order. */
export const FORK_NAMES = ["phase0", "altair", "bellatrix", "capella", "deneb", "electra", "fulu"] as const;
export type ForkName = (typeof FORK_NAMES)[number];
/** Forks after these are listed in schedules (so versions resolve) but not signed for. */
const LATER_FORKS = ["gloas", "heze"] as const;

export interface ScheduledFork {
  name: string;
  version: Uint8Array;
  /** Activation epoch; null when unknown (a devnet preset whose epochs are set at launch). */
  epoch: bigint | null;
}

export interface Network {
  name: string;
  preset: "mainnet" | "minimal";
  slotsPerEpoch: number;
  genesisForkVersion: Uint8Array;
  forks: ScheduledFork[];
  /** Null: not known in advance, pinned to the first one seen in the protection database. */
  genesisValidatorsRoot: Uint8Array | null;
  /** Unix seconds; null when unknown. */
  genesisTime: number | null;
  secondsPerSlot: number;
  /** True when every fork epoch is known, so fork versions can be checked against epochs. */
  scheduleKnown: boolean;
}

const FAR_FUTURE = 2n ** 64n - 1n;
const hex = (b: Uint8Array): string => "0x" + Buffer.from(b).toString("hex");
const bytes = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/^0x/, ""), "hex"));

type ChainConfigLike = Record<string, unknown>;

function toBytes4(v: unknown, key: string, source: string): Uint8Array {
  if (v instanceof Uint8Array && v.length === 4) return v;
  if (typeof v === "string" && /^0x[0-9a-fA-F]{8}$/.test(v)) return bytes(v);
  if (typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 2 ** 32) {
    // YAML reads 0x00000001 as the number 1
    return Uint8Array.from(Buffer.from(v.toString(16).padStart(8, "0"), "hex"));
  }
  throw new VigilError("bad_request", "INVALID_NETWORK_CONFIG", `${source}: ${key} must be a 4-byte hex version`);
}

function toEpoch(v: unknown, key: string, source: string): bigint | null {
  if (v === undefined) return null;
  if (v === Infinity) return null;
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === "bigint" && v >= 0n) return v >= FAR_FUTURE ? null : v;
  if (typeof v === "string" && /^[0-9]+$/.test(v)) return BigInt(v) >= FAR_FUTURE ? null : BigInt(v);
  throw new VigilError("bad_request", "INVALID_NETWORK_CONFIG", `${source}: ${key} must be an epoch`);
}

/** Build the fork schedule from consensus-spec config keys (GENESIS_FORK_VERSION, X_FORK_VERSION/EPOCH). */
function scheduleFrom(cfg: ChainConfigLike, source: string, epochsKnown: boolean): ScheduledFork[] {
  const forks: ScheduledFork[] = [
    { name: "phase0", version: toBytes4(cfg.GENESIS_FORK_VERSION, "GENESIS_FORK_VERSION", source), epoch: 0n },
  ];
  for (const name of [...FORK_NAMES.slice(1), ...LATER_FORKS]) {
    const key = name.toUpperCase();
    const version = cfg[`${key}_FORK_VERSION`];
    if (version === undefined) continue;
    const epoch = epochsKnown ? toEpoch(cfg[`${key}_FORK_EPOCH`], `${key}_FORK_EPOCH`, source) : null;
    forks.push({ name, version: toBytes4(version, `${key}_FORK_VERSION`, source), epoch });
  }
  return forks;
}

function presetOf(cfg: ChainConfigLike, source: string): "mainnet" | "minimal" {
  const p = cfg.PRESET_BASE ?? "mainnet";
  if (p !== "mainnet" && p !== "minimal") {
    throw new VigilError("bad_request", "INVALID_NETWORK_CONFIG", `${source}: PRESET_BASE must be mainnet or minimal`);
  }
  return p;
}

const SLOTS_PER_EPOCH = { mainnet: 32, minimal: 8 } as const;

function secondsPerSlot(cfg: ChainConfigLike, source: string): number {
  const v = cfg.SECONDS_PER_SLOT ?? 12;
  const n = typeof v === "bigint" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 600) {
    throw new VigilError("bad_request", "INVALID_NETWORK_CONFIG", `${source}: SECONDS_PER_SLOT must be 1-600`);
  }
  return n;
}

// Holesky: facts from its published config.yaml (eth-clients/holesky, metadata/config.yaml).
const holesky: ChainConfigLike = {
  PRESET_BASE: "mainnet",
  SECONDS_PER_SLOT: 12,
  GENESIS_FORK_VERSION: "0x01017000",
  ALTAIR_FORK_VERSION: "0x02017000",
  ALTAIR_FORK_EPOCH: 0,
  BELLATRIX_FORK_VERSION: "0x03017000",
  BELLATRIX_FORK_EPOCH: 0,
  CAPELLA_FORK_VERSION: "0x04017000",
  CAPELLA_FORK_EPOCH: 256,
  DENEB_FORK_VERSION: "0x05017000",
  DENEB_FORK_EPOCH: 29696,
  ELECTRA_FORK_VERSION: "0x06017000",
  ELECTRA_FORK_EPOCH: 115968,
  FULU_FORK_VERSION: "0x07017000",
  FULU_FORK_EPOCH: 165120,
};
const holeskyGenesis = {
  genesisTime: 1695902400,
  genesisValidatorsRoot: "0x9143aa7c615a7f7115e2b6aac319c03529df8242ae705fba9df39b79c59fa8b1",
};

export const KNOWN_NETWORKS = ["mainnet", "hoodi", "sepolia", "holesky", "minimal"] as const;

function publicNetwork(name: "mainnet" | "hoodi" | "sepolia" | "holesky"): Network {
  const cfg = name === "holesky" ? holesky : (networksChainConfig[name] as unknown as ChainConfigLike);
  const gen = name === "holesky" ? holeskyGenesis : genesisData[name];
  const preset = presetOf(cfg, name);
  const forks = scheduleFrom(cfg, name, true);
  return {
    name,
    preset,
    slotsPerEpoch: SLOTS_PER_EPOCH[preset],
    genesisForkVersion: forks[0].version,
    forks,
    genesisValidatorsRoot: bytes(gen.genesisValidatorsRoot),
    genesisTime: gen.genesisTime,
    secondsPerSlot: secondsPerSlot(cfg, name),
    scheduleKnown: true,
  };
}

/**
 * The minimal preset with the spec's minimal fork versions, for local devnets. Fork epochs are
 * chosen when a devnet launches, so only the versions are checked, and the genesis validators
 * root is pinned on first use.
 */
function minimalNetwork(): Network {
  const forks = scheduleFrom(minimalChainConfig as unknown as ChainConfigLike, "minimal", false);
  return {
    name: "minimal",
    preset: "minimal",
    slotsPerEpoch: SLOTS_PER_EPOCH.minimal,
    genesisForkVersion: forks[0].version,
    forks,
    genesisValidatorsRoot: null,
    genesisTime: null,
    secondsPerSlot: secondsPerSlot(minimalChainConfig as unknown as ChainConfigLike, "minimal"),
    scheduleKnown: false,
  };
}

/**
 * A custom network from a consensus-spec config.yaml. Vigil also reads two optional keys there:
 * GENESIS_VALIDATORS_ROOT and GENESIS_TIME (absent: the root is pinned on first use).
 */
export function networkFromConfigFile(file: string): Network {
  let cfg: ChainConfigLike;
  try {
    cfg = parseYaml(fs.readFileSync(file, "utf8"), { intAsBigInt: true }) as ChainConfigLike;
  } catch (e) {
    throw new VigilError("bad_request", "INVALID_NETWORK_CONFIG", `cannot read network config ${file}: ${(e as Error).message}`);
  }
  if (typeof cfg !== "object" || cfg === null) {
    throw new VigilError("bad_request", "INVALID_NETWORK_CONFIG", `${file}: not a YAML mapping`);
  }
  // YAML with intAsBigInt gives bigint for numbers: versions written without quotes become bigints.
  for (const [k, v] of Object.entries(cfg)) if (typeof v === "bigint" && k.endsWith("_VERSION")) cfg[k] = Number(v);
  // An unquoted 0x… root is read as a number too: back to its 32 bytes of hex.
  if (typeof cfg.GENESIS_VALIDATORS_ROOT === "bigint" && cfg.GENESIS_VALIDATORS_ROOT < 2n ** 256n) {
    cfg.GENESIS_VALIDATORS_ROOT = "0x" + cfg.GENESIS_VALIDATORS_ROOT.toString(16).padStart(64, "0");
  }
  const preset = presetOf(cfg, file);
  const forks = scheduleFrom(cfg, file, true);
  const gvr = cfg.GENESIS_VALIDATORS_ROOT;
  if (gvr !== undefined && (typeof gvr !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(gvr))) {
    throw new VigilError("bad_request", "INVALID_NETWORK_CONFIG", `${file}: GENESIS_VALIDATORS_ROOT must be 32-byte hex`);
  }
  const time = cfg.GENESIS_TIME;
  return {
    name: typeof cfg.CONFIG_NAME === "string" ? cfg.CONFIG_NAME : "custom",
    preset,
    slotsPerEpoch: SLOTS_PER_EPOCH[preset],
    genesisForkVersion: forks[0].version,
    forks,
    genesisValidatorsRoot: typeof gvr === "string" ? bytes(gvr) : null,
    genesisTime: typeof time === "bigint" || typeof time === "number" ? Number(time) : null,
    secondsPerSlot: secondsPerSlot(cfg, file),
    scheduleKnown: true,
  };
}

/** Resolve `--network`: a known name or a path to a config.yaml. */
export function resolveNetwork(nameOrPath: string): Network {
  switch (nameOrPath) {
    case "mainnet":
    case "hoodi":
    case "sepolia":
    case "holesky":
      return publicNetwork(nameOrPath);
    case "minimal":
      return minimalNetwork();
    default:
      if (/\.ya?ml$/i.test(nameOrPath) || fs.existsSync(nameOrPath)) return networkFromConfigFile(nameOrPath);
      throw new VigilError(
        "bad_request",
        "UNKNOWN_NETWORK",
        `unknown network "${nameOrPath}": use one of ${KNOWN_NETWORKS.join(", ")} or a path to a config.yaml`,
      );
  }
}

/** The fork scheduled at `epoch`, or null when the schedule is not known. */
export function forkAtEpoch(network: Network, epoch: bigint): ScheduledFork | null {
  if (!network.scheduleKnown) return null;
  let current = network.forks[0];
  for (const f of network.forks) if (f.epoch !== null && f.epoch <= epoch) current = f;
  return current;
}

export function isNetworkVersion(network: Network, version: Uint8Array): boolean {
  return network.forks.some((f) => Buffer.from(f.version).equals(version));
}

export function describeNetwork(n: Network): string {
  const gvr = n.genesisValidatorsRoot ? hex(n.genesisValidatorsRoot) : "pinned on first use";
  return `${n.name} (preset ${n.preset}, genesis validators root ${gvr})`;
}
