/** What every request-type module turns a typed body into. */
import type { ForkName } from "../config/networks.js";

export const REQUEST_TYPES = [
  "BLOCK",
  "BLOCK_V2",
  "ATTESTATION",
  "AGGREGATION_SLOT",
  "AGGREGATE_AND_PROOF",
  "AGGREGATE_AND_PROOF_V2",
  "RANDAO_REVEAL",
  "VOLUNTARY_EXIT",
  "DEPOSIT",
  "SYNC_COMMITTEE_MESSAGE",
  "SYNC_COMMITTEE_SELECTION_PROOF",
  "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF",
  "VALIDATOR_REGISTRATION",
] as const;
export type RequestType = (typeof REQUEST_TYPES)[number];

/** Slashing-relevant content (EIP-3076): what the protection database checks and records. */
export type Protection =
  | { kind: "block"; slot: bigint }
  | { kind: "attestation"; sourceEpoch: bigint; targetEpoch: bigint };

export interface DecodedMessage {
  /** hash_tree_root of the SSZ object being signed. */
  objectRoot: Uint8Array;
  domainType: Uint8Array;
  /**
   * The epoch whose fork version signs this message (from fork_info), or "genesis" for
   * messages signed with the genesis fork version and a zero genesis validators root.
   */
  epoch: bigint | "genesis";
  /** DEPOSIT names its own genesis fork version. */
  genesisForkVersion?: Uint8Array;
  /** A fork the request says the object belongs to (BLOCK_V2, AGGREGATE_AND_PROOF_V2). */
  declaredFork?: ForkName;
  /** The last fork whose messages have this shape (AGGREGATE_AND_PROOF: up to Deneb; Electra changed Attestation). */
  untilFork?: ForkName;
  /** The signing key this message must be for (DEPOSIT, VALIDATOR_REGISTRATION carry a pubkey). */
  pubkey?: Uint8Array;
  protection?: Protection;
  /** Short human-readable description for logs. */
  summary: string;
  /** Decoded fields the operator's policy can match on. */
  fields: MessageFields;
}

export interface MessageFields {
  slot?: bigint;
  epoch?: bigint;
  sourceEpoch?: bigint;
  targetEpoch?: bigint;
  validatorIndex?: bigint;
  /** 0x lower-case hex. */
  feeRecipient?: string;
  gasLimit?: bigint;
  timestamp?: bigint;
  /** 0x lower-case hex. */
  withdrawalCredentials?: string;
  amount?: bigint;
}

export interface RequestModule {
  type: RequestType;
  /** The body key holding the payload. */
  payloadKey: string;
  /** Whether fork_info is required (every type but DEPOSIT and VALIDATOR_REGISTRATION). */
  needsForkInfo: boolean;
  decode(payload: unknown, slotsPerEpoch: number): DecodedMessage;
}
