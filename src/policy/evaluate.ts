/**
 * Decides one sign request against the policy. Pure: the decision depends only on the policy, the
 * request facts and the clock reading passed in (no I/O, no Date.now()).
 *
 * Semantics:
 * - Rules are tried in order; the first rule whose `match` holds decides (all conditions AND, the
 *   items of one condition OR; a field condition only holds for a request that has the field).
 * - `allow` → allow. `deny` → refuse, with a message naming the rule and why. `require_approval` →
 *   approval_required with the rule's quorum, approvers and expiry.
 * - A matching rule in `mode: warn` (deny or require_approval) does not decide: it adds a
 *   PolicyWarning (the caller logs and audits it) and evaluation CONTINUES with the next rules. So
 *   a warn rule never makes signable what the rest of the policy would refuse, and never blocks.
 * - No rule matches → refuse with ruleId DEFAULT_DENY_RULE ("default-deny").
 * - Clock (`beyond_clock`): the current slot is floor((now - genesis) / seconds_per_slot) by Vigil's
 *   own clock and the network's genesis time; before genesis it is 0. `slots: N` matches when the
 *   request's slot > current slot + N; `epochs: N` when its target epoch (attestations) or epoch
 *   (RANDAO_REVEAL, VOLUNTARY_EXIT) > current epoch + N. When the genesis time is unknown
 *   (clock.genesisTime null) the condition does not match, so the rule does not apply.
 */
import type { RequestType } from "../eth2/request.js";
import type { Policy, PolicyRule } from "./policy.js";
import { DEFAULT_DENY_RULE, type ChainClock, type PolicyDecision, type PolicyWarning, type RequestFacts } from "./types.js";

/** The current slot and epoch by this clock, or null when the genesis time is unknown. */
export function clockNow(clock: ChainClock): { slot: bigint; epoch: bigint } | null {
  if (clock.genesisTime === null) return null;
  const slotMs = BigInt(Math.round(clock.secondsPerSlot * 1000));
  const sinceGenesisMs = BigInt(Math.floor(clock.nowMs)) - BigInt(Math.floor(clock.genesisTime)) * 1000n;
  const slot = sinceGenesisMs <= 0n || slotMs <= 0n ? 0n : sinceGenesisMs / slotMs;
  return { slot, epoch: slot / BigInt(Math.max(1, clock.slotsPerEpoch)) };
}

const short = (hex: string): string => (hex.length > 14 ? `${hex.slice(0, 10)}…` : hex);

function label(type: RequestType): string {
  switch (type) {
    case "BLOCK":
    case "BLOCK_V2":
      return "block";
    case "ATTESTATION":
      return "attestation";
    case "RANDAO_REVEAL":
      return "randao reveal";
    case "VOLUNTARY_EXIT":
      return "voluntary exit";
    default:
      return type;
  }
}

/** Why a rule matched: what it matched on (subject) and the failed field checks (reasons). */
interface Match {
  subject: string;
  reasons: string[];
}

