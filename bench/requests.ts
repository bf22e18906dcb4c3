/** The ATTESTATION requests of the benchmark, built from Lodestar's recorded ATTESTATION request. */
import fs from "node:fs";
import path from "node:path";
import { repoRoot } from "./vigil.js";

export type Template = { type: string; fork_info: { genesis_validators_root: string }; attestation: Record<string, unknown> };

/** ../shared/peers/lodestar/sample-requests/ATTESTATION.json (VIGIL_SHARED_DIR overrides ../shared), without its signingRoot. */
export function attestationTemplate(): Template {
  const shared = process.env.VIGIL_SHARED_DIR ?? path.resolve(repoRoot, "..", "shared");
  const body = JSON.parse(fs.readFileSync(path.join(shared, "peers", "lodestar", "sample-requests", "ATTESTATION.json"), "utf8"));
  delete body.signingRoot;
  delete body.signing_root;
  return body;
}

const hex32 = (n: number): string => "0x" + n.toString(16).padStart(64, "0");

/** The template at target `epoch` (source epoch - 1, slot = the epoch's first slot on the minimal preset), block root `blockRoot`. */
export function attestationBody(t: Template, epoch: number, blockRoot: number): string {
  const root = hex32(blockRoot);
  return JSON.stringify({
    ...t,
    attestation: { ...t.attestation, slot: String(epoch * 8), beacon_block_root: root, source: { epoch: String(epoch - 1), root: hex32(epoch - 1) }, target: { epoch: String(epoch), root } },
  });
}
