/**
 * The operator's signing policy: a YAML file (`vigil start --policy policy.yaml`), or the built-in
 * default (src/policy/default-policy.ts) when none is given. This module parses and validates it;
 * src/policy/evaluate.ts decides a request against it.
 *
 * Format, version 1 (every key is optional unless marked required):
 *
 * ```yaml
 * version: 1                          # required
 * groups:                             # named key groups: name -> list of BLS public keys
 *   operator-a: ["0x…48-byte pubkey", …]
 * clients:                            # client identities; when present, the signing API needs one (else 401)
 *   lodestar-a: { token_sha256: "<64 hex>" }             # SHA-256 of the bearer token
 *   automation: { tls_fingerprint_sha256: "<64 hex>" }   # SHA-256 of the client certificate (DER)
 * approvers:                          # Ed25519 public keys by name (base64 of the raw 32 bytes, or PEM SPKI)
 *   alice: "…"
 * approvals: { quorum: 2, expiry_seconds: 86400 }        # defaults for require_approval rules
 * policy_changes: { required_signatures: 2 }             # a new policy needs M approver signatures
 * rules:                              # required; ordered, first match wins, no match = refused
 *   - id: future-blocks               # required: stable, unique, [a-z0-9-] (1-64), not "default-deny"
 *     description: "…"                # free text, shown in refusal messages
 *     mode: enforce                   # or warn (default enforce); warn only with deny/require_approval
 *     match:                          # all conditions must hold (AND); list items are OR; absent = any
 *       types: [BLOCK, BLOCK_V2]      # request types (REQUEST_TYPES)
 *       keys: ["group:operator-a", "0x…"]
 *       clients: [lodestar-a]         # absent = any client, including none
 *       beyond_clock: { slots: 2 }    # or { epochs: 1 }, or both (either beyond matches)
 *       fee_recipient_not_in: ["0x…20 bytes"]
 *       gas_limit_outside: [30000000, 60000000]
 *       withdrawal_credentials_not_in: ["0x…32 bytes"]
 *     action: deny                    # required: allow | deny | require_approval
 *     approval: { quorum: 2, approvers: [alice, bob], expiry_seconds: 3600 }   # require_approval only
 * ```
 *
 * Details and choices:
 * - Every scalar is read as text (YAML failsafe schema), so `0x…` keys and hex digests need no
 *   quotes and are never mistaken for numbers. Integers are decimal digits (`_` separators allowed:
 *   `30_000_000`). Anchors/aliases, tags and several documents in one file are refused.
 * - Strict: an unknown key, a wrong type, a malformed value, a duplicate, or a reference to an
 *   undefined group, client or approver is INVALID_POLICY with `<file>:<line>:<col>: <yaml path>: why`.
 * - Names of groups, clients and approvers: 1-64 of `A-Za-z0-9_.-`, starting with a letter or a
 *   digit (the approver-key file naming). Rule ids: 1-64 of `a-z0-9-`.
 * - Public keys: "0x" + 96 hex digits (any case, kept lower-case), and the first byte must be that
 *   of a compressed, non-infinity BLS12-381 G1 point (0x80-0xbf). A key listed twice in one group is
 *   an error; a key may belong to several groups.
 * - Fee recipients: "0x" + 40 hex digits; mixed case must carry a valid EIP-55 checksum.
 *   Withdrawal credentials: "0x" + 64 hex digits (0x01/0x02 credentials are
 *   `0x01` + 11 zero bytes + the execution address).
 * - Digests (token_sha256, tls_fingerprint_sha256): 64 hex digits, optionally "0x"-prefixed or as
 *   32 colon-separated pairs (`openssl x509 -noout -fingerprint -sha256` output). A client may
 *   have both; two clients with the same token or certificate are an error. Bearer tokens should be
 *   long random strings (`openssl rand -hex 32`): only the hash is in the file.
 * - Field conditions (beyond_clock, fee_recipient_not_in, gas_limit_outside,
 *   withdrawal_credentials_not_in) only match requests that carry the field; a rule whose `types`
 *   carry none of them could never match and is an error. `beyond_clock.slots` compares the
 *   message slot (blocks, attestations, aggregates, sync committee messages…); `epochs` compares an
 *   attestation's target epoch, or the epoch of a RANDAO_REVEAL or VOLUNTARY_EXIT.
 * - Lists in conditions must not be empty (remove the condition to match anything).
 * - Approvals: `approvals.quorum` defaults to 1 and `expiry_seconds` to 86400; a rule's `approval`
 *   overrides either and may name a subset of approvers (default: all, in file order). A quorum
 *   larger than its approvers is an error, except when the policy defines no approvers at all:
 *   such a require_approval rule can never be approved (the built-in default's exits/deposits).
 * - `policy_changes.required_signatures` needs at least that many approvers.
 * - A rule after an enforce rule with an empty `match` can never be reached: error.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { toChecksumAddress } from "../keys/deposit.js";
import { Alias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Scalar, type YAMLMap, type YAMLSeq } from "yaml";
import { REQUEST_TYPES, type RequestType } from "../eth2/request.js";
import { VigilError } from "../errors.js";
import { APPROVER_NAME, canonicalApproverPublicKey } from "./approver-keys.js";
import { DEFAULT_DENY_RULE, type RuleAction, type RuleMode } from "./types.js";

export const POLICY_VERSION = 1;

/** A client identity of the signing API (same shape as src/server/clients.ts's ClientIdentity). */
export interface PolicyClient {
  name: string;
  /** SHA-256 of the bearer token: 64 lower-case hex digits. */
  tokenSha256?: string;
  /** SHA-256 of the client certificate (DER): 64 lower-case hex digits. */
  tlsFingerprintSha256?: string;
}

