/** SYNC_COMMITTEE_SELECTION_PROOF: SyncAggregatorSelectionData (altair validator.md, get_sync_committee_selection_proof). */
import { ssz } from "@lodestar/types";
import { DomainType } from "../domain.js";
import { decodeAndHash } from "../json.js";
import type { RequestModule } from "../request.js";
import { epochOf } from "./fork.js";

type SelectionData = { slot: bigint; subcommitteeIndex: bigint };

export const syncCommitteeSelectionProof: RequestModule = {
  type: "SYNC_COMMITTEE_SELECTION_PROOF",
  payloadKey: "sync_aggregator_selection_data",
  needsForkInfo: true,
  decode(payload, slotsPerEpoch) {
    const { root, value } = decodeAndHash(ssz.altair.SyncAggregatorSelectionData, payload, "sync_aggregator_selection_data");
    const d = value as SelectionData;
    return {
      objectRoot: root,
      domainType: DomainType.SYNC_COMMITTEE_SELECTION_PROOF,
      epoch: epochOf(d.slot, slotsPerEpoch),
      summary: `sync_committee_selection_proof slot=${d.slot} subcommittee=${d.subcommitteeIndex}`,
      fields: { slot: d.slot },
    };
  },
};
