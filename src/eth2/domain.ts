/**
 * Domains and signing roots (consensus-specs phase0 beacon-chain.md, "Helper functions").
 */
import { ssz } from "@lodestar/types";
import {
  DOMAIN_AGGREGATE_AND_PROOF,
  DOMAIN_APPLICATION_BUILDER,
  DOMAIN_BEACON_ATTESTER,
  DOMAIN_BEACON_PROPOSER,
  DOMAIN_CONTRIBUTION_AND_PROOF,
  DOMAIN_DEPOSIT,
  DOMAIN_RANDAO,
  DOMAIN_SELECTION_PROOF,
  DOMAIN_SYNC_COMMITTEE,
  DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF,
  DOMAIN_VOLUNTARY_EXIT,
} from "@lodestar/params";

export const DomainType = {
  BEACON_PROPOSER: DOMAIN_BEACON_PROPOSER,
  BEACON_ATTESTER: DOMAIN_BEACON_ATTESTER,
  RANDAO: DOMAIN_RANDAO,
  DEPOSIT: DOMAIN_DEPOSIT,
  VOLUNTARY_EXIT: DOMAIN_VOLUNTARY_EXIT,
  SELECTION_PROOF: DOMAIN_SELECTION_PROOF,
  AGGREGATE_AND_PROOF: DOMAIN_AGGREGATE_AND_PROOF,
  SYNC_COMMITTEE: DOMAIN_SYNC_COMMITTEE,
  SYNC_COMMITTEE_SELECTION_PROOF: DOMAIN_SYNC_COMMITTEE_SELECTION_PROOF,
  CONTRIBUTION_AND_PROOF: DOMAIN_CONTRIBUTION_AND_PROOF,
  APPLICATION_BUILDER: DOMAIN_APPLICATION_BUILDER,
} as const;

export const ZERO_ROOT = new Uint8Array(32);

const domainCache = new Map<string, Uint8Array>();

/** compute_domain(domain_type, fork_version, genesis_validators_root). */
export function computeDomain(domainType: Uint8Array, forkVersion: Uint8Array, genesisValidatorsRoot: Uint8Array): Uint8Array {
  const key = Buffer.concat([domainType, forkVersion, genesisValidatorsRoot]).toString("hex");
  let domain = domainCache.get(key);
  if (!domain) {
    // compute_fork_data_root: hash_tree_root(ForkData(current_version, genesis_validators_root))
    const forkDataRoot = ssz.phase0.ForkData.hashTreeRoot({ currentVersion: forkVersion, genesisValidatorsRoot });
    domain = new Uint8Array(32);
    domain.set(domainType.subarray(0, 4), 0);
    domain.set(forkDataRoot.subarray(0, 28), 4);
    if (domainCache.size > 1024) domainCache.clear();
    domainCache.set(key, domain);
  }
  return domain;
}

/** compute_signing_root(ssz_object, domain) given the object's hash_tree_root. */
export function computeSigningRoot(objectRoot: Uint8Array, domain: Uint8Array): Uint8Array {
  return ssz.phase0.SigningData.hashTreeRoot({ objectRoot, domain });
}

/** The fork version a message of `epoch` is signed with, from the request's fork info (get_domain). */
export function forkVersionAt(fork: { previousVersion: Uint8Array; currentVersion: Uint8Array; epoch: bigint }, epoch: bigint): Uint8Array {
  return epoch < fork.epoch ? fork.previousVersion : fork.currentVersion;
}
