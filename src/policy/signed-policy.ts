/**
 * Signed policy changes. When the RUNNING policy says
 *
 *     policy_changes:
 *       required_signatures: 2
 *
 * a new policy file is accepted only if it carries valid signatures by at least that many distinct
 * approvers of the RUNNING policy (never of the new file: a compromised host could list its own
 * key there). So a host that can edit the policy file cannot loosen the rules by itself.
 *
 * What is signed: the change from the running policy to the new one, as the SHA-256 of the exact
 * bytes of each file (no YAML normalisation; any edit, even whitespace, needs new signatures), in
 * the message (UTF-8, no trailing newline)
 *
 *     "vigil-policy-v2\n" + <previous sha256> + "\n" + <new sha256>   (64 lower-case hex characters each)
 *
 * Binding the previous policy means signatures approve one change: an older signed policy cannot
 * be put back later with its old signatures (it was signed as a change from another policy).
 * Signature files of the first format ("vigil-policy-v1", the new digest alone) are refused.
 *
 * The domain differs from approval messages ("vigil-approval-v1", "vigil-rejection-v1"), so no
 * signature can be reused across the two.
 *
 * Detached signature file `<policy file>.sig.json` (JSON):
 *
 *     { "previous_sha256": "<64 hex>", "policy_sha256": "<64 hex>",
 *       "signatures": [ { "approver": "<name>", "signature": "<base64 Ed25519 signature, 64 bytes>" }, … ] }
 *
 * `vigil policy sign` creates it or adds/replaces the signer's entry; `vigil policy verify` checks it.
 */
import { createHash, type KeyObject } from "node:crypto";
import { parse as parseYaml } from "yaml";
import { VigilError } from "../errors.js";
import { checkApproverName, parseApproverPublicKey, publicKeyBase64, signApproval, verifyApproval } from "./approver-keys.js";

export const POLICY_SIGNATURE_DOMAIN = "vigil-policy-v2";
export const SIGNATURE_FILE_SUFFIX = ".sig.json";

export interface PolicySignature {
  approver: string;
  signature: string;
}

export interface PolicySignatureFile {
  /** The running policy this change is from. */
  previous_sha256: string;
  policy_sha256: string;
  signatures: PolicySignature[];
}

export interface PolicyVerification {
  /** Digest matches and at least `required` distinct approvers of the running policy signed validly. */
  ok: boolean;
  /** Names of the approvers whose signature counts. */
  valid: string[];
  /** One line per thing wrong (digest, unknown approver, bad or duplicate signature, too few). */
  problems: string[];
}

/** The `<policy>.sig.json` beside a policy file. */
export const signatureFileFor = (policyFile: string): string => policyFile + SIGNATURE_FILE_SUFFIX;

const bytes = (text: string | Uint8Array): Buffer => (typeof text === "string" ? Buffer.from(text, "utf8") : Buffer.from(text));

/** SHA-256 of the exact bytes of the policy file (a string is taken as UTF-8), lower-case hex. */
export function policyDigest(yamlText: string | Uint8Array): string {
  return createHash("sha256").update(bytes(yamlText)).digest("hex");
}

/** The exact bytes approvers sign to approve the change from policy `previousSha256` to policy `sha256Hex`. */
export function policySignatureMessage(previousSha256: string, sha256Hex: string): Buffer {
  for (const d of [previousSha256, sha256Hex]) {
    if (!/^[0-9a-f]{64}$/.test(d)) throw new VigilError("bad_request", "INVALID_POLICY_DIGEST", `invalid policy digest ${JSON.stringify(d)}`);
  }
  return Buffer.from(`${POLICY_SIGNATURE_DOMAIN}\n${previousSha256}\n${sha256Hex}`, "utf8");
}