export interface PolicyApprover {
  name: string;
  /** Canonical form: base64 of the raw 32-byte Ed25519 public key. */
  publicKey: string;
}

/** One entry of a rule's `keys`: a public key, or `group:<name>` with the group's keys. */
export interface KeyRef {
  ref: string;
  group: string | null;
  keys: ReadonlySet<string>;
}

export interface RuleMatch {
  types: ReadonlySet<RequestType> | null;
  keys: readonly KeyRef[] | null;
  clients: ReadonlySet<string> | null;
  beyondClock: { slots: bigint | null; epochs: bigint | null } | null;
  feeRecipientNotIn: ReadonlySet<string> | null;
  gasLimitOutside: readonly [bigint, bigint] | null;
  withdrawalCredentialsNotIn: ReadonlySet<string> | null;
}

export interface ApprovalSpec {
  quorum: number;
  /** Names of the approvers whose signatures count (may be empty: then it cannot be approved). */
  approvers: readonly string[];
  expirySeconds: number;
}

export interface PolicyRule {
  id: string;
  description: string | null;
  mode: RuleMode;
  action: RuleAction;
  match: RuleMatch;
  /** Resolved approval parameters (require_approval rules only). */
  approval: ApprovalSpec | null;
  /** Line of the rule in the policy file (1-based), for messages. */
  line: number;
}

export interface Policy {
  version: 1;
  /** Where the policy came from (a file path, or "built-in default"). */
  source: string;
  /** SHA-256 (hex) of the exact policy text: identifies the policy in the audit log and approvals. */
  sha256: string;
  groups: ReadonlyMap<string, ReadonlySet<string>>;
  clients: ReadonlyMap<string, PolicyClient>;
  approvers: ReadonlyMap<string, PolicyApprover>;
  approvals: { quorum: number; expirySeconds: number };
  policyChanges: { requiredSignatures: number } | null;
  rules: readonly PolicyRule[];
}

/** Which request types carry the fields a condition needs (mirrors the request modules' `fields`). */
export const TYPES_WITH_SLOT: ReadonlySet<RequestType> = new Set<RequestType>([
  "BLOCK",
  "BLOCK_V2",
  "ATTESTATION",
  "AGGREGATION_SLOT",
  "AGGREGATE_AND_PROOF",
  "AGGREGATE_AND_PROOF_V2",
  "SYNC_COMMITTEE_MESSAGE",
  "SYNC_COMMITTEE_SELECTION_PROOF",
  "SYNC_COMMITTEE_CONTRIBUTION_AND_PROOF",
]);
/** Types whose clock epoch is known: ATTESTATION (target epoch), RANDAO_REVEAL and VOLUNTARY_EXIT (epoch). */
export const TYPES_WITH_EPOCH: ReadonlySet<RequestType> = new Set<RequestType>(["ATTESTATION", "RANDAO_REVEAL", "VOLUNTARY_EXIT"]);
const TYPES_WITH_REGISTRATION: ReadonlySet<RequestType> = new Set<RequestType>(["VALIDATOR_REGISTRATION"]);
const TYPES_WITH_CREDENTIALS: ReadonlySet<RequestType> = new Set<RequestType>(["DEPOSIT"]);

