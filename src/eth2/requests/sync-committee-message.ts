/** SYNC_COMMITTEE_MESSAGE: the beacon block root, signed with the sync committee domain. */
import { ssz } from "@lodestar/types";
import { DomainType } from "../domain.js";
import { decodeAndHash } from "../json.js";
import type { RequestModule } from "../request.js";
import { epochOf, expectObject } from "./fork.js";

export const syncCommitteeMessage: RequestModule = {
  type: "SYNC_COMMITTEE_MESSAGE",
  payloadKey: "sync_committee_message",
  needsForkInfo: true,
  decode(payload, slotsPerEpoch) {
    const obj = expectObject(payload, "sync_committee_message");
    const slot = decodeAndHash(ssz.Slot, obj.slot, "sync_committee_message.slot").value as bigint;
    const { root } = decodeAndHash(ssz.Root, obj.beacon_block_root, "sync_committee_message.beacon_block_root");
    return {
      objectRoot: root,
      domainType: DomainType.SYNC_COMMITTEE,
      epoch: epochOf(slot, slotsPerEpoch),
      summary: `sync_committee_message slot=${slot}`,
      fields: { slot },
    };
  },
};
