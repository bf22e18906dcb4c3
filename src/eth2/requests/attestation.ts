/** ATTESTATION: AttestationData, signed at the target epoch's fork (get_attestation_signature). */
import { ssz } from "@lodestar/types";
import { DomainType } from "../domain.js";
import { decodeAndHash } from "../json.js";
import type { RequestModule } from "../request.js";

type AttestationData = { slot: bigint; index: bigint; source: { epoch: bigint }; target: { epoch: bigint } };

export const attestation: RequestModule = {
  type: "ATTESTATION",
  payloadKey: "attestation",
  needsForkInfo: true,
  decode(payload) {
    const { root, value } = decodeAndHash(ssz.phase0.AttestationData, payload, "attestation");
    const d = value as AttestationData;
    return {
      objectRoot: root,
      domainType: DomainType.BEACON_ATTESTER,
      epoch: d.target.epoch,
      protection: { kind: "attestation", sourceEpoch: d.source.epoch, targetEpoch: d.target.epoch },
      summary: `attestation slot=${d.slot} index=${d.index} source=${d.source.epoch} target=${d.target.epoch}`,
      fields: { slot: d.slot, sourceEpoch: d.source.epoch, targetEpoch: d.target.epoch },
    };
  },
};