const RULE_ID = /^[a-z0-9][a-z0-9-]{0,63}$/;
const NAME = APPROVER_NAME;
const MAX_U64 = (1n << 64n) - 1n;
const DEFAULT_QUORUM = 1;
const DEFAULT_EXPIRY_SECONDS = 86_400;
const MAX_EXPIRY_SECONDS = 31_536_000;

type Path = (string | number)[];
const showPath = (p: Path): string => p.map((s, i) => (typeof s === "number" ? `[${s}]` : i === 0 ? s : `.${s}`)).join("");

/** Reads the YAML node tree with positions, so every error names the file, line and path. */
class Reader {
  constructor(
    readonly source: string,
    private readonly lines: LineCounter,
  ) {}

  fail(node: Node | null | undefined, path: Path, why: string, offset?: number): never {
    const at = offset ?? node?.range?.[0];
    const pos = at === undefined ? "" : (({ line, col }) => `:${line}:${col}`)(this.lines.linePos(at));
    const where = path.length ? `${showPath(path)}: ` : "";
    throw new VigilError("bad_request", "INVALID_POLICY", `${this.source}${pos}: ${where}${why}`);
  }

  line(node: Node | null | undefined): number {
    const at = node?.range?.[0];
    return at === undefined ? 0 : this.lines.linePos(at).line;
  }

  private check(node: unknown, path: Path, parent?: Node): Node {
    if (node === null || node === undefined) this.fail(parent, path, "a value is required");
    if (node instanceof Alias) this.fail(node as Node, path, "anchors and aliases are not supported");
    return node as Node;
  }

  /** A mapping with string keys; unknown keys and missing required ones are errors. */
  map(
    node: unknown,
    path: Path,
    allowed: readonly string[],
    required: readonly string[] = [],
    parent?: Node,
  ): Map<string, { node: Node; keyNode: Node }> {
    const n = this.check(node, path, parent);
    if (!isMap(n)) this.fail(n, path, `expected a mapping${allowed.length ? ` (keys: ${allowed.join(", ")})` : ""}`);
    const out = new Map<string, { node: Node; keyNode: Node }>();
    for (const pair of (n as YAMLMap).items) {
      const k = pair.key as Node;
      if (!isScalar(k) || typeof k.value !== "string") this.fail(k, path, "keys must be plain strings");
      const key = (k as Scalar).value as string;
      if (allowed.length && !allowed.includes(key)) {
        this.fail(k, [...path, key], `unknown key "${key}" (expected one of: ${allowed.join(", ")})`);
      }
      if (out.has(key)) this.fail(k, [...path, key], "duplicate key");
      out.set(key, { node: this.check(pair.value, [...path, key], k), keyNode: k });
    }
    for (const r of required) if (!out.has(r)) this.fail(n, path, `"${r}" is required`);
    return out;
  }

  seq(node: unknown, path: Path, opts: { nonEmpty?: boolean } = {}): Node[] {
    const n = this.check(node, path);
    if (!isSeq(n)) this.fail(n, path, "expected a list");
    const items = (n as YAMLSeq).items.map((x, i) => this.check(x, [...path, i], n));
    if (opts.nonEmpty && items.length === 0) this.fail(n, path, "the list is empty (remove the condition to match anything)");
    return items;
  }

  string(node: unknown, path: Path): string {
    const n = this.check(node, path);
    if (!isScalar(n) || typeof n.value !== "string") this.fail(n, path, "expected a string");
    const s = (n as Scalar).value as string;
    if (s === "") this.fail(n, path, "a value is required");
    return s;
  }

