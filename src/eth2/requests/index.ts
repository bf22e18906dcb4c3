/** Registry: request type → module. */
import type { RequestModule, RequestType } from "../request.js";
import { aggregateAndProof, aggregateAndProofV2 } from "./aggregate-and-proof.js";
import { aggregationSlot } from "./aggregation-slot.js";
import { attestation } from "./attestation.js";
import { block, blockV2 } from "./block.js";
import { deposit } from "./deposit.js";
import { randaoReveal } from "./randao-reveal.js";
import { syncCommitteeContributionAndProof } from "./sync-committee-contribution.js";
import { syncCommitteeMessage } from "./sync-committee-message.js";
import { syncCommitteeSelectionProof } from "./sync-committee-selection-proof.js";
import { validatorRegistration } from "./validator-registration.js";
import { voluntaryExit } from "./voluntary-exit.js";

const modules: RequestModule[] = [
  block,
  blockV2,
  attestation,
  aggregationSlot,
  aggregateAndProof,
  aggregateAndProofV2,
  randaoReveal,
  voluntaryExit,
  deposit,
  syncCommitteeMessage,
  syncCommitteeSelectionProof,
  syncCommitteeContributionAndProof,
  validatorRegistration,
];

export const requestModules: ReadonlyMap<RequestType, RequestModule> = new Map(modules.map((m) => [m.type, m]));
