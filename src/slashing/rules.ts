/**
 * EIP-3076 slashing-protection rules, as pure functions (no I/O).
 *
 * Strategy: complete history plus low watermarks. Vigil keeps every signed block and attestation,
 * so a message in a gap below the highest recorded one is allowed when it conflicts with nothing,
 * and re-signing an identical message (same non-zero signing root) is allowed as a repeat.
 * The store queries the slice of history each rule needs and records the message if allowed.
 *
 * Watermarks (set by an operator for key migrations between clusters) bound what may be signed,
 * per validator or for all validators; the tighter of the two applies (see `applicableWatermarks`):
 * - LOW slot S refuses blocks with slot <= S (as if an imported history's lowest slot were S);
 * - LOW epoch E refuses attestations with target <= E or source < E (likewise for epochs);
 * - a repeat (identical known signing root already recorded) is still allowed under a LOW watermark;
 * - HIGH slot S refuses blocks with slot >= S;
 * - HIGH epoch E refuses attestations with target >= E;
 * - a HIGH watermark refuses everything at or beyond it, repeats included: a safe way to retire a cluster.
 */
import type { Decision, SigningRoot, SlashingRule, Watermark } from "./types.js";

/** The history a block check needs, for one validator. */
export interface BlockHistory {
  /** Signing roots of the recorded blocks at the same slot (null = unknown). */
  sameSlot: readonly SigningRoot[];
  /** Lowest recorded slot, or null if no block is recorded. */
  minSlot: number | null;
}

/** The history an attestation check needs, for one validator. */
export interface AttestationHistory {
  /** Signing roots of the recorded attestations with the same target epoch (null = unknown). */
  sameTarget: readonly SigningRoot[];
  /** A recorded attestation has source > new source and target < new target (the new one would surround it). */
  surroundsExisting: boolean;
  /** A recorded attestation has source < new source and target > new target (the new one would be surrounded). */
  surroundedByExisting: boolean;
  /** Lowest recorded source epoch, or null if no attestation is recorded. */
  minSource: number | null;
  /** Lowest recorded target epoch, or null if no attestation is recorded. */
  minTarget: number | null;
}

/** The watermarks that apply to one validator, already combined (null = none). */
export interface Watermarks {
  /** Refuse blocks with slot <= lowSlot (repeats excepted). */
  lowSlot: number | null;
  /** Refuse attestations with target <= lowEpoch or source < lowEpoch (repeats excepted). */
  lowEpoch: number | null;
  /** Refuse blocks with slot >= highSlot (repeats included). */
  highSlot: number | null;
  /** Refuse attestations with target >= highEpoch (repeats included). */
  highEpoch: number | null;
  /** Refuse everything (repeats included): the validator is retired (its key was deleted through the Keymanager API). */
  retired: boolean;
}

export const NO_WATERMARKS: Watermarks = Object.freeze({ lowSlot: null, lowEpoch: null, highSlot: null, highEpoch: null, retired: false });

/** A retired validator, as a watermark row: the stores read retirements together with the watermarks. */
export const RETIRED_KIND = "retired";

const maxOf = (a: number | null, b: number | null): number | null => (a === null ? b : b === null ? a : Math.max(a, b));
const minOf = (a: number | null, b: number | null): number | null => (a === null ? b : b === null ? a : Math.min(a, b));

/**
 * Combine the watermarks that apply to one validator (its own and the global ones) into the tighter
 * bounds: the highest LOW and the lowest HIGH, for slots and epochs separately.
 */
export function applicableWatermarks(rows: Iterable<{ kind: Watermark["kind"] | typeof RETIRED_KIND; slot: number | null; epoch: number | null }>): Watermarks {
  const w = { ...NO_WATERMARKS };
  for (const r of rows) {
    if (r.kind === RETIRED_KIND) w.retired = true;
    else if (r.kind === "low") {
      w.lowSlot = maxOf(w.lowSlot, r.slot);
      w.lowEpoch = maxOf(w.lowEpoch, r.epoch);
    } else {
      w.highSlot = minOf(w.highSlot, r.slot);
      w.highEpoch = minOf(w.highEpoch, r.epoch);
    }
  }
  return w;
}

