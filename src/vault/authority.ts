/**
 * The vault's authority over each request: the operator's policy (with M-of-N approvals) and
 * the hash-chained audit log. Every decision that reaches the vault is audited before the
 * answer leaves.
 */
import fs from "node:fs";
import path from "node:path";
import { AuditLog, type AuditEntry } from "../audit/log.js";
import type { Network } from "../config/networks.js";
import { VigilError } from "../errors.js";
import { writeFileAtomicSync } from "../fs-atomic.js";
import type { SignRequest } from "../eth2/decode.js";
import { ApprovalQueue } from "../policy/approvals.js";
import { defaultPolicy } from "../policy/default-policy.js";
import { evaluatePolicy } from "../policy/evaluate.js";
import { parsePolicy, type Policy } from "../policy/policy.js";
import { checkPolicyChange, policyDigest, readApproverSettings, signatureFileFor } from "../policy/signed-policy.js";
import type { PolicyWarning, RequestFacts } from "../policy/types.js";

import { ACCEPTED_POLICY_FILE, POLICY_HISTORY_FILE } from "../config/files.js";
export { ACCEPTED_POLICY_FILE };
const hex = (b: Uint8Array): string => "0x" + Buffer.from(b).toString("hex");

export type Outcome = AuditEntry["outcome"];

/**
 * Load the policy: `--policy <file>` or, without it, the policy accepted last time (so that
 * dropping the flag cannot loosen the rules), or the built-in default. When the accepted policy
 * requires signatures for changes, a different file must carry them (`<file>.sig.json`).
 */
export function loadPolicy(dataDir: string, file?: string): { policy: Policy; source: string; accept: () => void } {
  const acceptedPath = path.join(dataDir, ACCEPTED_POLICY_FILE);
  const accepted = fs.existsSync(acceptedPath) ? fs.readFileSync(acceptedPath, "utf8") : null;
  if (!file) {
    if (accepted !== null) return { policy: parsePolicy(accepted, acceptedPath), source: `${acceptedPath} (accepted earlier)`, accept: () => undefined };
    return { policy: defaultPolicy(), source: "built-in default", accept: () => undefined };
  }
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new VigilError("bad_request", "POLICY_UNREADABLE", `cannot read the policy ${file}: ${(e as Error).message}`);
  }
  const policy = parsePolicy(text, file);
  if (accepted !== text) {
    const history = readPolicyHistory(dataDir, accepted);
    if (accepted !== null) {
      const sigFile = signatureFileFor(file);
      const sig = fs.existsSync(sigFile) ? fs.readFileSync(sigFile, "utf8") : null;
      checkPolicyChange(text, sig, readApproverSettings(accepted)); // throws unless the running policy's approvers signed
      // A signed change binds the policy it replaces; were that policy ever in force again, the old
      // signatures of changes away from it would be valid again. So a policy whose own changes need
      // signatures is never put in force twice: a revert is a new text (e.g. a "# revision" line).
      const digest = policyDigest(text);
      if (history.includes(digest) && readApproverSettings(text).requiredSignatures !== null) {
        throw new VigilError(
          "bad_request",
          "POLICY_REPEATED",
          `${file} (sha256 ${digest}) was in force here before: signatures once given for changes away from it would count again. ` +
            `Give this version its own text (e.g. a first line "# revision N") and have it signed`,
        );
      }
    }
    // Written once the instance has started with it: a start-up that fails accepts nothing.
    const accept = (): void => {
      writeFileAtomicSync(acceptedPath, text, 0o600);
      recordPolicy(dataDir, text, history);
    };
    return { policy, source: file, accept };
  }
  return { policy, source: file, accept: () => undefined };
}

/** The digests of every policy in force here so far (the accepted one included, recorded if it is missing). */
function readPolicyHistory(dataDir: string, accepted: string | null): string[] {
  const file = path.join(dataDir, POLICY_HISTORY_FILE);
  let history: string[];
  try {
    history = fs.readFileSync(file, "utf8").split("\n").filter((l) => /^[0-9a-f]{64}$/.test(l));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") {
      throw new VigilError("bad_request", "POLICY_UNREADABLE", `cannot read ${file}: ${(e as Error).message}`);
    }
    history = [];
  }
  // Data dirs from before the history, or a crash between writing the accepted policy and recording it.
  if (accepted !== null && !history.includes(policyDigest(accepted))) history = recordPolicy(dataDir, accepted, history);
  return history;
}

