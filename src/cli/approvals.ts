/**
 * `vigil approvers new`, `vigil approvals list|show|approve|reject`, `vigil policy sign|verify`.
 *
 * The approvals commands talk to a running instance's admin API (bearer token, as the Keymanager
 * API). `approve` and `reject` fetch the entry, check that its id is the one its pubkey, signing
 * root and rule give, build the message and sign it HERE with the approver's key file: the private
 * key never leaves the approver's machine; only `{approver, signature}` is sent. `approve` (and
 * `show`) also recompute the signing root from the request the entry keeps (approval-check.ts) and
 * describe that request themselves: nothing is approved on the server's description alone.
 *
 * Admin API (served by the HTTP process, answered by the vault's ApprovalQueue):
 *   GET  /admin/v1/approvals               → 200 {data: ApprovalEntry[]}
 *   GET  /admin/v1/approvals/:id           → 200 {data: ApprovalEntry} | 404 {code: "APPROVAL_NOT_FOUND"}
 *   POST /admin/v1/approvals/:id/approve   {approver, signature} → 200 {data: ApprovalState}
 *   POST /admin/v1/approvals/:id/reject    {approver, signature} → 200 {data: ApprovalState}
 * Errors are {code, message} with the status of the VigilError kind (400, 401, 404, 409, 503).
 */
import fs from "node:fs";
import path from "node:path";
import type { KeyObject } from "node:crypto";
import { VigilError, type ErrorKind } from "../errors.js";
import { writeFileAtomicSync } from "../fs-atomic.js";
import { checkApprovalRequest, type CheckedRequest } from "./approval-check.js";
import { approvalId, approvalMessage, type ApprovalEntry, type ApprovalState, type ApprovalVerdict } from "../policy/approvals.js";
import { checkApproverName, loadApproverPrivateKey, publicKeyBase64, signApproval, writeApproverKeyPair } from "../policy/approver-keys.js";
import {
  addPolicySignature,
  policyDigest,
  parsePolicySignatureFile,
  readApproverSettings,
  signPolicy,
  signatureFileFor,
  verifyPolicySignatures,
  type PolicySignatureFile,
  type PolicyVerification,
} from "../policy/signed-policy.js";

export type Print = (text: string) => void;
const stdout: Print = (text) => void process.stdout.write(text);

// ---------------------------------------------------------------- approvers new

/** Writes `<out>/<name>.key` (0600) and `<out>/<name>.pub`; prints the public key and the policy YAML line. */
export function approversNew(opts: { name: string; out?: string }, print: Print = stdout): { keyFile: string; pubFile: string; publicKey: string } {
  const r = writeApproverKeyPair(opts.out ?? ".", opts.name);
  print(
    `wrote ${r.keyFile} (private key, mode 0600: keep it on this machine, offline if you can)\n` +
      `wrote ${r.pubFile}\n` +
      `public key: ${r.publicKey}\n\n` +
      `add this line under \`approvers:\` in the policy:\n` +
      `  ${r.name}: "${r.publicKey}"\n`,
  );
  return { keyFile: r.keyFile, pubFile: r.pubFile, publicKey: r.publicKey };
}

// ---------------------------------------------------------------- admin API client

export interface AdminFlags {
  /** Base URL of the running instance, e.g. http://127.0.0.1:9000. */
  url: string;
  /** File holding the admin bearer token (the Keymanager token, <data-dir>/api-token.txt). */
  tokenFile: string;
}

function readToken(file: string): string {
  let token: string;
  try {
    token = fs.readFileSync(file, "utf8").trim();
  } catch (e) {
    throw new VigilError("bad_request", "FILE_UNREADABLE", `cannot read the API token ${file}: ${(e as Error).message}`);
  }
  if (!token) throw new VigilError("bad_request", "EMPTY_API_TOKEN", `${file} is empty`);
  return token;
}

function kindOf(status: number): ErrorKind {
  if (status === 401 || status === 403) return "unauthorized";
  if (status === 404) return "not_found";
  if (status === 409) return "conflict";
  if (status === 412) return "slashing";
  if (status >= 500) return "unavailable";
  return "bad_request";
}

