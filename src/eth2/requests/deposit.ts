/** DEPOSIT: a DepositMessage under compute_domain(DOMAIN_DEPOSIT, genesis_fork_version, ZERO) (is_valid_deposit_signature). */
import { ContainerType } from "@chainsafe/ssz";
import { ssz } from "@lodestar/types";
import { DomainType } from "../domain.js";
import { decodeAndHash, exactType } from "../json.js";
import type { RequestModule } from "../request.js";

const DepositRequest = new ContainerType(
  { ...ssz.phase0.DepositMessage.fields, genesisForkVersion: ssz.Version },
  { typeName: "DepositRequest", jsonCase: "eth2" },
);

type Deposit = { pubkey: Uint8Array; withdrawalCredentials: Uint8Array; amount: bigint; genesisForkVersion: Uint8Array };

export const deposit: RequestModule = {
  type: "DEPOSIT",
  payloadKey: "deposit",
  needsForkInfo: false,
  decode(payload) {
    const { value } = decodeAndHash(DepositRequest, payload, "deposit");
    const d = value as Deposit;
    const objectRoot = exactType(ssz.phase0.DepositMessage).hashTreeRoot({
      pubkey: d.pubkey,
      withdrawalCredentials: d.withdrawalCredentials,
      amount: d.amount,
    });
    return {
      objectRoot,
      domainType: DomainType.DEPOSIT,
      epoch: "genesis",
      genesisForkVersion: d.genesisForkVersion,
      pubkey: d.pubkey,
      summary: `deposit amount=${d.amount} withdrawal_credentials=0x${Buffer.from(d.withdrawalCredentials).toString("hex")}`,
      fields: { amount: d.amount, withdrawalCredentials: "0x" + Buffer.from(d.withdrawalCredentials).toString("hex") },
    };
  },
};
