/**
 * The slashing-protection store every database engine implements (SQLite, PostgreSQL).
 * All methods are async so that a network database fits. The input checks shared by the engines are here too.
 */
import { badRequest, VigilError } from "../../errors.js";
import { normaliseSigningRoot } from "../rules.js";
import type { InterchangeSource } from "../interchange.js";
import type { Decision, ImportSummary, Interchange, InterchangeMetadata, InterchangeValidator, PruneSetting, PruneSummary, SigningRoot, Watermark, WatermarkSetting } from "../types.js";

export type { Decision, ImportSummary, Interchange, PruneSetting, PruneSummary, Watermark, WatermarkKind, WatermarkSetting } from "../types.js";

/**
 * Told the decision as soon as it is made inside its transaction, while the commit is still running
 * (engines that cannot tell early never call it). It lets the signer start work that must not leave
 * the process before the returned promise resolves: if the commit fails, that promise rejects and
 * the early work is thrown away. The tentative decision is always the one the promise resolves to.
 */
export type OnTentative = (d: Decision) => void;

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
  checkAndRecordBlock(pubkey: string, slot: number, signingRoot: Uint8Array | null, onTentative?: OnTentative): Promise<Decision>;
  checkAndRecordAttestation(pubkey: string, source: number, target: number, signingRoot: Uint8Array | null, onTentative?: OnTentative): Promise<Decision>;
  /**
   * Import an EIP-3076 v5 document (in memory, or read entry by entry from a file) in one transaction,
   * binding an unbound database to its GVR; an invalid entry anywhere rolls it all back.
   * Exact duplicates are skipped; slashable records are kept as history (they only make checks stricter).
   */
  importInterchange(doc: Interchange | InterchangeSource): Promise<ImportSummary>;
  /** Export every validator (or only `pubkeys`, when given and known) with all its records. */
  exportInterchange(pubkeys?: string[]): Promise<Interchange>;
  /** The same export from one consistent snapshot, handed to `sink` one validator entry at a time (never whole in memory). */
  exportInterchangeTo(sink: InterchangeSink, pubkeys?: string[]): Promise<void>;
  /**
   * Set the LOW or HIGH watermark of one validator (`pubkey`) or of all validators (no `pubkey`; known or not).
   * Sets the slot and/or epoch given and keeps that kind/scope's other one (setting the slot alone does not
   * lift an epoch watermark); with neither `slot` nor `epoch` it clears both.
   * Serialised with check-and-record: once it resolves, every later decision sees it. See rules.ts for the semantics.
   */
  setWatermark(w: WatermarkSetting): Promise<void>;
  /**
   * Delete old history (see rules.ts prunePlan for why what stays is enough), a few hundred validators
   * per transaction, each serialised with check-and-record like an import. Only `pubkeys` when given.
   */
  prune(keep: PruneSetting, pubkeys?: string[]): Promise<PruneSummary>;
  /** The recorded watermarks for display: the global ones and `pubkey`'s, or all of them without `pubkey`. Global first, then by pubkey; low before high. */
  getWatermarks(pubkey?: string): Promise<Watermark[]>;
  /**
   * Retire validators (their keys were deleted through the Keymanager API): once it resolves, every
   * later decision for them, in every instance sharing the database, is VALIDATOR_RETIRED, and no
   * instance loads their keys. All in one transaction, serialised with check-and-record like a
   * watermark; watermarks are left as they are. Not part of EIP-3076 (not exported).
   */
  retire(pubkeys: string[]): Promise<void>;
  /** Lift retirements (a key imported again through the Keymanager API); resolves to the pubkeys that were retired. */
  unretire(pubkeys: string[]): Promise<string[]>;
  /** The retired validators, by pubkey, with when each was retired. */
  getRetired(): Promise<Retirement[]>;
  /** Counters since the store opened (metrics). */
  readonly stats: StoreStats;
  close(): Promise<void>;
}

/** A retired validator: its pubkey and when it was retired (ISO 8601). */
export interface Retirement {
  pubkey: string;
  retiredAt: string;
}

/** What a store did since it opened: the vault exports these as metrics. */
export interface StoreStats {
  /** Check-and-record decisions made (allowed or refused). */
  decisions: number;
  /** Group commits: transactions that decided one or more of them together. */
  groupCommits: number;
  /** fdatasyncs of the SQLite WAL issued by Vigil (each covers every commit before it); 0 for PostgreSQL, which syncs its own commits. */
  walSyncs: number;
}