async function call<T>(flags: AdminFlags, method: "GET" | "POST", route: string, body?: unknown): Promise<T> {
  const token = readToken(flags.tokenFile);
  const url = flags.url.replace(/\/+$/, "") + route;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${token}`, accept: "application/json", ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (e) {
    const cause = (e as { cause?: Error }).cause;
    throw new VigilError("unavailable", "UNREACHABLE", `cannot reach ${url}: ${cause?.message ?? (e as Error).message}`);
  }
  const text = await res.text();
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON: reported below */
  }
  if (!res.ok) {
    const b = json as { code?: unknown; message?: unknown } | null;
    // The server's words, made inert: they are printed on the approver's terminal.
    const code = typeof b?.code === "string" ? printable(b.code).slice(0, 64) : `HTTP_${res.status}`;
    const message = typeof b?.message === "string" ? printable(b.message).slice(0, 1000) : `${method} ${url}: HTTP ${res.status}`;
    throw new VigilError(kindOf(res.status), code, message);
  }
  const data = (json as { data?: unknown } | null)?.data;
  if (data === undefined) throw new VigilError("unavailable", "BAD_RESPONSE", `${method} ${url}: the answer has no data`);
  return data as T;
}

const route = (id?: string, action?: string): string =>
  "/admin/v1/approvals" + (id === undefined ? "" : "/" + encodeURIComponent(id)) + (action ? "/" + action : "");

function describeState(s: ApprovalState): string {
  const P = printable;
  const until = s.expires_at ? `; ${s.status === "approved" ? "signable until" : "expires"} ${P(s.expires_at)}` : "";
  return `${P(s.id)}: ${P(s.status)} (${P(s.approvals)} of ${P(s.quorum)} approvals${until})`;
}

/**
 * Text from the server, made safe to print: control characters (a terminal escape could hide or
 * redraw lines), line breaks and bidirectional overrides become visible \u escapes.
 */
export function printable(value: unknown): string {
  // Control and format characters (escapes, bidi overrides, zero-width marks), line and paragraph separators.
  return String(value).replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (c) => "\\u{" + c.codePointAt(0)!.toString(16) + "}");
}

/** A human description of an entry as the server gives it (what `show` prints after its own check). */
export function formatApproval(e: ApprovalEntry): string {
  const P = printable;
  const approved = new Map(e.approvals.map((a) => [a.approver, a.at]));
  const rejected = new Map(e.rejections.map((a) => [a.approver, a.at]));
  const who = e.approvers
    .map((a) => P(a.name) + (approved.has(a.name) ? ` (approved ${P(approved.get(a.name))})` : rejected.has(a.name) ? ` (rejected ${P(rejected.get(a.name))})` : ""))
    .join(", ");
  const lines = [
    `approval      ${P(e.id)}`,
    `status        ${P(e.status)} (${e.approvals.length} of ${P(e.quorum)} approvals)`,
    `type          ${P(e.type)}`,
    `summary       ${P(e.summary)}`,
    `pubkey        ${P(e.pubkey)}`,
    `signing root  ${P(e.signing_root)}`,
    `rule          ${P(e.rule_id)}`,
    `client        ${P(e.client ?? "-")}`,
    `created       ${P(e.created)}`,
    ...(e.approved_at ? [`approved at   ${P(e.approved_at)}`] : []),
    ...(e.rejected_at ? [`rejected at   ${P(e.rejected_at)}`] : []),
    ...(e.expires_at ? [`${e.status === "approved" ? "signable until" : "expires      "} ${P(e.expires_at)}`] : []),
    `approvers     ${who}`,
  ];
  if (e.content !== null && e.content !== undefined) {
    lines.push("content");
    lines.push(...JSON.stringify(e.content, null, 2).split("\n").map((l) => "  " + P(l)));
  }
  return lines.join("\n") + "\n";
}

export async function approvalsList(flags: AdminFlags, print: Print = stdout): Promise<ApprovalEntry[]> {
  const list = await call<ApprovalEntry[]>(flags, "GET", route());
  if (!Array.isArray(list)) throw new VigilError("unavailable", "BAD_RESPONSE", "the approvals list is not an array");
  if (list.length === 0) print("no approvals\n");
  for (const e of list) print(`${printable(e.id)}  ${printable(e.status).padEnd(8)}  ${e.approvals?.length}/${printable(e.quorum)}  ${printable(e.created)}  ${printable(e.type)}  ${printable(e.summary)} (the server's description)\n`);
  return list;
}

/** The entry's id must be the one its pubkey, signing root, rule and nonce give (it binds them). */
function checkEntryId(entry: ApprovalEntry, id: string): void {
  if (entry.id !== id || approvalId(entry.pubkey, entry.signing_root, entry.rule_id, entry.nonce) !== entry.id) {
    throw new VigilError("unavailable", "BAD_RESPONSE", `the server's entry ${entry.id} does not match its pubkey, signing root and rule; not signing`);
  }
}

/** What this machine makes of the entry's request: the lines `show` and `approve` print first. */
function describeCheck(e: ApprovalEntry, c: CheckedRequest): string {
  return (
    `CHECKED HERE: this machine decoded the request and recomputed its signing root on ${c.network}\n` +
    `  ${c.type}: ${printable(c.summary)}\n` +
    `  pubkey ${e.pubkey}\n  signing root ${e.signing_root}\n  genesis validators root ${c.genesisValidatorsRoot}\n` +
    JSON.stringify(c.fields, null, 2).split("\n").map((l) => "  " + printable(l)).join("\n") +
    "\n"
  );
}

export async function approvalsShow(flags: AdminFlags & { id: string; network?: string }, print: Print = stdout): Promise<ApprovalEntry> {
  const e = await call<ApprovalEntry>(flags, "GET", route(flags.id));
  checkEntryId(e, flags.id);
  try {
    print(describeCheck(e, await checkApprovalRequest(e, flags.network)));
  } catch (err) {
    if (!(err instanceof VigilError)) throw err;
    print(`NOT CHECKED: ${printable(err.message)}\n  (what follows is only the server's word; approve refuses this entry)\n`);
  }
  print("\nAS THE SERVER DESCRIBES IT (not checked here):\n" + formatApproval(e));
  return e;
}

/** Which approver of `entry` the key belongs to (`name` given: checked against the entry's set). */
function approverFor(entry: ApprovalEntry, key: KeyObject, name: string | undefined): string {
  const mine = publicKeyBase64(key);
  // The names come from the server: only policy-shaped names are printed or signed for.
  for (const a of entry.approvers) {
    try {
      checkApproverName(a.name);
    } catch {
      throw new VigilError("unavailable", "BAD_RESPONSE", `the server's entry names an approver ${JSON.stringify(printable(a.name))} no policy can name; not signing`);
    }
  }
  const names = entry.approvers.map((x) => x.name).join(", ");
  if (name !== undefined) {
    checkApproverName(name);
    const a = entry.approvers.find((x) => x.name === name);
    if (!a) throw new VigilError("bad_request", "UNKNOWN_APPROVER", `${name} is not an approver of ${entry.id} (approvers: ${names})`);
    if (a.public_key !== mine) throw new VigilError("bad_request", "WRONG_APPROVER_KEY", `this key (${mine}) is not ${name}'s key in the policy (${printable(a.public_key)})`);
    return name;
  }
  const a = entry.approvers.find((x) => x.public_key === mine);
  if (!a) throw new VigilError("bad_request", "UNKNOWN_APPROVER", `this key (${mine}) belongs to no approver of ${entry.id} (approvers: ${names})`);
  return a.name;
}

type DecideFlags = AdminFlags & { id: string; key: string; name?: string; network?: string; yes?: boolean };

/** Asks the approver a yes/no question (default: on the terminal; false when there is none). */
export type Ask = (question: string) => Promise<boolean>;

const askOnTerminal: Ask = async (question) => {
  // Only when the approver sees the description (stdout) and answers on the same terminal.
  if (!process.stdin.isTTY || !process.stdout.isTTY) return false;
  const rl = (await import("node:readline/promises")).createInterface({ input: process.stdin, output: process.stdout });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
};

async function decide(verdict: ApprovalVerdict, flags: DecideFlags, print: Print, ask: Ask = askOnTerminal): Promise<ApprovalState> {
  const key = loadApproverPrivateKey(flags.key);
  const entry = await call<ApprovalEntry>(flags, "GET", route(flags.id));
  // The id binds pubkey, signing root and rule: refuse an answer that does not hold together.
  checkEntryId(entry, flags.id);
  const approver = approverFor(entry, key, flags.name);
  // An approval is given only for a request this machine decoded and whose root it recomputed;
  // a rejection needs no such check (it can only stop a signature).
  let described = `${printable(entry.type)} ${printable(entry.summary)} (the server's description)`;
  if (verdict === "approve") {
    const checked = await checkApprovalRequest(entry, flags.network);
    print(describeCheck(entry, checked));
    described = `${checked.type} ${printable(checked.summary)} (checked here on ${checked.network})`;
    // The approver answers what this machine decoded, not what the server said.
    if (!flags.yes && !(await ask(`approve this ${checked.type} as ${approver}? [y/N] `))) {
      throw new VigilError(
        "bad_request",
        "NOT_CONFIRMED",
        "not approved: answer yes at the prompt (on a terminal, output not redirected), or pass --yes once you have checked it (vigil approvals show)",
      );
    }
  }
  const signature = signApproval(key, approvalMessage(entry.id, entry.pubkey, entry.signing_root, verdict));
  print(`${verdict === "approve" ? "approving" : "rejecting"} as ${approver}: ${described}\n  pubkey ${entry.pubkey}\n  signing root ${entry.signing_root}\n`);
  const state = await call<ApprovalState>(flags, "POST", route(entry.id, verdict), { approver, signature });
  print(describeState(state) + "\n");
  return state;
}

export function approvalsApprove(flags: DecideFlags, print: Print = stdout, ask?: Ask): Promise<ApprovalState> {
  return decide("approve", flags, print, ask);
}

export function approvalsReject(flags: DecideFlags, print: Print = stdout): Promise<ApprovalState> {
  return decide("reject", flags, print);
}

// ---------------------------------------------------------------- policy sign | verify

function readBytes(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new VigilError("bad_request", "FILE_UNREADABLE", `cannot read ${what} ${file}: ${(e as Error).message}`);
  }
}