function recordPolicy(dataDir: string, text: string, history: string[]): string[] {
  const next = [...history, policyDigest(text)];
  writeFileAtomicSync(path.join(dataDir, POLICY_HISTORY_FILE), next.join("\n") + "\n", 0o600);
  return next;
}

export class Authority {
  private constructor(
    readonly policy: Policy,
    readonly policySource: string,
    readonly audit: AuditLog,
    readonly approvals: ApprovalQueue,
    private readonly network: Network,
    /** Records the policy as the one in force (policy.accepted.yaml, policy.history); see acceptPolicy. */
    private readonly accept: () => void,
  ) {}

  static async open(dataDir: string, network: Network, policyFile?: string): Promise<Authority> {
    const { policy, source, accept } = loadPolicy(dataDir, policyFile);
    const audit = await AuditLog.open(dataDir);
    let approvals: ApprovalQueue;
    try {
      approvals = ApprovalQueue.open(dataDir);
    } catch (e) {
      await audit.close();
      throw e;
    }
    return new Authority(policy, source, audit, approvals, network, accept);
  }

  /** Once the instance has started: the policy it runs becomes the accepted one (a changed policy is recorded only then). */
  acceptPolicy(): void {
    this.accept();
  }

  /** The policy's verdict for a decoded request; throws 403 to refuse or to ask for approvals. */
  decide(req: SignRequest, signingRoot: Uint8Array, pubkey: string, client: string | null, request?: unknown): { ruleId: string; warnings: PolicyWarning[]; outcome: Outcome } {
    const facts: RequestFacts = { type: req.type, pubkey, client, signingRoot: hex(signingRoot), summary: req.message.summary, fields: req.message.fields };
    const d = evaluatePolicy(this.policy, facts, {
      genesisTime: this.network.genesisTime,
      secondsPerSlot: this.network.secondsPerSlot,
      slotsPerEpoch: this.network.slotsPerEpoch,
      nowMs: Date.now(),
    });
    if (d.outcome === "allow") return { ruleId: d.ruleId, warnings: d.warnings, outcome: d.warnings.length ? "warned" : "allowed" };
    if (d.outcome === "refuse") throw new VigilError("forbidden", "POLICY_REFUSED", d.message, { rule_id: d.ruleId });
    const approvers = d.approvers.map((name) => this.policy.approvers.get(name)).filter((a) => a !== undefined);
    if (approvers.length < d.quorum || d.quorum < 1) {
      throw new VigilError("forbidden", "POLICY_REFUSED", `policy rule "${d.ruleId}" requires approval, but the policy names too few approvers to reach a quorum of ${d.quorum}`, { rule_id: d.ruleId });
    }
    const state = this.approvals.request(
      // The request as sent is kept so that approvers recompute its signing root themselves (`vigil approvals`).
      { ...facts, ruleId: d.ruleId, quorum: d.quorum, approvers, expirySeconds: d.expirySeconds, content: facts.fields, request, network: this.network.name },
      Date.now(),
    );
    if (state.status === "approved") return { ruleId: d.ruleId, warnings: d.warnings, outcome: "approved" };
    throw new VigilError(
      "forbidden",
      state.status === "rejected" ? "APPROVAL_REJECTED" : "APPROVAL_REQUIRED",
      state.status === "rejected"
        ? `approval ${state.id} was rejected`
        : `policy rule "${d.ruleId}" requires ${d.quorum} approval(s): npx vigil approvals approve ${state.id} --key <approver key>`,
      { rule_id: d.ruleId, approval_id: state.id, signing_root: facts.signingRoot, summary: facts.summary, approvals: state.approvals, quorum: state.quorum },
    );
  }

  async close(): Promise<void> {
    await this.audit.close();
  }
}
