/** File names Vigil keeps in its data directory. */
export const DB_FILE = "slashing-protection.sqlite";
/** The sealed (one-unlock) key store. */
export const KEY_STORE_FILE = "keys.vigil";
/** Bearer token of the Keymanager API. */
export const API_TOKEN_FILE = "api-token.txt";
/** The hash-chained audit log and its head anchor. */
export const AUDIT_LOG_FILE = "audit.log";
export const AUDIT_HEAD_FILE = "audit.head";
/** The approval queue. */
export const APPROVALS_FILE = "approvals.json";
/** The policy in force, as last accepted (a change needs the approvers' signatures). */
export const ACCEPTED_POLICY_FILE = "policy.accepted.yaml";
/** SHA-256 (hex) of every policy text ever in force in this data dir, one per line. */
export const POLICY_HISTORY_FILE = "policy.history";