/**
 * Signs the change from the running policy (`previous`: a copy of <data-dir>/policy.accepted.yaml)
 * to `policy` with the key file as approver `name`: creates `<policy>.sig.json` or adds to it.
 */
export function policySign(opts: { policy: string; previous: string; key: string; name: string }, print: Print = stdout): PolicySignatureFile {
  const text = readBytes(opts.policy, "policy");
  const previous = policyDigest(readBytes(opts.previous, "running policy"));
  const key = loadApproverPrivateKey(opts.key);
  const sigFile = signatureFileFor(opts.policy);
  let existing: PolicySignatureFile | null = null;
  if (fs.existsSync(sigFile)) existing = parsePolicySignatureFile(readBytes(sigFile, "signature file").toString("utf8"));
  const doc = addPolicySignature(existing, text, signPolicy(text, key, opts.name, previous), previous);
  writeFileAtomicSync(sigFile, JSON.stringify(doc, null, 2) + "\n", 0o644);
  print(
    `signed the change from ${opts.previous} (sha256 ${previous}) to ${opts.policy} (sha256 ${doc.policy_sha256}) as ${opts.name} (key ${publicKeyBase64(key)})\n` +
      `${sigFile}: ${doc.signatures.length} signature${doc.signatures.length === 1 ? "" : "s"} (${doc.signatures.map((s) => s.approver).join(", ")})\n`,
  );
  return doc;
}

