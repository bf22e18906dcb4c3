/** AGGREGATE_AND_PROOF (phase0 shape) and AGGREGATE_AND_PROOF_V2 ({version, data}; Electra adds committee_bits). */
import { ssz } from "@lodestar/types";
import { DomainType } from "../domain.js";
import { decodeAndHash } from "../json.js";
import type { DecodedMessage, RequestModule } from "../request.js";
import { epochOf, expectObject, parseForkName } from "./fork.js";
import type { ForkName } from "../../config/networks.js";

type AggregateAndProof = { aggregatorIndex: bigint; aggregate: { data: { slot: bigint } } };

function message(root: Uint8Array, value: unknown, slotsPerEpoch: number, fork?: ForkName): DecodedMessage {
  const a = value as AggregateAndProof;
  const slot = a.aggregate.data.slot;
  return {
    objectRoot: root,
    domainType: DomainType.AGGREGATE_AND_PROOF,
    // get_aggregate_and_proof_signature: domain at compute_epoch_at_slot(aggregate.data.slot)
    epoch: epochOf(slot, slotsPerEpoch),
    declaredFork: fork,
    summary: `aggregate_and_proof slot=${slot} aggregator=${a.aggregatorIndex}${fork ? ` fork=${fork}` : ""}`,
    fields: { slot, validatorIndex: a.aggregatorIndex },
  };
}

export const aggregateAndProof: RequestModule = {
  type: "AGGREGATE_AND_PROOF",
  payloadKey: "aggregate_and_proof",
  needsForkInfo: true,
  decode(payload, slotsPerEpoch) {
    const { root, value } = decodeAndHash(ssz.phase0.AggregateAndProof, payload, "aggregate_and_proof");
    return { ...message(root, value, slotsPerEpoch), untilFork: "deneb" };
  },
};

const ELECTRA_AND_LATER: readonly ForkName[] = ["electra", "fulu"];

export const aggregateAndProofV2: RequestModule = {
  type: "AGGREGATE_AND_PROOF_V2",
  payloadKey: "aggregate_and_proof",
  needsForkInfo: true,
  decode(payload, slotsPerEpoch) {
    const obj = expectObject(payload, "aggregate_and_proof");
    const fork = parseForkName(obj.version, "aggregate_and_proof.version");
    const type = ELECTRA_AND_LATER.includes(fork) ? ssz.electra.AggregateAndProof : ssz.phase0.AggregateAndProof;
    const { root, value } = decodeAndHash(type, obj.data, "aggregate_and_proof.data");
    return message(root, value, slotsPerEpoch, fork);
  },
};
