/** BLOCK (deprecated, phase0 block) and BLOCK_V2 (full block up to Altair, block_header after). */
import { ssz } from "@lodestar/types";
import { badRequest } from "../../errors.js";
import { DomainType } from "../domain.js";
import { decodeAndHash } from "../json.js";
import type { DecodedMessage, RequestModule } from "../request.js";
import { epochOf, expectObject, parseForkName } from "./fork.js";
import type { ForkName } from "../../config/networks.js";

function blockMessage(root: Uint8Array, slot: bigint, proposer: bigint, slotsPerEpoch: number, fork?: ForkName): DecodedMessage {
  return {
    objectRoot: root,
    domainType: DomainType.BEACON_PROPOSER,
    epoch: epochOf(slot, slotsPerEpoch),
    declaredFork: fork,
    protection: { kind: "block", slot },
    summary: `block slot=${slot} proposer=${proposer}${fork ? ` fork=${fork}` : ""}`,
    fields: { slot, validatorIndex: proposer },
  };
}

type BlockLike = { slot: bigint; proposerIndex: bigint };

export const block: RequestModule = {
  type: "BLOCK",
  payloadKey: "block",
  needsForkInfo: true,
  decode(payload, slotsPerEpoch) {
    const { root, value } = decodeAndHash(ssz.phase0.BeaconBlock, payload, "block");
    const b = value as BlockLike;
    return blockMessage(root, b.slot, b.proposerIndex, slotsPerEpoch, "phase0");
  },
};

export const blockV2: RequestModule = {
  type: "BLOCK_V2",
  payloadKey: "beacon_block",
  needsForkInfo: true,
  decode(payload, slotsPerEpoch) {
    const obj = expectObject(payload, "beacon_block");
    const fork = parseForkName(obj.version, "beacon_block.version");
    // The header's hash_tree_root equals the full block's: both commit to body_root.
    if (obj.block_header !== undefined) {
      const { root, value } = decodeAndHash(ssz.phase0.BeaconBlockHeader, obj.block_header, "beacon_block.block_header");
      const h = value as BlockLike;
      return blockMessage(root, h.slot, h.proposerIndex, slotsPerEpoch, fork);
    }
    if (obj.block !== undefined) {
      const { root, value } = decodeAndHash(ssz[fork].BeaconBlock, obj.block, "beacon_block.block");
      const b = value as BlockLike;
      return blockMessage(root, b.slot, b.proposerIndex, slotsPerEpoch, fork);
    }
    throw badRequest("INVALID_FIELD", "beacon_block: needs block_header (or block)");
  },
};