/**
 * Verifies `<policy>.sig.json` against the approvers and `policy_changes.required_signatures` of
 * the policy file `against` (the RUNNING one). Prints the result; POLICY_SIGNATURES_INVALID when the
 * new policy would be refused.
 */
export function policyVerify(opts: { policy: string; against: string }, print: Print = stdout): PolicyVerification {
  const text = readBytes(opts.policy, "policy");
  const running = readApproverSettings(readBytes(opts.against, "running policy"));
  const sigFile = signatureFileFor(opts.policy);
  const sigText = fs.existsSync(sigFile) ? readBytes(sigFile, "signature file").toString("utf8") : null;
  if (running.requiredSignatures === null) {
    print(`${path.basename(opts.against)} does not require signed policy changes: ${opts.policy} would be accepted without signatures\n`);
    if (sigText === null || Object.keys(running.approvers).length === 0) return { ok: true, valid: [], problems: [] };
    const v = verifyPolicySignatures(text, sigText, running.approvers, 1, running.sha256);
    print(`signatures: ${v.valid.length ? v.valid.join(", ") : "none valid"}\n`);
    for (const p of v.problems) print(`  - ${p}\n`);
    return { ok: true, valid: v.valid, problems: v.problems };
  }
  if (sigText === null) {
    const problems = [`no signature file ${sigFile}; ${running.requiredSignatures} approver signatures are required (vigil policy sign)`];
    print(`REFUSED ${opts.policy}\n  - ${problems[0]}\n`);
    throw new VigilError("bad_request", "POLICY_SIGNATURES_INVALID", problems[0]);
  }
  const v = verifyPolicySignatures(text, sigText, running.approvers, running.requiredSignatures, running.sha256);
  print(
    `${v.ok ? "OK" : "REFUSED"} ${opts.policy}: ${v.valid.length} of ${running.requiredSignatures} required signatures` +
      (v.valid.length ? ` (${v.valid.join(", ")})` : "") +
      "\n",
  );
  for (const p of v.problems) print(`  - ${p}\n`);
  if (!v.ok) throw new VigilError("bad_request", "POLICY_SIGNATURES_INVALID", `${opts.policy} would be refused: ${v.problems.join("; ")}`);
  return v;
}
