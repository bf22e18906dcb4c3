/** AGGREGATION_SLOT: the slot signature that selects aggregators (get_slot_signature). */
import { ssz } from "@lodestar/types";
import { DomainType } from "../domain.js";
import { decodeAndHash } from "../json.js";
import type { RequestModule } from "../request.js";
import { epochOf, expectObject } from "./fork.js";

export const aggregationSlot: RequestModule = {
  type: "AGGREGATION_SLOT",
  payloadKey: "aggregation_slot",
  needsForkInfo: true,
  decode(payload, slotsPerEpoch) {
    const obj = expectObject(payload, "aggregation_slot");
    const { root, value } = decodeAndHash(ssz.Slot, obj.slot, "aggregation_slot.slot");
    const slot = value as bigint;
    return {
      objectRoot: root,
      domainType: DomainType.SELECTION_PROOF,
      epoch: epochOf(slot, slotsPerEpoch),
      summary: `aggregation slot=${slot}`,
      fields: { slot },
    };
  },
};
