/**
 * V8 options for Vigil's long-running processes (the HTTP process and the vault with its BLS
 * threads). `npm start` and the `vigil` shebang pass the same (a test holds them in step):
 * - a 4 MB semi-space: a young generation of 12 MB, scavenges stay short;
 * - the old generation grows by 25 % between full collections instead of V8's adaptive factor
 *   (up to 4×): with 10,000 keys this keeps both processes tens of MB smaller while signing, at no
 *   measurable cost in throughput (bench: 4,570–4,830/s vs 4,440–4,590/s, p99 no worse);
 * - no allocation-site pretenuring: V8 saw a request's short-lived objects (still in flight at a
 *   scavenge) survive and allocated them straight in the old generation, which then needed a full
 *   collection (pauses and marking steps of 3–9 ms) every 3–4 s at 1,000 req/s; without it the
 *   vault ran a 20 s run at 1,000 req/s with none.
 */
export const NODE_FLAGS: readonly string[] = ["--max-semi-space-size=4", "--heap-growing-percent=25", "--no-allocation-site-pretenuring"];

/** These flags on top of `execArgv`, replacing any given there with another value. */
export function withNodeFlags(execArgv: readonly string[]): string[] {
  const names = NODE_FLAGS.map((f) => f.split("=")[0]);
  return [...execArgv.filter((a) => !names.includes(a.split("=")[0])), ...NODE_FLAGS];
}