  /** A non-negative decimal integer (underscores allowed between digits), at most `max`. */
  integer(node: unknown, path: Path, min: bigint, max: bigint): bigint {
    const s = this.string(node, path);
    if (!/^[0-9]+(_[0-9]+)*$/.test(s)) this.fail(node as Node, path, `expected a non-negative decimal integer, got "${s}"`);
    const digits = s.replace(/_/g, "");
    if (digits.length > 1 && digits.startsWith("0")) this.fail(node as Node, path, `leading zeros are not allowed ("${s}")`);
    const v = BigInt(digits);
    if (v < min || v > max) this.fail(node as Node, path, `${s} is out of range [${min}, ${max}]`);
    return v;
  }

  small(node: unknown, path: Path, min: number, max: number): number {
    return Number(this.integer(node, path, BigInt(min), BigInt(max)));
  }

  name(node: Node, path: Path, what: string): string {
    const s = this.string(node, path);
    if (!NAME.test(s)) {
      this.fail(node, path, `invalid ${what} name "${s}": use 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit`);
    }
    return s;
  }

  /** "0x" + 2*bytes hex digits, returned lower-case. */
  hex(node: Node, path: Path, bytes: number, what: string): string {
    const s = this.string(node, path);
    if (!/^0x/i.test(s)) this.fail(node, path, `${what} must start with "0x", got "${s}"`);
    const h = s.slice(2);
    if (!/^[0-9a-fA-F]*$/.test(h)) this.fail(node, path, `${what} is not hex: "${s}"`);
    if (h.length !== bytes * 2) this.fail(node, path, `${what} must be ${bytes} bytes (${bytes * 2} hex digits), got ${h.length} hex digits`);
    return "0x" + h.toLowerCase();
  }

  pubkey(node: Node, path: Path): string {
    const k = this.hex(node, path, 48, "a BLS public key");
    const first = parseInt(k.slice(2, 4), 16);
    if ((first & 0xc0) !== 0x80) {
      this.fail(node, path, `not a compressed BLS12-381 public key (its first byte must be 0x80-0xbf): ${k.slice(0, 10)}…`);
    }
    return k;
  }

  address(node: Node, path: Path): string {
    const raw = this.string(node, path);
    const a = this.hex(node, path, 20, "an execution address");
    const h = raw.slice(2);
    if (h !== h.toLowerCase() && h !== h.toUpperCase()) {
      const expected = toChecksumAddress(a.slice(2));
      if (expected.slice(2) !== h) this.fail(node, path, `bad EIP-55 checksum in ${raw} (did you mean ${expected}?)`);
    }
    return a;
  }

  /** A SHA-256 digest: 64 hex digits, "0x"-prefixed or not, or 32 colon-separated pairs. */
  digest(node: Node, path: Path): string {
    const s = this.string(node, path);
    let h = s.replace(/^0x/i, "");
    if (h.includes(":")) {
      if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){31}$/.test(h)) this.fail(node, path, `expected 32 colon-separated hex pairs, got "${s}"`);
      h = h.replace(/:/g, "");
    }
    if (!/^[0-9a-fA-F]{64}$/.test(h)) this.fail(node, path, `expected a SHA-256 digest (64 hex digits), got "${s}"`);
    return h.toLowerCase();
  }
}

const TOP_KEYS = ["version", "groups", "clients", "approvers", "approvals", "policy_changes", "rules"] as const;
const RULE_KEYS = ["id", "description", "mode", "match", "action", "approval"] as const;
const MATCH_KEYS = [
  "types",
  "keys",
  "clients",
  "beyond_clock",
  "fee_recipient_not_in",
  "gas_limit_outside",
  "withdrawal_credentials_not_in",
] as const;
const MODES: readonly RuleMode[] = ["enforce", "warn"];
const ACTIONS: readonly RuleAction[] = ["allow", "deny", "require_approval"];

/**
 * Parses and validates a policy file's text. `source` (a path, or a label) names the file in
 * error messages and in `Policy.source`. Throws VigilError bad_request/INVALID_POLICY.
 */