/** Approver `approverName`'s signature of the change from the policy of digest `previousSha256` to the policy text. */
export function signPolicy(yamlText: string | Uint8Array, privateKey: KeyObject, approverName: string, previousSha256: string): PolicySignature {
  checkApproverName(approverName);
  return { approver: approverName, signature: signApproval(privateKey, policySignatureMessage(previousSha256, policyDigest(yamlText))) };
}

/** Parses and shape-checks a signature file (text or parsed JSON). INVALID_POLICY_SIGNATURES when malformed. */
export function parsePolicySignatureFile(json: string | unknown): PolicySignatureFile {
  const bad = (why: string): VigilError => new VigilError("bad_request", "INVALID_POLICY_SIGNATURES", `invalid policy signature file: ${why}`);
  let doc: unknown = json;
  if (typeof json === "string") {
    try {
      doc = JSON.parse(json);
    } catch (e) {
      throw bad(`not JSON (${(e as Error).message})`);
    }
  }
  const d = doc as Partial<PolicySignatureFile> | null;
  if (!d || typeof d !== "object" || Array.isArray(d)) throw bad("not an object");
  if (typeof d.policy_sha256 !== "string" || !/^[0-9a-f]{64}$/.test(d.policy_sha256)) throw bad("policy_sha256 must be 64 lower-case hex characters");
  if (d.previous_sha256 === undefined) throw bad("no previous_sha256: signed in the first format (vigil-policy-v1), which does not name the policy it replaces; sign again");
  if (typeof d.previous_sha256 !== "string" || !/^[0-9a-f]{64}$/.test(d.previous_sha256)) throw bad("previous_sha256 must be 64 lower-case hex characters");
  if (!Array.isArray(d.signatures)) throw bad("signatures must be an array");
  for (const s of d.signatures) {
    if (!s || typeof s !== "object" || typeof s.approver !== "string" || typeof s.signature !== "string") {
      throw bad("each signature must be {approver: string, signature: string}");
    }
  }
  return { previous_sha256: d.previous_sha256, policy_sha256: d.policy_sha256, signatures: d.signatures.map((s) => ({ approver: s.approver, signature: s.signature })) };
}

/**
 * The signature file with `sig` (made for the change from `previousSha256`) added, replacing an
 * earlier signature by the same approver. `existing` must be for the same change
 * (POLICY_SIGNATURES_STALE otherwise: the policy, or the one it replaces, changed since the others signed).
 */
export function addPolicySignature(existing: PolicySignatureFile | null, yamlText: string | Uint8Array, sig: PolicySignature, previousSha256: string): PolicySignatureFile {
  const digest = policyDigest(yamlText);
  if (existing && existing.previous_sha256 !== previousSha256) {
    throw new VigilError(
      "conflict",
      "POLICY_SIGNATURES_STALE",
      `the existing signatures approve a change from another policy (sha256 ${existing.previous_sha256}, not ${previousSha256}); remove the signature file to start over`,
    );
  }
  if (existing && existing.policy_sha256 !== digest) {
    throw new VigilError(
      "conflict",
      "POLICY_SIGNATURES_STALE",
      `the existing signatures are for another version of the policy (sha256 ${existing.policy_sha256}, this one is ${digest}): ` +
        "the policy changed since they signed; remove the signature file to start over",
    );
  }
  const others = (existing?.signatures ?? []).filter((s) => s.approver !== sig.approver);
  return { previous_sha256: previousSha256, policy_sha256: digest, signatures: [...others, { approver: sig.approver, signature: sig.signature }] };
}

/**
 * Verifies a new policy's signatures. Only signatures by `approvers` (those of the CURRENTLY RUNNING
 * policy: name → public key, base64 raw or PEM) count, each approver once, over the change from
 * the running policy (`runningSha256`) to the digest of `yamlText` itself (the file's
 * `previous_sha256` and `policy_sha256` must match them too). `required` ≥ 1. Never throws for a
 * malformed signature file: that is a problem in the answer.
 */
