/** VOLUNTARY_EXIT: signed at the exit's epoch (EIP-7044 pins verification to Capella's version from Deneb on). */
import { ssz } from "@lodestar/types";
import { DomainType } from "../domain.js";
import { decodeAndHash } from "../json.js";
import type { RequestModule } from "../request.js";

type VoluntaryExit = { epoch: bigint; validatorIndex: bigint };

export const voluntaryExit: RequestModule = {
  type: "VOLUNTARY_EXIT",
  payloadKey: "voluntary_exit",
  needsForkInfo: true,
  decode(payload) {
    const { root, value } = decodeAndHash(ssz.phase0.VoluntaryExit, payload, "voluntary_exit");
    const e = value as VoluntaryExit;
    return {
      objectRoot: root,
      domainType: DomainType.VOLUNTARY_EXIT,
      epoch: e.epoch,
      summary: `voluntary_exit epoch=${e.epoch} validator_index=${e.validatorIndex}`,
      fields: { epoch: e.epoch, validatorIndex: e.validatorIndex },
    };
  },
};