export function parsePolicy(yamlText: string, source: string): Policy {
  const lines = new LineCounter();
  const doc = parseDocument(yamlText, { schema: "failsafe", lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const r: Reader = new Reader(source, lines);
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) r.fail(null, [], `not valid YAML: ${problem.message}`, problem.pos[0]);
  if (doc.contents === null) r.fail(null, [], "the policy file is empty (it needs at least `version: 1` and `rules`)");

  const top = r.map(doc.contents, [], TOP_KEYS, ["version", "rules"]);
  const v = top.get("version")!;
  if (r.string(v.node, ["version"]) !== String(POLICY_VERSION)) {
    r.fail(v.node, ["version"], `unsupported policy version "${r.string(v.node, ["version"])}" (this Vigil reads version ${POLICY_VERSION})`);
  }

  // groups
  const groups = new Map<string, Set<string>>();
  const g = top.get("groups");
  if (g) {
    for (const [name, { node, keyNode }] of r.map(g.node, ["groups"], [])) {
      r.name(keyNode, ["groups", name], "group");
      const keys = new Set<string>();
      r.seq(node, ["groups", name]).forEach((k, i) => {
        const pk = r.pubkey(k, ["groups", name, i]);
        if (keys.has(pk)) r.fail(k, ["groups", name, i], `duplicate public key ${pk.slice(0, 10)}… in group "${name}"`);
        keys.add(pk);
      });
      groups.set(name, keys);
    }
  }

  // clients
  const clients = new Map<string, PolicyClient>();
  const c = top.get("clients");
  if (c) {
    const seenToken = new Map<string, string>();
    const seenCert = new Map<string, string>();
    for (const [name, { node, keyNode }] of r.map(c.node, ["clients"], [])) {
      r.name(keyNode, ["clients", name], "client");
      const path = ["clients", name];
      const fields = r.map(node, path, ["token_sha256", "tls_fingerprint_sha256"]);
      if (fields.size === 0) r.fail(node, path, "a client needs token_sha256 and/or tls_fingerprint_sha256");
      const client: PolicyClient = { name };
      const t = fields.get("token_sha256");
      if (t) {
        client.tokenSha256 = r.digest(t.node, [...path, "token_sha256"]);
        const other = seenToken.get(client.tokenSha256);
        if (other) r.fail(t.node, [...path, "token_sha256"], `the same token as client "${other}"`);
        seenToken.set(client.tokenSha256, name);
      }
      const f = fields.get("tls_fingerprint_sha256");
      if (f) {
        client.tlsFingerprintSha256 = r.digest(f.node, [...path, "tls_fingerprint_sha256"]);
        const other = seenCert.get(client.tlsFingerprintSha256);
        if (other) r.fail(f.node, [...path, "tls_fingerprint_sha256"], `the same certificate as client "${other}"`);
        seenCert.set(client.tlsFingerprintSha256, name);
      }
      clients.set(name, client);
    }
  }

  // approvers
  const approvers = new Map<string, PolicyApprover>();
  const a = top.get("approvers");
  if (a) {
    const seen = new Map<string, string>();
    for (const [name, { node, keyNode }] of r.map(a.node, ["approvers"], [])) {
      r.name(keyNode, ["approvers", name], "approver");
      const text = r.string(node, ["approvers", name]);
      let publicKey: string;
      try {
        publicKey = canonicalApproverPublicKey(text);
      } catch (e) {
        r.fail(node, ["approvers", name], e instanceof VigilError ? e.message : String(e));
      }
      const other = seen.get(publicKey);
      // Two names for one key would let one person count twice towards a quorum.
      if (other) r.fail(node, ["approvers", name], `the same public key as approver "${other}"`);
      seen.set(publicKey, name);
      approvers.set(name, { name, publicKey });
    }
  }
  const approverNames = [...approvers.keys()];

  // approvals (defaults)
  const approvals = { quorum: DEFAULT_QUORUM, expirySeconds: DEFAULT_EXPIRY_SECONDS };
  const ap = top.get("approvals");
  if (ap) {
    const m = r.map(ap.node, ["approvals"], ["quorum", "expiry_seconds"]);
    const q = m.get("quorum");
    if (q) {
      approvals.quorum = r.small(q.node, ["approvals", "quorum"], 1, 1000);
      if (approverNames.length > 0 && approvals.quorum > approverNames.length) {
        r.fail(q.node, ["approvals", "quorum"], `quorum ${approvals.quorum} is more than the ${approverNames.length} approvers defined`);
      }
    }
    const e = m.get("expiry_seconds");
    if (e) approvals.expirySeconds = r.small(e.node, ["approvals", "expiry_seconds"], 1, MAX_EXPIRY_SECONDS);
  }

  // policy_changes
  let policyChanges: Policy["policyChanges"] = null;
  const pc = top.get("policy_changes");
  if (pc) {
    const m = r.map(pc.node, ["policy_changes"], ["required_signatures"], ["required_signatures"]);
    const n = m.get("required_signatures")!.node;
    const requiredSignatures = r.small(n, ["policy_changes", "required_signatures"], 1, 1000);
    if (requiredSignatures > approverNames.length) {
      r.fail(n, ["policy_changes", "required_signatures"], `${requiredSignatures} signatures required but only ${approverNames.length} approvers are defined`);
    }
    policyChanges = { requiredSignatures };
  }

  // rules
  const rules: PolicyRule[] = [];
  const ruleIds = new Map<string, number>();
  let catchAll: PolicyRule | null = null;
  r.seq(top.get("rules")!.node, ["rules"]).forEach((node, i) => {
    const path: Path = ["rules", i];
    const m = r.map(node, path, RULE_KEYS, ["id", "action"]);
    const idNode = m.get("id")!.node;
    const id = r.string(idNode, [...path, "id"]);
    if (!RULE_ID.test(id)) r.fail(idNode, [...path, "id"], `invalid rule id "${id}": use 1-64 of a-z, 0-9 and '-', starting with a letter or digit`);
    if (id === DEFAULT_DENY_RULE) r.fail(idNode, [...path, "id"], `"${DEFAULT_DENY_RULE}" is reserved for requests no rule matches`);
    if (ruleIds.has(id)) r.fail(idNode, [...path, "id"], `duplicate rule id "${id}" (also rules[${ruleIds.get(id)}])`);
    ruleIds.set(id, i);
    if (catchAll) r.fail(node, path, `rule "${id}" can never be reached: rule "${catchAll.id}" above matches every request`);

    const d = m.get("description");
    const description = d ? r.string(d.node, [...path, "description"]) : null;
    const actionNode = m.get("action")!.node;
    const action = r.string(actionNode, [...path, "action"]) as RuleAction;
    if (!ACTIONS.includes(action)) r.fail(actionNode, [...path, "action"], `unknown action "${action}" (expected one of: ${ACTIONS.join(", ")})`);
    let mode: RuleMode = "enforce";
    const mo = m.get("mode");
    if (mo) {
      mode = r.string(mo.node, [...path, "mode"]) as RuleMode;
      if (!MODES.includes(mode)) r.fail(mo.node, [...path, "mode"], `unknown mode "${mode}" (expected one of: ${MODES.join(", ")})`);
      if (mode === "warn" && action === "allow") {
        r.fail(mo.node, [...path, "mode"], "mode: warn applies to deny and require_approval rules only (an allow rule already signs)");
      }
    }
    const mt = m.get("match");
    const match = mt ? parseMatch(r, mt.node, [...path, "match"], groups, clients) : emptyMatch();

    let approval: ApprovalSpec | null = null;
    const apn = m.get("approval");
    if (apn && action !== "require_approval") r.fail(apn.keyNode, [...path, "approval"], "only a require_approval rule takes an approval section");
    if (action === "require_approval") {
      approval = { quorum: approvals.quorum, approvers: approverNames, expirySeconds: approvals.expirySeconds };
      let quorumNode: Node | null = null;
      if (apn) {
        const ap = [...path, "approval"];
        const am = r.map(apn.node, ap, ["quorum", "approvers", "expiry_seconds"]);
        const q = am.get("quorum");
        if (q) {
          approval.quorum = r.small(q.node, [...ap, "quorum"], 1, 1000);
          quorumNode = q.node;
        }
        const names = am.get("approvers");
        if (names) {
          const list: string[] = [];
          r.seq(names.node, [...ap, "approvers"], { nonEmpty: true }).forEach((n, j) => {
            const name = r.string(n, [...ap, "approvers", j]);
            if (!approvers.has(name)) r.fail(n, [...ap, "approvers", j], `unknown approver "${name}"${known(approverNames)}`);
            if (list.includes(name)) r.fail(n, [...ap, "approvers", j], `approver "${name}" is listed twice`);
            list.push(name);
          });
          approval.approvers = list;
        }
        const e = am.get("expiry_seconds");
        if (e) approval.expirySeconds = r.small(e.node, [...ap, "expiry_seconds"], 1, MAX_EXPIRY_SECONDS);
      }
      if (approval.approvers.length > 0 && approval.quorum > approval.approvers.length) {
        r.fail(quorumNode ?? apn?.node ?? node, [...path, "approval", "quorum"], `quorum ${approval.quorum} is more than its ${approval.approvers.length} approvers`);
      }
    }
    const rule: PolicyRule = { id, description, mode, action, match, approval, line: r.line(node) };
    if (mode === "enforce" && isEmptyMatch(match)) catchAll = rule;
    rules.push(rule);
  });

  return {
    version: 1,
    source,
    sha256: createHash("sha256").update(yamlText, "utf8").digest("hex"),
    groups,
    clients,
    approvers,
    approvals,
    policyChanges,
    rules,
  };
}

const known = (names: readonly string[]): string => (names.length ? ` (defined: ${names.join(", ")})` : " (none are defined)");

function emptyMatch(): RuleMatch {
  return {
    types: null,
    keys: null,
    clients: null,
    beyondClock: null,
    feeRecipientNotIn: null,
    gasLimitOutside: null,
    withdrawalCredentialsNotIn: null,
  };
}

function isEmptyMatch(m: RuleMatch): boolean {
  return Object.values(m).every((v) => v === null);
}

function parseMatch(
  r: Reader,
  node: Node,
  path: Path,
  groups: ReadonlyMap<string, ReadonlySet<string>>,
  clients: ReadonlyMap<string, PolicyClient>,
): RuleMatch {
  const m = r.map(node, path, MATCH_KEYS);
  const out = emptyMatch();

  const t = m.get("types");
  if (t) {
    const types = new Set<RequestType>();
    r.seq(t.node, [...path, "types"], { nonEmpty: true }).forEach((n, i) => {
      const s = r.string(n, [...path, "types", i]);
      if (!(REQUEST_TYPES as readonly string[]).includes(s)) {
        r.fail(n, [...path, "types", i], `unknown request type "${s}" (expected one of: ${REQUEST_TYPES.join(", ")})`);
      }
      types.add(s as RequestType);
    });
    out.types = types;
  }

  const k = m.get("keys");
  if (k) {
    const refs: KeyRef[] = [];
    r.seq(k.node, [...path, "keys"], { nonEmpty: true }).forEach((n, i) => {
      const p = [...path, "keys", i];
      const s = r.string(n, p);
      if (s.startsWith("group:")) {
        const name = s.slice("group:".length);
        const keys = groups.get(name);
        if (!keys) r.fail(n, p, `unknown group "${name}"${known([...groups.keys()])}`);
        refs.push({ ref: s, group: name, keys });
      } else {
        if (!/^0x/i.test(s)) r.fail(n, p, `expected a public key "0x…" or "group:<name>", got "${s}"`);
        const pk = r.pubkey(n, p);
        refs.push({ ref: pk, group: null, keys: new Set([pk]) });
      }
    });
    out.keys = refs;
  }

  const c = m.get("clients");
  if (c) {
    const names = new Set<string>();
    r.seq(c.node, [...path, "clients"], { nonEmpty: true }).forEach((n, i) => {
      const s = r.string(n, [...path, "clients", i]);
      if (!clients.has(s)) r.fail(n, [...path, "clients", i], `unknown client "${s}"${known([...clients.keys()])}`);
      names.add(s);
    });
    out.clients = names;
  }

  /** A field condition must be satisfiable by at least one of the rule's types. */
  const needs = (key: string, keyNode: Node, carriers: ReadonlySet<RequestType>, what: string): void => {
    if (out.types && ![...out.types].some((x) => carriers.has(x))) {
      r.fail(keyNode, [...path, key], `can never match: none of the rule's types has ${what} (${[...carriers].join(", ")} do)`);
    }
  };

  const b = m.get("beyond_clock");
  if (b) {
    const p = [...path, "beyond_clock"];
    const bm = r.map(b.node, p, ["slots", "epochs"]);
    if (bm.size === 0) r.fail(b.node, p, "give slots and/or epochs");
    const s = bm.get("slots");
    const e = bm.get("epochs");
    const slots = s ? r.integer(s.node, [...p, "slots"], 0n, 1_000_000n) : null;
    const epochs = e ? r.integer(e.node, [...p, "epochs"], 0n, 100_000n) : null;
    if (out.types) {
      const ok = [...out.types].some((x) => (s && TYPES_WITH_SLOT.has(x)) || (e && TYPES_WITH_EPOCH.has(x)));
      if (!ok) {
        r.fail(b.keyNode, p, `can never match: slots apply to ${[...TYPES_WITH_SLOT].join(", ")}; epochs to ${[...TYPES_WITH_EPOCH].join(", ")}`);
      }
    }
    out.beyondClock = { slots, epochs };
  }

  const f = m.get("fee_recipient_not_in");
  if (f) {
    needs("fee_recipient_not_in", f.keyNode, TYPES_WITH_REGISTRATION, "a fee recipient");
    const p = [...path, "fee_recipient_not_in"];
    out.feeRecipientNotIn = new Set(r.seq(f.node, p, { nonEmpty: true }).map((n, i) => r.address(n, [...p, i])));
  }

  const gl = m.get("gas_limit_outside");
  if (gl) {
    needs("gas_limit_outside", gl.keyNode, TYPES_WITH_REGISTRATION, "a gas limit");
    const p = [...path, "gas_limit_outside"];
    const items = r.seq(gl.node, p);
    if (items.length !== 2) r.fail(gl.node, p, "expected [min, max]");
    const lo = r.integer(items[0], [...p, 0], 0n, MAX_U64);
    const hi = r.integer(items[1], [...p, 1], 0n, MAX_U64);
    if (lo > hi) r.fail(gl.node, p, `min ${lo} is greater than max ${hi}`);
    out.gasLimitOutside = [lo, hi];
  }

  const w = m.get("withdrawal_credentials_not_in");
  if (w) {
    needs("withdrawal_credentials_not_in", w.keyNode, TYPES_WITH_CREDENTIALS, "withdrawal credentials");
    const p = [...path, "withdrawal_credentials_not_in"];
    out.withdrawalCredentialsNotIn = new Set(r.seq(w.node, p, { nonEmpty: true }).map((n, i) => r.hex(n, [...p, i], 32, "withdrawal credentials")));
  }
  return out;
}

// ---- for the HTTP layer ----

/** True when the policy names clients: every sign request must then identify as one of them (else 401). */
export function policyRequiresClients(policy: Policy): boolean {
  return policy.clients.size > 0;
}

/** Compares two equal-length hex digests in constant time. */
function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === 32 && y.length === 32 && timingSafeEqual(x, y);
}

