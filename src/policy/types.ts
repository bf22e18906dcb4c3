/**
 * Shared types of the policy engine (src/policy), approvals and the audit log.
 * The engine is pure: it decides from these facts and a clock reading, nothing else.
 */
import type { RequestType } from "../eth2/request.js";

/** What the vault knows about a sign request once it is decoded and its signing root computed. */
export interface RequestFacts {
  type: RequestType;
  /** 0x lower-case hex BLS public key asked to sign. */
  pubkey: string;
  /** The client identity (a name from the policy's `clients`), or null when unauthenticated. */
  client: string | null;
  /** 0x hex signing root Vigil computed. */
  signingRoot: string;
  /** One-line human description (from the request module). */
  summary: string;
  /** Decoded fields the rules can match on (absent when the type has no such field). */
  fields: {
    slot?: bigint;
    epoch?: bigint;
    sourceEpoch?: bigint;
    targetEpoch?: bigint;
    validatorIndex?: bigint;
    feeRecipient?: string; // 0x lower-case hex, 20 bytes
    gasLimit?: bigint;
    timestamp?: bigint;
    withdrawalCredentials?: string; // 0x lower-case hex, 32 bytes
    amount?: bigint; // Gwei
  };
}

/** The clock and chain facts the clock rule needs. */
export interface ChainClock {
  /** Unix seconds of genesis; null when unknown (the clock rule then does not apply). */
  genesisTime: number | null;
  secondsPerSlot: number;
  slotsPerEpoch: number;
  /** Now, in ms since the Unix epoch. */
  nowMs: number;
}

export type RuleMode = "enforce" | "warn";
export type RuleAction = "allow" | "deny" | "require_approval";

/** The verdict of the policy for one request. */
export type PolicyDecision =
  | { outcome: "allow"; ruleId: string; warnings: PolicyWarning[] }
  | { outcome: "refuse"; ruleId: string; message: string; warnings: PolicyWarning[] }
  | { outcome: "approval_required"; ruleId: string; quorum: number; approvers: string[]; expirySeconds: number; warnings: PolicyWarning[] };

/** A rule in `mode: warn` that would have refused or required approval: logged and audited, then signed. */
export interface PolicyWarning {
  ruleId: string;
  message: string;
}

/** The id used when no rule matches (deny by default). */
export const DEFAULT_DENY_RULE = "default-deny";
