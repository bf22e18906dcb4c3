/**
 * The built-in policy, used when `vigil start` is given no `--policy`. It is written as a policy
 * file and parsed like one, so it is also an example (`DEFAULT_POLICY_YAML`).
 */
import { parsePolicy, type Policy } from "./policy.js";

export const DEFAULT_POLICY_SOURCE = "built-in default policy";

export const DEFAULT_POLICY_YAML = `# Vigil's built-in default policy (used when \`vigil start\` has no --policy).
#
# - No \`clients\` section: the signing API does not authenticate clients. Keep it on loopback or a
#   trusted network, or write a policy with clients.
# - No \`approvers\`: the require_approval rules below (voluntary exits, deposits) can NEVER be
#   approved, so this policy never signs an exit or a deposit. To exit a validator, write a policy
#   with approvers (see docs/example-policy.yaml) and start Vigil with --policy.
# - Validator registrations: any fee recipient (there is nothing to pin it to here: pin it per key
#   or group in your own policy), gas limit between 30,000,000 and 150,000,000 (mainnet's limit
#   went from 30M to 36M, 45M and 60M in 2025; the upper bound leaves room for further raises and
#   refuses absurd values. Tighten it to the limit you actually vote for).
# - Everything else a validator does is allowed for any client, after the clock rules.
version: 1
rules:
  # Clock: by Vigil's own clock and the network's genesis time (a network whose genesis time is
  # unknown skips these two rules). A block more than 2 slots or an attestation whose target is
  # more than 1 epoch ahead of now is refused: a validator client whose clock or beacon node has
  # run ahead must not make Vigil sign (and record in slashing protection) future duties.
  - id: future-blocks
    match:
      types: [BLOCK, BLOCK_V2]
      beyond_clock: { slots: 2 }
    action: deny
  - id: future-attestations
    match:
      types: [ATTESTATION]
      beyond_clock: { epochs: 1 }
    action: deny

  # Exits and deposits need approval; with no approvers defined they can never get it.
  - id: exits-need-approval
    match:
      types: [VOLUNTARY_EXIT]
    action: require_approval
  - id: deposits-need-approval
    match:
      types: [DEPOSIT]
    action: require_approval

  # Builder (MEV-boost) registrations.
  - id: registration-gas-limit
    match:
      types: [VALIDATOR_REGISTRATION]
      gas_limit_outside: [30_000_000, 150_000_000]
    action: deny
  - id: registrations
    match:
      types: [VALIDATOR_REGISTRATION]
    action: allow

  # The duties of a validator.
  - id: validator-duties
    match:
      types:
        - BLOCK
        - BLOCK_V2
        - ATTESTATION
        - AGGREGATION_SLOT
        - AGGREGATE_AND_PROOF
        - AGGREGATE_AND_PROOF_V2
        - RANDAO_REVEAL
        - SYNC_COMMITTEE_MESSAGE
        - SYNC_COMMITTEE_SELECTION_PROOF
        - SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF
    action: allow

  # Anything else is refused (rule "default-deny").
`;

/** The policy used when no --policy is given (parsed afresh on each call; cheap). */
export function defaultPolicy(): Policy {
  return parsePolicy(DEFAULT_POLICY_YAML, DEFAULT_POLICY_SOURCE);
}