/**
 * The client whose token this is (by SHA-256 of the token), or null. Every client is compared,
 * in constant time, whatever matches, so timing reveals neither which client nor how close.
 */
export function clientForToken(policy: Policy, token: string): string | null {
  if (typeof token !== "string" || token === "") return null;
  const digest = createHash("sha256").update(token, "utf8").digest("hex");
  let found: string | null = null;
  for (const c of policy.clients.values()) {
    if (c.tokenSha256 !== undefined && sameDigest(c.tokenSha256, digest) && found === null) found = c.name;
  }
  return found;
}

/**
 * The client whose TLS certificate has this SHA-256 fingerprint, or null. `fingerprint` is hex,
 * with or without colons, any case: Node's `socket.getPeerCertificate().fingerprint256` works as is
 * (or `createHash("sha256").update(cert.raw).digest("hex")`).
 */
export function clientForFingerprint(policy: Policy, fingerprint: string): string | null {
  if (typeof fingerprint !== "string") return null;
  const fp = fingerprint.replace(/^0x/i, "").replace(/:/g, "").toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(fp)) return null;
  let found: string | null = null;
  for (const c of policy.clients.values()) {
    if (c.tlsFingerprintSha256 !== undefined && sameDigest(c.tlsFingerprintSha256, fp) && found === null) found = c.name;
  }
  return found;
}
