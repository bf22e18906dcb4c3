/**
 * Vigil's own view of latency: the `vigil_sign_duration_seconds` histogram of GET /metrics (the sign
 * route's handler in the HTTP process: vault round trip included, HTTP parsing excluded).
 * Percentiles come out as bucket bounds ("p99 ≤ 5 ms").
 */
export type Buckets = Map<number, number>; // le (seconds, Infinity for +Inf) → cumulative count

export async function scrapeSignHistogram(url: string, type = "ATTESTATION"): Promise<Buckets | null> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const out: Buckets = new Map();
    const re = /^vigil_sign_duration_seconds_bucket\{([^}]*)\} (\d+(?:\.\d+)?(?:e[+-]?\d+)?)$/gm;
    for (const m of text.matchAll(re)) {
      if (!m[1].includes(`type="${type}"`)) continue;
      const le = /le="([^"]+)"/.exec(m[1])?.[1];
      if (le !== undefined) out.set(le === "+Inf" ? Infinity : Number(le), Number(m[2]));
    }
    return out.size ? out : null;
  } catch {
    return null;
  }
}

/** Requests observed between two scrapes, and bucket bounds (ms) of their percentiles. */
export function histogramDelta(before: Buckets | null, after: Buckets | null): { n: number; p50LeMs: number; p99LeMs: number; maxLeMs: number } | null {
  if (!before || !after) return null;
  const les = [...after.keys()].sort((a, b) => a - b);
  const cum = les.map((le) => (after.get(le) ?? 0) - (before.get(le) ?? 0));
  const n = cum[cum.length - 1] ?? 0;
  if (n === 0) return null;
  const at = (p: number): number => les[cum.findIndex((c) => c >= p * n)] * 1000;
  const maxLe = les[cum.findIndex((c) => c === n)] * 1000;
  return { n, p50LeMs: at(0.5), p99LeMs: at(0.99), maxLeMs: maxLe };
}

/** The vault's pipeline counters (GET /metrics): what a run's requests became inside the vault. */
export interface Pipeline {
  decisions: number;
  groupCommits: number;
  walSyncs: number;
  blsBatches: number;
  signatures: number;
  auditRecords: number;
  auditSyncs: number;
  anchorWrites: number;
}

const PIPELINE: Record<keyof Pipeline, string> = {
  decisions: "vigil_protection_decisions_total",
  groupCommits: "vigil_protection_group_commits_total",
  walSyncs: "vigil_protection_wal_syncs_total",
  blsBatches: "vigil_bls_batches_total",
  signatures: "vigil_bls_signatures_total",
  auditRecords: "vigil_audit_records_total",
  auditSyncs: "vigil_audit_syncs_total",
  anchorWrites: "vigil_audit_anchor_writes_total",
};

export async function scrapePipeline(url: string): Promise<Pipeline | null> {
  try {
    const text = await (await fetch(`${url}/metrics`)).text();
    const out = {} as Pipeline;
    for (const [k, name] of Object.entries(PIPELINE) as [keyof Pipeline, string][]) {
      const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
      if (!m) return null;
      out[k] = Number(m[1]);
    }
    return out;
  } catch {
    return null;
  }
}

/** Counts between two scrapes. */
export function pipelineDelta(before: Pipeline | null, after: Pipeline | null): Pipeline | null {
  if (!before || !after) return null;
  const out = {} as Pipeline;
  for (const k of Object.keys(PIPELINE) as (keyof Pipeline)[]) out[k] = after[k] - before[k];
  return out;
}