/** Receives an export: its metadata first, then each validator entry. */
export interface InterchangeSink {
  start(metadata: InterchangeMetadata): void;
  entry(v: InterchangeValidator): void;
}

/** An export as one document in memory. */
export async function collectInterchange(store: SlashingStore, pubkeys?: string[]): Promise<Interchange> {
  const doc: { metadata?: InterchangeMetadata; data: InterchangeValidator[] } = { data: [] };
  await store.exportInterchangeTo({ start: (m) => (doc.metadata = m), entry: (v) => doc.data.push(v) }, pubkeys);
  if (doc.metadata === undefined) throw new VigilError("internal", "INTERNAL_ERROR", "the export had no metadata");
  return { metadata: doc.metadata, data: doc.data };
}

const PUBKEY_RE = /^0x[0-9a-f]{96}$/;

/** A pubkey in canonical form (lower-case 0x hex, 48 bytes), or VigilError bad_request INVALID_PUBKEY. */
export function checkPubkey(pubkey: string): string {
  const pk = typeof pubkey === "string" ? pubkey.toLowerCase() : "";
  if (!PUBKEY_RE.test(pk)) throw badRequest("INVALID_PUBKEY", "pubkey must be 48 bytes of 0x-prefixed hex");
  return pk;
}

/** A slot or epoch: a safe integer >= 0, or VigilError bad_request INVALID_NUMBER. */
export function checkEpochOrSlot(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0) throw badRequest("INVALID_NUMBER", `${what} must be an integer in 0..${Number.MAX_SAFE_INTEGER}`);
  return n;
}

/** A 32-byte root or null (all-zero → null), or VigilError bad_request INVALID_ROOT. */
export function checkRoot(root: Uint8Array | null, what: string): SigningRoot {
  if (root !== null && (!(root instanceof Uint8Array) || root.length !== 32)) throw badRequest("INVALID_ROOT", `${what} must be 32 bytes`);
  return normaliseSigningRoot(root);
}

/** Validators pruned per transaction (each transaction holds off check-and-record for its duration). */
export const PRUNE_CHUNK = 250;

/** A prune setting checked: whole numbers of epochs and slots, at least 1 each (the newest record always stays). */
export function checkPruneSetting(keep: PruneSetting): PruneSetting {
  const n = (v: unknown, what: string): number => {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) throw badRequest("INVALID_PRUNE", `${what} to keep must be an integer >= 1`);
    return v;
  };
  if (typeof keep !== "object" || keep === null) throw badRequest("INVALID_PRUNE", "prune needs the epochs and slots to keep");
  return { epochs: n(keep.epochs, "epochs"), slots: n(keep.slots, "slots") };
}

/** The scope column of a global watermark (every validator). */
export const GLOBAL_WATERMARK = "*";

/** A watermark setting checked and normalised: scope is a canonical pubkey or GLOBAL_WATERMARK; absent numbers → null. */
export function checkWatermarkSetting(w: WatermarkSetting): { kind: "low" | "high"; scope: string; slot: number | null; epoch: number | null } {
  if (typeof w !== "object" || w === null || (w.kind !== "low" && w.kind !== "high")) {
    throw badRequest("INVALID_WATERMARK", 'watermark kind must be "low" or "high"');
  }
  const opt = (n: number | null | undefined, what: string): number | null => (n === undefined || n === null ? null : checkEpochOrSlot(n, what));
  return {
    kind: w.kind,
    scope: w.pubkey === undefined || w.pubkey === null ? GLOBAL_WATERMARK : checkPubkey(w.pubkey),
    slot: opt(w.slot, "watermark slot"),
    epoch: opt(w.epoch, "watermark epoch"),
  };
}

/** Sort watermarks for display: global first, then by pubkey; low before high. */
export function sortWatermarks(ws: Watermark[]): Watermark[] {
  const scope = (w: Watermark): string => (w.pubkey === null ? "" : w.pubkey);
  return ws.sort((a, b) => (scope(a) < scope(b) ? -1 : scope(a) > scope(b) ? 1 : a.kind === b.kind ? 0 : a.kind === "low" ? -1 : 1));
}

