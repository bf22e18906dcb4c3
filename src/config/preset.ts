/**
 * Choosing the SSZ preset before anything imports Lodestar: @lodestar/params reads
 * LODESTAR_PRESET once, at its first import. This module must import nothing from Lodestar.
 */
import fs from "node:fs";
import { parse as parseYaml } from "yaml";

export type PresetName = "mainnet" | "minimal";

/** The networks `--network` knows by name (anything else is a config.yaml). */
export const NAMED_NETWORKS: readonly string[] = ["mainnet", "hoodi", "sepolia", "holesky", "minimal"];

/** The preset a `--network` value implies: "minimal", or a config.yaml's PRESET_BASE. */
export function presetForNetwork(nameOrPath: string): PresetName {
  if (nameOrPath === "minimal") return "minimal";
  if (NAMED_NETWORKS.includes(nameOrPath)) return "mainnet";
  try {
    const cfg = parseYaml(fs.readFileSync(nameOrPath, "utf8")) as Record<string, unknown> | null;
    return cfg?.PRESET_BASE === "minimal" ? "minimal" : "mainnet";
  } catch {
    return "mainnet"; // the network is resolved (and errors reported) after start-up
  }
}

/**
 * Set LODESTAR_PRESET for `network`. Refuses a conflicting preset already set in the
 * environment, since SSZ list limits (and so signing roots) differ between presets.
 */
export function choosePreset(network: string): PresetName {
  const preset = presetForNetwork(network);
  const env = process.env.LODESTAR_PRESET;
  if (env && env !== preset) {
    throw new Error(`LODESTAR_PRESET=${env} conflicts with network "${network}", which uses the ${preset} preset`);
  }
  process.env.LODESTAR_PRESET = preset;
  return preset;
}