function matchRule(rule: PolicyRule, facts: RequestFacts, now: { slot: bigint; epoch: bigint } | null): Match | null {
  const m = rule.match;
  let subject = facts.type as string;
  const reasons: string[] = [];

  if (m.types && !m.types.has(facts.type)) return null;

  if (m.keys) {
    const pk = facts.pubkey.toLowerCase();
    const ref = m.keys.find((k) => k.keys.has(pk));
    if (!ref) return null;
    subject += ` for key ${short(pk)}${ref.group !== null ? ` (group ${ref.group})` : ""}`;
  }

  if (m.clients) {
    if (facts.client === null || !m.clients.has(facts.client)) return null;
    subject += ` from client ${facts.client}`;
  }

  const f = facts.fields;
  if (m.beyondClock) {
    if (now === null) return null; // unknown genesis time: the clock condition does not apply
    const { slots, epochs } = m.beyondClock;
    let beyond: string | null = null;
    if (slots !== null && f.slot !== undefined && f.slot > now.slot + slots) {
      beyond = `${label(facts.type)} slot ${f.slot} is beyond the current slot ${now.slot} + ${slots}`;
    }
    const epoch = f.targetEpoch ?? f.epoch;
    if (beyond === null && epochs !== null && epoch !== undefined && epoch > now.epoch + epochs) {
      const which = f.targetEpoch !== undefined ? "target epoch" : "epoch";
      beyond = `${label(facts.type)} ${which} ${epoch} is beyond the current epoch ${now.epoch} + ${epochs}`;
    }
    if (beyond === null) return null;
    reasons.push(`${beyond} (by Vigil's clock)`);
  }

  if (m.feeRecipientNotIn) {
    if (f.feeRecipient === undefined) return null;
    const fr = f.feeRecipient.toLowerCase();
    if (m.feeRecipientNotIn.has(fr)) return null;
    const list = [...m.feeRecipientNotIn];
    reasons.push(`fee_recipient ${fr} is not an allowed one (${list.slice(0, 3).join(", ")}${list.length > 3 ? `, … ${list.length} in all` : ""})`);
  }

  if (m.gasLimitOutside) {
    if (f.gasLimit === undefined) return null;
    const [lo, hi] = m.gasLimitOutside;
    if (f.gasLimit >= lo && f.gasLimit <= hi) return null;
    reasons.push(`gas_limit ${f.gasLimit} is outside [${lo}, ${hi}]`);
  }

  if (m.withdrawalCredentialsNotIn) {
    if (f.withdrawalCredentials === undefined) return null;
    const wc = f.withdrawalCredentials.toLowerCase();
    if (m.withdrawalCredentialsNotIn.has(wc)) return null;
    reasons.push(`withdrawal_credentials ${wc} are not in the allowlist (${m.withdrawalCredentialsNotIn.size} allowed)`);
  }

  return { subject, reasons };
}

function explain(rule: PolicyRule, m: Match, verb: string): string {
  const why = m.reasons.length ? `: ${m.reasons.join("; ")}` : "";
  const desc = rule.description ? ` (${rule.description})` : "";
  return `policy rule "${rule.id}" ${verb} ${m.subject}${why}${desc}`;
}

const approvalText = (rule: PolicyRule): string =>
  rule.approval && rule.approval.approvers.length > 0
    ? `approval by ${rule.approval.quorum} of ${rule.approval.approvers.join(", ")}`
    : "approval (no approvers are defined: it can never be approved)";

/** The policy's verdict for one request. See the module comment for the semantics. */
export function evaluatePolicy(policy: Policy, facts: RequestFacts, clock: ChainClock): PolicyDecision {
  const now = clockNow(clock);
  const warnings: PolicyWarning[] = [];
  for (const rule of policy.rules) {
    const m = matchRule(rule, facts, now);
    if (m === null) continue;
    if (rule.mode === "warn") {
      // Only deny and require_approval rules can be in warn mode (the parser refuses warn + allow).
      const message =
        rule.action === "deny"
          ? `${explain(rule, m, "would refuse")} [mode: warn, not enforced]`
          : `${explain(rule, m, `would require ${approvalText(rule)} for`)} [mode: warn, not enforced]`;
      warnings.push({ ruleId: rule.id, message });
      continue;
    }
    switch (rule.action) {
      case "allow":
        return { outcome: "allow", ruleId: rule.id, warnings };
      case "deny":
        return { outcome: "refuse", ruleId: rule.id, message: explain(rule, m, "refuses"), warnings };
      case "require_approval": {
        const a = rule.approval!;
        return {
          outcome: "approval_required",
          ruleId: rule.id,
          quorum: a.quorum,
          approvers: [...a.approvers],
          expirySeconds: a.expirySeconds,
          warnings,
        };
      }
    }
  }
  return {
    outcome: "refuse",
    ruleId: DEFAULT_DENY_RULE,
    // (The policy's file path is not in the message: refusals go back to clients.)
    message: `no policy rule allows ${facts.type} for key ${short(facts.pubkey.toLowerCase())}${facts.client !== null ? ` from client ${facts.client}` : ""}: anything the policy does not allow is refused`,
    warnings,
  };
}
