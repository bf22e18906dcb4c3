/** VALIDATOR_REGISTRATION: builder-specs ValidatorRegistrationV1 under DOMAIN_APPLICATION_BUILDER, genesis fork version, zero root. */
import { ssz } from "@lodestar/types";
import { DomainType } from "../domain.js";
import { decodeAndHash } from "../json.js";
import type { RequestModule } from "../request.js";

type Registration = { feeRecipient: Uint8Array; gasLimit: bigint; timestamp: bigint; pubkey: Uint8Array };

export const validatorRegistration: RequestModule = {
  type: "VALIDATOR_REGISTRATION",
  payloadKey: "validator_registration",
  needsForkInfo: false,
  decode(payload) {
    const { root, value } = decodeAndHash(ssz.bellatrix.ValidatorRegistrationV1, payload, "validator_registration");
    const r = value as Registration;
    return {
      objectRoot: root,
      domainType: DomainType.APPLICATION_BUILDER,
      epoch: "genesis",
      pubkey: r.pubkey,
      summary: `validator_registration fee_recipient=0x${Buffer.from(r.feeRecipient).toString("hex")} gas_limit=${r.gasLimit} timestamp=${r.timestamp}`,
      fields: { feeRecipient: "0x" + Buffer.from(r.feeRecipient).toString("hex"), gasLimit: r.gasLimit, timestamp: r.timestamp },
    };
  },
};
