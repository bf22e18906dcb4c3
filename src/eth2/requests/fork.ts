/** Fork names as the Web3Signer API spells them (BLOCK_V2, AGGREGATE_AND_PROOF_V2 "version"). */
import { FORK_NAMES, type ForkName } from "../../config/networks.js";
import { badRequest } from "../../errors.js";

export function parseForkName(version: unknown, path: string): ForkName {
  const name = typeof version === "string" ? version.toLowerCase() : "";
  if (!(FORK_NAMES as readonly string[]).includes(name)) {
    throw badRequest("UNSUPPORTED_FORK", `${path}: unsupported fork version ${JSON.stringify(version)}; expected one of ${FORK_NAMES.map((f) => f.toUpperCase()).join(", ")}`);
  }
  return name as ForkName;
}

export function expectObject(json: unknown, path: string): Record<string, unknown> {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw badRequest("INVALID_FIELD", `${path}: expected an object`);
  return json as Record<string, unknown>;
}

export const epochOf = (slot: bigint, slotsPerEpoch: number): bigint => slot / BigInt(slotsPerEpoch);
