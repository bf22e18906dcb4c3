import fs from "node:fs";
import path from "node:path";
import { conformanceDir } from "./paths.js";

const hexBytes = (h: string): Uint8Array => Uint8Array.from(Buffer.from(h.replace(/^0x/, ""), "hex"));

/** The interop (mock-genesis) keys recorded beside the EIP-3076 suite. */
export function interopKeys(): { pubkey: string; secret: Uint8Array }[] {
  const doc = JSON.parse(fs.readFileSync(path.join(conformanceDir, "eip3076", "interop-keys.json"), "utf8"));
  return doc.keys.map((k: { pubkey: string; secret_key: string }) => ({ pubkey: k.pubkey, secret: hexBytes(k.secret_key) }));
}

export interface SigningVectors {
  key: { secret_key: string; public_key: string };
  cases: {
    name: string;
    type: string;
    request: Record<string, unknown>;
    expected_signing_root: string;
    signing_root_reproduced: boolean;
    derived_signature: string;
  }[];
}

export function signingVectors(file: "web3signer-sign-examples.json" | "remote-signing-api-sign-examples.json"): SigningVectors {
  return JSON.parse(fs.readFileSync(path.join(conformanceDir, "signing-vectors", file), "utf8"));
}

export const sampleRequestsDir = path.join(conformanceDir, "..", "peers", "lodestar", "sample-requests");

/** Sign requests recorded from Lodestar on a minimal-preset devnet (each with the client's signingRoot). */
export function lodestarSamples(): { file: string; body: Record<string, unknown> }[] {
  return fs
    .readdirSync(sampleRequestsDir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => ({ file, body: JSON.parse(fs.readFileSync(path.join(sampleRequestsDir, file), "utf8")) }));
}

export { hexBytes };
