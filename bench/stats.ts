/** Latency summaries: every sample counts (nothing is capped or dropped). */
export interface Summary {
  n: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

/** Nearest-rank percentile of an ascending array. */
const rank = (sorted: Float64Array, p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];

export function summarize(samplesMs: ArrayLike<number>): Summary {
  const s = Float64Array.from(samplesMs).sort();
  if (s.length === 0) return { n: 0, meanMs: NaN, p50Ms: NaN, p90Ms: NaN, p99Ms: NaN, p999Ms: NaN, maxMs: NaN };
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, meanMs: sum / s.length, p50Ms: rank(s, 50), p90Ms: rank(s, 90), p99Ms: rank(s, 99), p999Ms: rank(s, 99.9), maxMs: s[s.length - 1] };
}
