/** SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF: ContributionAndProof (altair validator.md, get_contribution_and_proof_signature). */
import { ssz } from "@lodestar/types";
import { DomainType } from "../domain.js";
import { decodeAndHash } from "../json.js";
import type { RequestModule } from "../request.js";
import { epochOf } from "./fork.js";

type ContributionAndProof = { aggregatorIndex: bigint; contribution: { slot: bigint; subcommitteeIndex: bigint } };

export const syncCommitteeContributionAndProof: RequestModule = {
  type: "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF",
  payloadKey: "contribution_and_proof",
  needsForkInfo: true,
  decode(payload, slotsPerEpoch) {
    const { root, value } = decodeAndHash(ssz.altair.ContributionAndProof, payload, "contribution_and_proof");
    const c = value as ContributionAndProof;
    return {
      objectRoot: root,
      domainType: DomainType.CONTRIBUTION_AND_PROOF,
      epoch: epochOf(c.contribution.slot, slotsPerEpoch),
      summary: `contribution_and_proof slot=${c.contribution.slot} subcommittee=${c.contribution.subcommitteeIndex} aggregator=${c.aggregatorIndex}`,
      fields: { slot: c.contribution.slot, validatorIndex: c.aggregatorIndex },
    };
  },
};
