/**
 * Shared types for EIP-3076 slashing protection.
 *
 * - Pubkeys are 0x-prefixed lower-case hex strings (48 bytes).
 * - Signing roots are 32-byte `Uint8Array`s, or `null` when unknown. An all-zero root counts as unknown.
 * - Slots and epochs are safe integers (0 … Number.MAX_SAFE_INTEGER).
 */

/** 0x-prefixed lower-case hex of a 48-byte BLS public key. */
export type Pubkey = string;

/** A 32-byte signing root, or null when unknown (an all-zero root is normalised to null). */
export type SigningRoot = Uint8Array | null;

/** Why slashing protection refused to sign (EIP-3076 terms). */
export type SlashingRule =
  | "DOUBLE_BLOCK_PROPOSAL" // another block (or an unknown one) was signed at this slot
  | "BLOCK_BELOW_LOW_WATERMARK" // slot <= lowest recorded slot (EIP-3076 condition 1) or <= a low watermark slot
  | "DOUBLE_VOTE" // another attestation (or an unknown one) was signed for this target
  | "SURROUNDING_VOTE" // the new attestation surrounds a recorded one
  | "SURROUNDED_VOTE" // the new attestation is surrounded by a recorded one
  | "SOURCE_BELOW_LOW_WATERMARK" // source < lowest recorded source (EIP-3076 condition 2) or < a low watermark epoch
  | "TARGET_BELOW_LOW_WATERMARK" // target <= lowest recorded target (EIP-3076 condition 3) or <= a low watermark epoch
  | "AT_OR_ABOVE_HIGH_WATERMARK" // slot or target at or beyond a high watermark (a retired cluster signs nothing there)
  | "VALIDATOR_RETIRED" // its key was deleted through the Keymanager API: nothing is signed for it until it is imported again
  | "SOURCE_GREATER_THAN_TARGET"; // an invalid attestation

/** The verdict of slashing protection. A repeat (identical message already signed) is allowed and not recorded again. */
export type Decision = { allowed: true; repeat: boolean } | { allowed: false; rule: SlashingRule; message: string };

/** EIP-3076 interchange format version 5 (wire form: numbers are decimal strings, roots and pubkeys 0x hex). */
export interface Interchange {
  metadata: InterchangeMetadata;
  data: InterchangeValidator[];
}

export interface InterchangeMetadata {
  interchange_format_version: "5";
  genesis_validators_root: string;
}

export interface InterchangeValidator {
  pubkey: string;
  signed_blocks: InterchangeBlock[];
  signed_attestations: InterchangeAttestation[];
}

export interface InterchangeBlock {
  slot: string;
  /** Omitted when unknown. */
  signing_root?: string;
}

export interface InterchangeAttestation {
  source_epoch: string;
  target_epoch: string;
  /** Omitted when unknown. */
  signing_root?: string;
}

/** What an interchange import did. Exact duplicates (same validator, slot/epochs and signing root) are skipped. */
export interface ImportSummary {
  /** Distinct pubkeys in the document. */
  validators: number;
  /** Of those, validators the database did not know before. */
  validatorsAdded: number;
  blocksImported: number;
  blocksSkipped: number;
  attestationsImported: number;
  attestationsSkipped: number;
}

/** Which watermark: a low one refuses what lies at or below it, a high one what lies at or beyond it. */
export type WatermarkKind = "low" | "high";

/**
 * A watermark as set by an operator (key migrations between clusters). `pubkey` absent = global
 * (every validator, known or not). `slot` bounds blocks, `epoch` bounds attestations; either may be absent.
 */
export interface WatermarkSetting {
  kind: WatermarkKind;
  pubkey?: string;
  slot?: number;
  epoch?: number;
}

/** A recorded watermark (for display): `pubkey` null = global; `slot`/`epoch` null = not bounded. */
export interface Watermark {
  kind: WatermarkKind;
  pubkey: string | null;
  slot: number | null;
  epoch: number | null;
}

/** What to keep when pruning old history: each validator's newest `epochs` target epochs and `slots` slots. */
export interface PruneSetting {
  /** Attestations with target epoch > (the validator's highest target) − epochs are kept; at least 1. */
  epochs: number;
  /** Blocks with slot > (the validator's highest slot) − slots are kept; at least 1. */
  slots: number;
}

export interface PruneSummary {
  /** Validators whose history was looked at. */
  validators: number;
  blocksDeleted: number;
  attestationsDeleted: number;
  /** Validators whose old attestations were kept: a kept vote surrounds one that would have gone (see rules.ts prunePlan). */
  kept: string[];
}