export function verifyPolicySignatures(
  yamlText: string | Uint8Array,
  sigFileJson: string | unknown,
  approvers: Record<string, string>,
  required: number,
  runningSha256: string,
): PolicyVerification {
  if (!Number.isSafeInteger(required) || required < 1) {
    throw new VigilError("bad_request", "INVALID_REQUIRED_SIGNATURES", `required signatures must be a positive integer, not ${required}`);
  }
  const problems: string[] = [];
  const valid: string[] = [];
  const digest = policyDigest(yamlText);
  let file: PolicySignatureFile;
  try {
    file = parsePolicySignatureFile(sigFileJson);
  } catch (e) {
    return { ok: false, valid, problems: [(e as Error).message] };
  }
  const nApprovers = Object.keys(approvers).length;
  if (required > nApprovers) problems.push(`the running policy requires ${required} signatures but names only ${nApprovers} approvers`);
  if (file.policy_sha256 !== digest) {
    problems.push(`the signatures are for policy sha256 ${file.policy_sha256}, but this policy is ${digest}: it was edited after signing`);
    return { ok: false, valid, problems };
  }
  if (file.previous_sha256 !== runningSha256) {
    problems.push(`the signatures approve a change from policy sha256 ${file.previous_sha256}, but the running policy is ${runningSha256}`);
    return { ok: false, valid, problems };
  }
  const message = policySignatureMessage(runningSha256, digest);
  const seen = new Set<string>();
  const keysSeen = new Map<string, string>();
  for (const s of file.signatures) {
    if (!Object.prototype.hasOwnProperty.call(approvers, s.approver)) {
      problems.push(`signature by ${JSON.stringify(s.approver)}: not an approver of the running policy`);
      continue;
    }
    if (seen.has(s.approver)) {
      problems.push(`signature by ${s.approver}: ${s.approver} signed more than once (counted once)`);
      continue;
    }
    let key: KeyObject;
    try {
      key = parseApproverPublicKey(approvers[s.approver]);
    } catch (e) {
      problems.push(`signature by ${s.approver}: the running policy's key for ${s.approver} is invalid (${(e as Error).message})`);
      continue;
    }
    if (!verifyApproval(key, message, s.signature)) {
      problems.push(`signature by ${s.approver}: does not verify with ${s.approver}'s key in the running policy`);
      continue;
    }
    // One key listed under two names counts once.
    const raw = publicKeyBase64(key);
    const twin = keysSeen.get(raw);
    if (twin !== undefined) {
      problems.push(`signature by ${s.approver}: the same key as ${twin}'s (counted once)`);
      continue;
    }
    keysSeen.set(raw, s.approver);
    seen.add(s.approver);
    valid.push(s.approver);
  }
  if (valid.length < required) problems.push(`${valid.length} valid signature${valid.length === 1 ? "" : "s"} of the ${required} the running policy requires`);
  return { ok: valid.length >= required, valid, problems };
}

/** The approval settings of a policy file, read without the full policy parser. */
export interface ApproverSettings {
  /** SHA-256 of the policy file these settings were read from (a change from it is what approvers sign). */
  sha256: string;
  /** name → canonical public key (base64 raw 32 bytes). */
  approvers: Record<string, string>;
  /** `policy_changes.required_signatures`, or null when policy changes need no signatures. */
  requiredSignatures: number | null;
}

/**
 * Reads `approvers` and `policy_changes.required_signatures` from policy YAML (with the `yaml`
 * package; the rest of the file is ignored here). Accepted `approvers` forms:
 *
 *     approvers:                      approvers:
 *       alice: <base64 key>             - name: alice
 *       bob: { public_key: <key> }        public_key: <base64 key or PEM>
 */
