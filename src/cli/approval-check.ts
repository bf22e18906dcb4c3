/**
 * What an approver checks before signing an approval: the entry's signing root is recomputed HERE
 * from the sign request the entry keeps, with this machine's copy of the network's fork schedule,
 * and the summary shown is this decoding's, not the server's. A compromised HTTP process can then
 * no longer show a harmless description next to the root of another message: the root commits to
 * the message and its domain (consensus specs, compute_signing_root), and the entry's id binds the
 * root and the key (checked by the caller).
 */
import fs from "node:fs";
import { VigilError } from "../errors.js";
import { choosePreset, NAMED_NETWORKS } from "../config/preset.js";
import type { ApprovalEntry } from "../policy/approvals.js";

export interface CheckedRequest {
  /** The network the root was recomputed on (--network, else the one the entry names). */
  network: string;
  type: string;
  /** This decoding's one-line description. */
  summary: string;
  /** This decoding's fields (bigints as decimal strings, bytes as 0x hex). */
  fields: Record<string, unknown>;
  /** The genesis validators root of the domain (0x hex; zero for DEPOSIT / VALIDATOR_REGISTRATION). */
  genesisValidatorsRoot: string;
}

const hex = (b: Uint8Array): string => "0x" + Buffer.from(b).toString("hex");
const unverifiable = (why: string): VigilError => new VigilError("bad_request", "UNVERIFIED_APPROVAL", why);

/**
 * Recompute `entry`'s signing root from its kept request and return what the request says, or
 * throw UNVERIFIED_APPROVAL (nothing to check, another network, a root that does not match).
 * The first call fixes the SSZ preset of this process (the network's): call it before anything
 * else here imports Lodestar.
 */
export async function checkApprovalRequest(entry: ApprovalEntry, networkFlag?: string): Promise<CheckedRequest> {
  if (entry.request === undefined || entry.request === null) {
    throw unverifiable(
      `entry ${entry.id} keeps no sign request to recompute its signing root from (an entry from an older Vigil, or a request over 4 KiB): ` +
        "its summary is only the server's word; reject it, or have the client send the request again after it expires",
    );
  }
  // The server names a network; only a built-in one is taken from it (never a path on this machine).
  const name = networkFlag ?? (NAMED_NETWORKS.includes(String(entry.network)) ? String(entry.network) : undefined);
  if (!name) {
    throw unverifiable(`entry ${entry.id} is for network ${JSON.stringify(entry.network ?? null)}: pass --network <name|config.yaml> (a custom network: its config.yaml)`);
  }
  const where = networkFlag ? `--network ${networkFlag}` : `the entry's network ${name} (pass --network <name|config.yaml> for another)`;
  if (!NAMED_NETWORKS.includes(name)) {
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(name);
    } catch {
      /* reported below */
    }
    if (!st?.isFile() || st.size > 1 << 20) throw unverifiable(`cannot check on ${where}: not a network name nor a config.yaml file (of at most 1 MiB) here`);
  }
  try {
    choosePreset(name);
  } catch (e) {
    throw unverifiable(`cannot check on ${where}: ${(e as Error).message}`);
  }
  const [{ resolveNetwork }, { decodeSignRequest }, { computeRequestSigningRoot }] = await Promise.all([
    import("../config/networks.js"),
    import("../eth2/decode.js"),
    import("../eth2/signing-root.js"),
  ]);
  try {
    const network = resolveNetwork(name);
    const req = decodeSignRequest(entry.request, network.slotsPerEpoch);
    if (req.type !== entry.type) throw unverifiable(`the kept request is a ${req.type}, the entry says ${entry.type}`);
    if (req.message.pubkey && hex(req.message.pubkey) !== entry.pubkey.toLowerCase()) {
      throw unverifiable(`the kept request is for key ${hex(req.message.pubkey)}, the entry for ${entry.pubkey}`);
    }
    // Networks without a known root (minimal, devnets): the request's own, shown to the approver.
    const gvr = network.genesisValidatorsRoot ?? req.forkInfo?.genesisValidatorsRoot ?? new Uint8Array(32);
    // The server computed the root when the entry was opened (the exit domain depends on the time: EIP-7044).
    const root = computeRequestSigningRoot(req, network, gvr, Date.parse(entry.created));
    if (hex(root) !== entry.signing_root.toLowerCase()) {
      throw unverifiable(`the kept request gives signing root ${hex(root)} on ${where}, not the entry's ${entry.signing_root}`);
    }
    const { toJsonSafe } = await import("../policy/approvals.js");
    return {
      network: network.name,
      type: req.type,
      summary: req.message.summary,
      fields: toJsonSafe(req.message.fields) as Record<string, unknown>,
      genesisValidatorsRoot: req.message.epoch === "genesis" ? hex(new Uint8Array(32)) : hex(gvr),
    };
  } catch (e) {
    if (e instanceof VigilError && e.code === "UNVERIFIED_APPROVAL") throw e;
    throw unverifiable(`the kept request does not decode on ${where}: ${(e as Error).message}`);
  }
}
