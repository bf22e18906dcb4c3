/**
 * The load generator: its own process (child_process.fork), a keep-alive HTTP client (node:http
 * Agent, keepAlive, maxSockets 64) sending unique, non-slashable ATTESTATION sign requests.
 *
 * Request i goes to key i mod N (round-robin); each key's target epoch increases by one per
 * request (source = target - 1, slot = first slot of the target epoch, a fresh beacon_block_root).
 *
 * Commands (IPC) and the answer to each:
 *   {op:"init", url, pubkeys, template, firstEpoch}           → {ok:true}
 *   {op:"open", rate, durationMs}   open loop: request k is scheduled at start + k/rate, whatever
 *                                   the answers; latency counts from the scheduled time (queueing
 *                                   in the client included: no coordinated omission)
 *   {op:"closed", concurrency, durationMs}  closed loop: `concurrency` requests always in flight
 *   {op:"each", concurrency}        closed loop, exactly one request per key (warm-up)
 *   → RunResult (below)
 */
import http from "node:http";
import { attestationBody, type Template } from "./requests.js";
import { summarize, type Summary } from "./stats.js";

export type Command =
  | { op: "init"; url: string; pubkeys: string[]; template: Template; firstEpoch: number }
  | { op: "open"; rate: number; durationMs: number }
  | { op: "closed"; concurrency: number; durationMs: number }
  | { op: "each"; concurrency: number };

export interface RunResult {
  sent: number;
  ok: number;
  /** non-200 answers and transport failures: "412 DOUBLE_VOTE", "ERR ECONNRESET", "timeout" → count */
  errors: Record<string, number>;
  /** first request's (scheduled) start to the last answer */
  wallMs: number;
  okPerSecond: number;
  /** latency of the 200 answers (ms) */
  latency: Summary;
  /** latency of all answers, errors included */
  latencyAll: Summary;
  /** open loop: how late the client issued requests relative to their schedule (ms) */
  sendLag?: Summary;
  maxTargetEpoch: number;
  /** per second of the run (by scheduled send time): requests, errors, p50/p99/max latency (ms) */
  timeline: { second: number; n: number; errors: number; p50Ms: number; p99Ms: number; maxMs: number }[];
}

const REQUEST_TIMEOUT_MS = 30_000;
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
let target: URL;
let pubkeys: string[] = [];
let template: Template;
let epochs: Float64Array;
let rr = 0;
let blockRoot = 0;
let maxEpoch = 0;

function nextRequest(): { path: string; body: string } {
  const k = rr++ % pubkeys.length;
  const e = epochs[k]++;
  if (e > maxEpoch) maxEpoch = e;
  return { path: `/api/v1/eth2/sign/${pubkeys[k]}`, body: attestationBody(template, e, ++blockRoot) };
}

/** One request; resolves with "200" or an error label, never rejects. */
function send(req: { path: string; body: string }): Promise<string> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (label: string): void => {
      if (!settled) (settled = true), resolve(label);
    };
    const r = http.request(
      {
        agent,
        host: target.hostname,
        port: target.port,
        method: "POST",
        path: req.path,
        headers: { "content-type": "application/json", accept: "application/json", "content-length": Buffer.byteLength(req.body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          if (res.statusCode === 200) return done("200");
          let code = "";
          try {
            code = String(JSON.parse(Buffer.concat(chunks).toString("utf8")).code ?? "");
          } catch {
            /* not JSON */
          }
          done(`${res.statusCode}${code ? " " + code : ""}`);
        });
        res.on("error", (e: NodeJS.ErrnoException) => done(`ERR ${e.code ?? e.message}`));
      },
    );
    r.setTimeout(REQUEST_TIMEOUT_MS, () => {
      done("timeout");
      r.destroy();
    });
    r.on("error", (e: NodeJS.ErrnoException) => done(`ERR ${e.code ?? e.message}`));
    r.end(req.body);
  });
}

class Recorder {
  ok = 0;
  sent = 0;
  errors: Record<string, number> = {};
  okLat: number[] = [];
  allLat: number[] = [];
  lag: number[] = [];
  bySecond: { lat: number[]; errors: number }[] = [];
  last = 0;
  constructor(readonly start: number) {}
  async fire(scheduled: number): Promise<void> {
    this.sent++;
    const issued = performance.now();
    this.lag.push(issued - scheduled);
    const label = await send(nextRequest());
    const end = performance.now();
    this.last = Math.max(this.last, end);
    this.allLat.push(end - scheduled);
    const sec = Math.max(0, Math.floor((scheduled - this.start) / 1000));
    const b = (this.bySecond[sec] ??= { lat: [], errors: 0 });
    b.lat.push(end - scheduled);
    if (label !== "200") b.errors++;
    if (label === "200") {
      this.ok++;
      this.okLat.push(end - scheduled);
    } else this.errors[label] = (this.errors[label] ?? 0) + 1;
  }
  result(withLag: boolean): RunResult {
    const wallMs = Math.max(this.last, this.start) - this.start;
    return {
      sent: this.sent,
      ok: this.ok,
      errors: this.errors,
      wallMs,
      okPerSecond: wallMs > 0 ? (this.ok * 1000) / wallMs : 0,
      latency: summarize(this.okLat),
      latencyAll: summarize(this.allLat),
      ...(withLag ? { sendLag: summarize(this.lag) } : {}),
      maxTargetEpoch: maxEpoch,
      timeline: [...this.bySecond].map((b, second) => {
        const x = summarize(b?.lat ?? []);
        return { second, n: x.n, errors: b?.errors ?? 0, p50Ms: x.p50Ms, p99Ms: x.p99Ms, maxMs: x.maxMs };
      }),
    };
  }
}

async function openLoop(rate: number, durationMs: number): Promise<RunResult> {
  const total = Math.round((rate * durationMs) / 1000);
  const rec = new Recorder(performance.now());
  const inFlight: Promise<void>[] = [];
  let k = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor(((performance.now() - rec.start) * rate) / 1000) + 1);
      for (; k < due; k++) inFlight.push(rec.fire(rec.start + (k * 1000) / rate));
      if (k < total) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  await Promise.all(inFlight);
  return rec.result(true);
}

async function closedLoop(concurrency: number, stop: (sent: number) => boolean): Promise<RunResult> {
  const rec = new Recorder(performance.now());
  const worker = async (): Promise<void> => {
    while (!stop(rec.sent)) await rec.fire(performance.now());
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return rec.result(false);
}

async function handle(m: Command): Promise<unknown> {
  switch (m.op) {
    case "init":
      target = new URL(m.url);
      pubkeys = m.pubkeys;
      template = m.template;
      epochs = new Float64Array(pubkeys.length).fill(m.firstEpoch);
      return { ok: true };
    case "open":
      return openLoop(m.rate, m.durationMs);
    case "closed": {
      const end = performance.now() + m.durationMs;
      return closedLoop(m.concurrency, () => performance.now() >= end);
    }
    case "each":
      return closedLoop(m.concurrency, (sent) => sent >= pubkeys.length);
  }
}

process.on("message", (m: Command) => {
  handle(m).then(
    (r) => process.send!({ result: r }),
    (e: Error) => process.send!({ error: e.stack ?? String(e) }),
  );
});
process.on("disconnect", () => process.exit(0));
