/**
 * Slashable pairs in an EIP-3076 interchange history (pure; no I/O). The same checker as
 * test/e2e/slashable.ts, on the interchange types of src/slashing/types.ts.
 *
 * For each validator (records grouped by pubkey, even when it appears in several `data` entries),
 * every pair of records is checked:
 * - blocks: two blocks at one slot whose signing roots differ (a proposer slashing);
 * - attestations: two with the same target epoch whose signing roots differ (a double vote), or one
 *   surrounding the other (source1 < source2 and target2 < target1, either way round).
 * A missing or all-zero signing root never proves two messages identical, so such a record
 * conflicts with any other record at the same slot / target.
 */
import type { Interchange, InterchangeAttestation, InterchangeBlock } from "../../src/slashing/types.js";

export type Violation =
  | { pubkey: string; kind: "double_block"; a: InterchangeBlock; b: InterchangeBlock }
  | { pubkey: string; kind: "double_vote" | "surround_vote"; a: InterchangeAttestation; b: InterchangeAttestation };

const ZERO_ROOT = /^0x0{64}$/i;

/** true when both roots are known (present, not all-zero) and equal. */
function provablySame(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || ZERO_ROOT.test(a) || ZERO_ROOT.test(b)) return false;
  return a.toLowerCase() === b.toLowerCase();
}

/** `a` surrounds `b`: a.source < b.source and b.target < a.target. */
const surrounds = (a: InterchangeAttestation, b: InterchangeAttestation): boolean =>
  BigInt(a.source_epoch) < BigInt(b.source_epoch) && BigInt(b.target_epoch) < BigInt(a.target_epoch);

/** Every slashable pair in `doc`'s history (empty: nothing slashable). */
export function findSlashable(doc: Pick<Interchange, "data">): Violation[] {
  const byKey = new Map<string, { blocks: InterchangeBlock[]; attestations: InterchangeAttestation[] }>();
  for (const d of doc.data) {
    const pubkey = d.pubkey.toLowerCase();
    const e = byKey.get(pubkey) ?? { blocks: [], attestations: [] };
    e.blocks.push(...d.signed_blocks);
    e.attestations.push(...d.signed_attestations);
    byKey.set(pubkey, e);
  }
  const out: Violation[] = [];
  for (const [pubkey, { blocks, attestations }] of byKey) {
    // Group by slot / target first: the pairwise checks stay cheap for long histories.
    const bySlot = new Map<bigint, InterchangeBlock[]>();
    for (const b of blocks) {
      const s = BigInt(b.slot);
      const list = bySlot.get(s) ?? [];
      for (const a of list) if (!provablySame(a.signing_root, b.signing_root)) out.push({ pubkey, kind: "double_block", a, b });
      list.push(b);
      bySlot.set(s, list);
    }
    for (let i = 0; i < attestations.length; i++) {
      for (let j = i + 1; j < attestations.length; j++) {
        const a = attestations[i];
        const b = attestations[j];
        if (BigInt(a.target_epoch) === BigInt(b.target_epoch)) {
          if (!provablySame(a.signing_root, b.signing_root)) out.push({ pubkey, kind: "double_vote", a, b });
        } else if (surrounds(a, b) || surrounds(b, a)) {
          out.push({ pubkey, kind: "surround_vote", a, b });
        }
      }
    }
  }
  return out;
}

/** One line per violation (at most `max`), for assertion messages. */
export const describeViolations = (vs: Violation[], max = 20): string =>
  vs
    .slice(0, max)
    .map((v) =>
      v.kind === "double_block"
        ? `${v.pubkey.slice(0, 12)}… double block at slot ${v.a.slot}: ${v.a.signing_root} vs ${v.b.signing_root}`
        : `${v.pubkey.slice(0, 12)}… ${v.kind}: ${v.a.source_epoch}→${v.a.target_epoch} (${v.a.signing_root}) vs ${v.b.source_epoch}→${v.b.target_epoch} (${v.b.signing_root})`,
    )
    .join("\n") + (vs.length > max ? `\n… and ${vs.length - max} more` : "");
