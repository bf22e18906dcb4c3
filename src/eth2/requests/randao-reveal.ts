/** RANDAO_REVEAL: the epoch, signed with the RANDAO domain (get_epoch_signature). */
import { ssz } from "@lodestar/types";
import { DomainType } from "../domain.js";
import { decodeAndHash } from "../json.js";
import type { RequestModule } from "../request.js";
import { expectObject } from "./fork.js";

export const randaoReveal: RequestModule = {
  type: "RANDAO_REVEAL",
  payloadKey: "randao_reveal",
  needsForkInfo: true,
  decode(payload) {
    const obj = expectObject(payload, "randao_reveal");
    const { root, value } = decodeAndHash(ssz.Epoch, obj.epoch, "randao_reveal.epoch");
    const epoch = value as bigint;
    return { objectRoot: root, domainType: DomainType.RANDAO, epoch, summary: `randao_reveal epoch=${epoch}`, fields: { epoch } };
  },
};
