/**
 * The slashing-protection store every database engine implements (SQLite now, PostgreSQL later).
 * All methods are async so that a network database fits.
 */
import type { Decision, ImportSummary, Interchange } from "../types.js";

export type { Decision, ImportSummary, Interchange } from "../types.js";

export interface SlashingStore {
  /** The genesis validators root this database is bound to, or null if not yet bound. */
  getGenesisValidatorsRoot(): Promise<Uint8Array | null>;
  /** Bind an unbound database to a GVR; throw VigilError('bad_request','GENESIS_VALIDATORS_ROOT_MISMATCH',…) if bound to another. */
  bindGenesisValidatorsRoot(gvr: Uint8Array): Promise<void>;
  /**
   * Check and, if allowed and not a repeat, record — atomically (concurrent calls for one validator are
   * serialised, across processes too) and durably (committed, fsync) before it resolves.
   * An all-zero signing root counts as unknown. Rejects with VigilError 'unavailable' if the database cannot decide.
   */
  checkAndRecordBlock(pubkey: string, slot: number, signingRoot: Uint8Array | null): Promise<Decision>;
  checkAndRecordAttestation(pubkey: string, source: number, target: number, signingRoot: Uint8Array | null): Promise<Decision>;
  /**
   * Import an EIP-3076 v5 document in one transaction (binding an unbound database to its GVR).
   * Exact duplicates are skipped; slashable records are kept as history (they only make checks stricter).
   */
  importInterchange(doc: Interchange): Promise<ImportSummary>;
  /** Export every validator (or only `pubkeys`, when given and known) with all its records. */
  exportInterchange(pubkeys?: string[]): Promise<Interchange>;
  close(): Promise<void>;
}