export function readApproverSettings(yamlText: string | Uint8Array): ApproverSettings {
  const bad = (why: string): VigilError => new VigilError("bad_request", "INVALID_POLICY", `policy: ${why}`);
  let doc: unknown;
  try {
    doc = parseYaml(typeof yamlText === "string" ? yamlText : Buffer.from(yamlText).toString("utf8"));
  } catch (e) {
    throw bad(`not valid YAML (${(e as Error).message})`);
  }
  if (doc === null || doc === undefined) doc = {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw bad("the top level must be a mapping");
  const top = doc as Record<string, unknown>;
  const approvers: Record<string, string> = {};
  const add = (name: unknown, key: unknown): void => {
    if (typeof name !== "string") throw bad(`approver names must be strings, not ${JSON.stringify(name)}`);
    try {
      checkApproverName(name);
    } catch (e) {
      throw bad((e as Error).message);
    }
    if (Object.prototype.hasOwnProperty.call(approvers, name)) throw bad(`approver ${name} is listed twice`);
    const k = key !== null && typeof key === "object" && !Array.isArray(key) ? ((key as Record<string, unknown>).public_key ?? (key as Record<string, unknown>).publicKey ?? (key as Record<string, unknown>).key) : key;
    if (typeof k !== "string") throw bad(`approver ${name}: the public key must be a string`);
    let raw: string;
    try {
      raw = publicKeyBase64(parseApproverPublicKey(k));
    } catch (e) {
      throw bad(`approver ${name}: ${(e as Error).message}`);
    }
    const twin = Object.keys(approvers).find((n) => approvers[n] === raw);
    if (twin !== undefined) throw bad(`approver ${name}: the same public key as approver ${twin}`);
    approvers[name] = raw;
  };
  const list = top.approvers;
  if (Array.isArray(list)) {
    for (const a of list) {
      if (!a || typeof a !== "object" || Array.isArray(a)) throw bad("each item of approvers must be {name, public_key}");
      add((a as Record<string, unknown>).name, a);
    }
  } else if (list !== null && typeof list === "object") {
    for (const [name, key] of Object.entries(list as Record<string, unknown>)) add(name, key);
  } else if (list !== undefined && list !== null) {
    throw bad("approvers must be a mapping of name to public key, or a list");
  }
  let requiredSignatures: number | null = null;
  const pc = top.policy_changes;
  if (pc !== undefined && pc !== null) {
    if (typeof pc !== "object" || Array.isArray(pc)) throw bad("policy_changes must be a mapping");
    const r = (pc as Record<string, unknown>).required_signatures;
    if (r !== undefined && r !== null) {
      if (typeof r !== "number" || !Number.isSafeInteger(r) || r < 0) throw bad("policy_changes.required_signatures must be a non-negative integer");
      if (r > Object.keys(approvers).length) throw bad(`policy_changes.required_signatures is ${r} but only ${Object.keys(approvers).length} approvers are listed`);
      requiredSignatures = r === 0 ? null : r;
    }
  }
  return { sha256: policyDigest(yamlText), approvers, requiredSignatures };
}

/**
 * The check the policy loader runs before adopting `newYamlText`: when the running policy requires
 * signatures, the new text must carry enough valid ones (POLICY_SIGNATURES_REQUIRED otherwise, with
 * every problem in the message). `sigFileText` is the content of `<policy>.sig.json`, or null if absent.
 */
export function checkPolicyChange(newYamlText: string | Uint8Array, sigFileText: string | null, running: ApproverSettings): PolicyVerification | null {
  if (running.requiredSignatures === null) return null;
  if (sigFileText === null) {
    throw new VigilError(
      "bad_request",
      "POLICY_SIGNATURES_REQUIRED",
      `the running policy accepts a new policy only with ${running.requiredSignatures} approver signatures, and it has no signature file (vigil policy sign)`,
    );
  }
  const v = verifyPolicySignatures(newYamlText, sigFileText, running.approvers, running.requiredSignatures, running.sha256);
  if (!v.ok) throw new VigilError("bad_request", "POLICY_SIGNATURES_REQUIRED", `new policy refused: ${v.problems.join("; ")}`);
  return v;
}