/** An all-zero or absent signing root is unknown: it never proves two messages identical. */
export function normaliseSigningRoot(root: Uint8Array | null | undefined): SigningRoot {
  if (root == null) return null;
  for (const b of root) if (b !== 0) return root;
  return null;
}

/** True only if both roots are known and byte-for-byte equal. */
export function sameSigningRoot(a: SigningRoot, b: SigningRoot): boolean {
  const x = normaliseSigningRoot(a);
  const y = normaliseSigningRoot(b);
  if (x === null || y === null || x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

/** A repeat signing: every recorded message at this position has the same known signing root as the new one. */
function isRepeat(recorded: readonly SigningRoot[], root: SigningRoot): boolean {
  return root !== null && recorded.length > 0 && recorded.every((r) => sameSigningRoot(r, root));
}

const refuse = (rule: SlashingRule, message: string): Decision => ({ allowed: false, rule, message });

const retired = (): Decision =>
  refuse("VALIDATOR_RETIRED", "the validator is retired: its key was deleted through the Keymanager API, and nothing is signed for it until the key is imported again");

/** May a block at `slot` with `signingRoot` be signed, given the validator's history and applicable watermarks? */
export function checkBlock(slot: number, signingRoot: SigningRoot, history: BlockHistory, watermarks: Watermarks = NO_WATERMARKS): Decision {
  const root = normaliseSigningRoot(signingRoot);
  if (watermarks.retired) return retired();
  // HIGH watermark: nothing at or beyond it is signed, not even a repeat (a retired cluster signs nothing).
  if (watermarks.highSlot !== null && slot >= watermarks.highSlot) {
    return refuse("AT_OR_ABOVE_HIGH_WATERMARK", `slot ${slot} is at or above the high watermark (slot ${watermarks.highSlot})`);
  }
  if (history.sameSlot.length > 0) {
    // EIP-3076: a signed slot may only be signed again as a repeat, proven by an identical signing_root.
    if (isRepeat(history.sameSlot, root)) return { allowed: true, repeat: true };
    return refuse("DOUBLE_BLOCK_PROPOSAL", `a different block (or one with an unknown signing root) is already signed at slot ${slot}`);
  }
  // LOW watermark: refuse slot <= S, except a repeat (handled above), like an imported history whose lowest slot is S.
  if (watermarks.lowSlot !== null && slot <= watermarks.lowSlot) {
    return refuse("BLOCK_BELOW_LOW_WATERMARK", `slot ${slot} is at or below the low watermark (watermark slot ${watermarks.lowSlot})`);
  }
  // EIP-3076 condition 1: refuse slot <= min(recorded slots), except a repeat (handled above).
  if (history.minSlot !== null && slot <= history.minSlot) {
    return refuse("BLOCK_BELOW_LOW_WATERMARK", `slot ${slot} is at or below the low watermark (lowest recorded slot ${history.minSlot})`);
  }
  return { allowed: true, repeat: false };
}

/** May an attestation (source, target) with `signingRoot` be signed, given the validator's history and applicable watermarks? */
export function checkAttestation(
  source: number,
  target: number,
  signingRoot: SigningRoot,
  history: AttestationHistory,
  watermarks: Watermarks = NO_WATERMARKS,
): Decision {
  const root = normaliseSigningRoot(signingRoot);
  // Consensus spec: a valid attestation has source <= target; EIP-3076 signers refuse anything else.
  if (source > target) return refuse("SOURCE_GREATER_THAN_TARGET", `source epoch ${source} is greater than target epoch ${target}`);
  if (watermarks.retired) return retired();
  // HIGH watermark: no target at or beyond it is signed, not even a repeat (a retired cluster signs nothing).
  if (watermarks.highEpoch !== null && target >= watermarks.highEpoch) {
    return refuse("AT_OR_ABOVE_HIGH_WATERMARK", `target epoch ${target} is at or above the high watermark (epoch ${watermarks.highEpoch})`);
  }
  if (history.sameTarget.length > 0) {
    // EIP-3076: a signed target may only be signed again as a repeat, proven by an identical signing_root.
    if (isRepeat(history.sameTarget, root)) return { allowed: true, repeat: true };
    return refuse("DOUBLE_VOTE", `a different attestation (or one with an unknown signing root) is already signed for target epoch ${target}`);
  }
  // EIP-3076 (consensus slashing condition): never sign a vote that surrounds a recorded vote.
  if (history.surroundsExisting) return refuse("SURROUNDING_VOTE", `attestation ${source}→${target} would surround a recorded attestation`);
  // EIP-3076 (consensus slashing condition): never sign a vote surrounded by a recorded vote.
  if (history.surroundedByExisting) return refuse("SURROUNDED_VOTE", `attestation ${source}→${target} would be surrounded by a recorded attestation`);
  // LOW watermark: refuse source < E, except a repeat (handled above), like an imported history whose lowest source is E.
  if (watermarks.lowEpoch !== null && source < watermarks.lowEpoch) {
    return refuse("SOURCE_BELOW_LOW_WATERMARK", `source epoch ${source} is below the low watermark (watermark epoch ${watermarks.lowEpoch})`);
  }
  // LOW watermark: refuse target <= E, except a repeat (handled above), like an imported history whose lowest target is E.
  if (watermarks.lowEpoch !== null && target <= watermarks.lowEpoch) {
    return refuse("TARGET_BELOW_LOW_WATERMARK", `target epoch ${target} is at or below the low watermark (watermark epoch ${watermarks.lowEpoch})`);
  }
  // EIP-3076 condition 2: refuse source < min(recorded source epochs).
  if (history.minSource !== null && source < history.minSource) {
    return refuse("SOURCE_BELOW_LOW_WATERMARK", `source epoch ${source} is below the low watermark (lowest recorded source ${history.minSource})`);
  }
  // EIP-3076 condition 3: refuse target <= min(recorded target epochs), except a repeat (handled above).
  if (history.minTarget !== null && target <= history.minTarget) {
    return refuse("TARGET_BELOW_LOW_WATERMARK", `target epoch ${target} is at or below the low watermark (lowest recorded target ${history.minTarget})`);
  }
  return { allowed: true, repeat: false };
}

/** One validator's history as pruning sees it (null = no such records). */
export interface PruneView {
  maxSlot: number | null;
  maxTarget: number | null;
  /** Highest source epoch among attestations with target <= maxTarget - epochs (those pruning would delete). */
  prunedMaxSource: number | null;
  /** Lowest source epoch among attestations with target > maxTarget - epochs (those kept). */
  keptMinSource: number | null;
}

/**
 * Which records of one validator may be deleted: blocks with slot <= blockCut, attestations with
 * target <= attestationCut (null: none). Pruning relies on EIP-3076's lower bounds over what is
 * kept, which always includes the highest slot and the highest target:
 * - blocks: any later block has slot > the lowest kept slot > every deleted slot (refused otherwise);
 * - attestations: a later vote has target > the lowest kept target > every deleted target, so it can
 *   neither double-vote nor be surrounded by a deleted vote; and source >= the lowest kept source,
 *   so it cannot surround a deleted vote as long as no deleted vote has a higher source than that.
 *   A history where one does (an imported, already slashable one) keeps its attestations.
 */
export function prunePlan(v: PruneView, keep: { epochs: number; slots: number }): { blockCut: number | null; attestationCut: number | null; keptAll: boolean } {
  const blockCut = v.maxSlot !== null && v.maxSlot - keep.slots >= 0 ? v.maxSlot - keep.slots : null;
  const cut = v.maxTarget !== null && v.maxTarget - keep.epochs >= 0 ? v.maxTarget - keep.epochs : null;
  if (cut === null || v.prunedMaxSource === null) return { blockCut, attestationCut: null, keptAll: false };
  const safe = v.keptMinSource !== null && v.prunedMaxSource <= v.keptMinSource;
  return { blockCut, attestationCut: safe ? cut : null, keptAll: !safe };
}
