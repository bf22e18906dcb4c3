/**
 * An EIP-3076 (v5) interchange file: `validators` made-up public keys (48 random bytes, not keys),
 * each with `blocks` signed blocks (slots 1..blocks) and `attestations` attestations (source i,
 * target i+1), every record with a signing root: non-slashable, as an export from a client would be.
 */
import { randomBytes } from "node:crypto";
import fs from "node:fs";

const root = (n: number): string => "0x" + n.toString(16).padStart(64, "0");

export async function writeInterchange(file: string, gvr: string, validators: number, blocks: number, attestations: number): Promise<{ bytes: number; ms: number }> {
  const t0 = performance.now();
  const out = fs.createWriteStream(file);
  const write = (s: string): Promise<void> | void => {
    if (!out.write(s)) return new Promise((r) => out.once("drain", () => r()));
  };
  await write(`{"metadata":{"interchange_format_version":"5","genesis_validators_root":"${gvr}"},"data":[`);
  let rec = 0;
  for (let v = 0; v < validators; v++) {
    const parts: string[] = [];
    for (let s = 1; s <= blocks; s++) parts.push(`{"slot":"${s}","signing_root":"${root(++rec)}"}`);
    const atts: string[] = [];
    for (let e = 0; e < attestations; e++) atts.push(`{"source_epoch":"${e}","target_epoch":"${e + 1}","signing_root":"${root(++rec)}"}`);
    await write(`${v ? "," : ""}{"pubkey":"0x${randomBytes(48).toString("hex")}","signed_blocks":[${parts.join(",")}],"signed_attestations":[${atts.join(",")}]}`);
  }
  await write("]}\n");
  await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
  return { bytes: fs.statSync(file).size, ms: performance.now() - t0 };
}
