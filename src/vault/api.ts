/**
 * What the HTTP process may ask of the key vault. The vault (src/vault/service.ts) runs in its
 * own process in production (src/vault/child.ts, reached through src/vault/client.ts); tests
 * may run the same service in-process. Everything crossing this boundary is plain JSON:
 * typed requests in, signatures and statuses out. No key material ever crosses it.
 */
export interface SignOutcome {
  type: string;
  /** 0x-prefixed hex BLS signature. */
  signature: string;
  signingRoot: string;
  summary: string;
  /** The policy rule that allowed it, and any warn-mode rules that matched. */
  ruleId?: string;
  warnings?: { ruleId: string; message: string }[];
}

export interface KeyInfo {
  pubkey: string;
  /** Where the key comes from: "keystore" (a keystore directory, read-only), "sealed" (the key store), "dev". */
  source: "keystore" | "sealed" | "dev";
  /** Read-only keys (from a keystore directory) cannot be deleted through the API. */
  readonly: boolean;
  /** EIP-2334 derivation path, when the keystore named one. */
  path?: string;
}

export interface VaultStatus {
  /** True while a sealed key store waits for its passphrase: nothing is signed then. */
  locked: boolean;
  keys: number;
  dbUp: boolean;
  network: string;
  genesisValidatorsRoot: string | null;
  /** "single" without an HA group; else whether this instance holds the group's lease. */
  role: "single" | "active" | "standby";
  /** The HA fencing number while active. */
  fence: number | null;
  /** Client identities the policy admits (hashes only); null when the signing API is open. */
  clients: { name: string; tokenSha256?: string; tlsFingerprintSha256?: string }[] | null;
  /** What the vault did since it started (GET /metrics). */
  stats: VaultStats;
}

/** Counters (since the vault started) and gauges of the vault process, for GET /metrics. */
export interface VaultStats {
  process: { cpuSeconds: number; residentBytes: number; heapUsedBytes: number };
  /** Slashing protection: decisions, the group commits they shared, WAL fdatasyncs (SQLite). */
  protection: { decisions: number; groupCommits: number; walSyncs: number };
  /** BLS signing threads (0 when signing on the main thread): batches handed out, signatures in them, jobs waiting now. */
  bls: { threads: number; batches: number; signatures: number; queued: number };
  /** The audit log: entries, fdatasyncs, head anchor rewrites, the last durable entry's number (-1: empty). */
  audit: { records: number; syncs: number; anchorWrites: number; headSeq: number };
  /** History pruning (--prune-keep-epochs): runs that succeeded or failed, records deleted, when the last success ended (Unix seconds). */
  prune: { succeeded: number; failed: number; recordsDeleted: number; lastSuccessSeconds: number | null };
}

/** Keymanager API POST /eth/v1/keystores, per keystore. */
export interface ImportStatus {
  status: "imported" | "duplicate" | "error";
  message?: string;
}

/** Keymanager API DELETE /eth/v1/keystores, per pubkey. */
export interface DeleteStatus {
  status: "deleted" | "not_active" | "not_found" | "error";
  message?: string;
}

export interface VaultApi {
  listApprovals(): Promise<unknown[]>;
  getApproval(id: string): Promise<unknown>;
  approve(id: string, approver: string, signature: string): Promise<unknown>;
  reject(id: string, approver: string, signature: string): Promise<unknown>;
  /** `client`: the authenticated client identity (a policy `clients` name), or null. */
  sign(pubkey: string, body: unknown, client?: string | null): Promise<SignOutcome>;
  listKeys(): Promise<KeyInfo[]>;
  status(): Promise<VaultStatus>;
  /** Re-scan the keystore directory (and the sealed store). */
  reload(): Promise<{ errors: number }>;
  importKeystores(keystores: string[], passwords: string[], slashingProtection?: string): Promise<ImportStatus[]>;
  /** Stop signing with these keys, then return their EIP-3076 history (JSON text). */
  deleteKeys(pubkeys: string[]): Promise<{ statuses: DeleteStatus[]; slashingProtection: string }>;
  /**
   * The HTTP server is listening: once the vault is also unlocked, the instance has started, and a
   * new policy it runs is recorded as accepted (a start-up that fails before accepts nothing).
   */
  started(): Promise<void>;
}

/** Operations of the IPC protocol, one per VaultApi method. */
export const VAULT_OPS = [
  "sign",
  "listKeys",
  "status",
  "reload",
  "importKeystores",
  "deleteKeys",
  "listApprovals",
  "getApproval",
  "approve",
  "reject",
  "started",
] as const;
export type VaultOp = (typeof VAULT_OPS)[number];
