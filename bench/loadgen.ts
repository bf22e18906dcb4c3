/**
 * The load generator: its own process (child_process.fork), a small keep-alive HTTP/1.1 client on
 * raw sockets (at most 64 connections, one request in flight on each) sending unique,
 * non-slashable ATTESTATION sign requests.
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
 *   {op:"burst", size, intervalMs, count}  `count` bursts of `size` requests sent at once (as a
 *                                   validator client sends a slot's attestations), one every
 *                                   `intervalMs`; latency counts from the burst's start (waiting
 *                                   for one of the 64 connections included)
 *   → RunResult (below)
 */
import net from "node:net";
import { attestationBody, type Template } from "./requests.js";
import { summarize, type Summary } from "./stats.js";

export type Command =
  | { op: "init"; url: string; pubkeys: string[]; template: Template; firstEpoch: number }
  | { op: "open"; rate: number; durationMs: number }
  | { op: "closed"; concurrency: number; durationMs: number }
  | { op: "each"; concurrency: number }
  | { op: "burst"; size: number; intervalMs: number; count: number };

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
  /** bursts: from each burst's start to its last answer (ms) */
  burst?: { size: number; intervalMs: number; completion: Summary };
  /** per second of the run (by scheduled send time): requests, errors, p50/p99/max latency (ms) */
  timeline: { second: number; n: number; errors: number; p50Ms: number; p99Ms: number; maxMs: number }[];
}

const REQUEST_TIMEOUT_MS = 30_000;
const MAX_SOCKETS = 64;
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

const CRLF2 = Buffer.from("\r\n\r\n");

/**
 * One keep-alive HTTP/1.1 connection with one request at a time (as validator clients do), on a
 * raw socket: the client's own CPU per request stays small, since it shares the machine's cores
 * with Vigil. Answers are framed by Content-Length (Vigil always sends it).
 */
class Conn {
  private buf: Buffer = Buffer.alloc(0);
  private done: ((label: string, body: Buffer) => void) | null = null;
  startedAt = 0;
  closed = false;
  constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on("data", (d: Buffer) => this.onData(d));
    const fail = (why: string): void => {
      this.closed = true;
      this.finish(why, Buffer.alloc(0));
    };
    socket.on("error", (e: NodeJS.ErrnoException) => fail(`ERR ${e.code ?? e.message}`));
    socket.on("close", () => fail("ERR ECONNRESET"));
  }
  request(path: string, body: string, done: (label: string, body: Buffer) => void): void {
    this.done = done;
    this.startedAt = performance.now();
    const len = Buffer.byteLength(body);
    this.socket.write(
      `POST ${path} HTTP/1.1\r\nHost: ${target.host}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: ${len}\r\n\r\n${body}`,
    );
  }
  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    const end = this.buf.indexOf(CRLF2);
    if (end < 0) return;
    const head = this.buf.toString("latin1", 0, end);
    const status = head.slice(9, 12);
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const bodyLen = m ? Number(m[1]) : 0;
    if (this.buf.length < end + 4 + bodyLen) return;
    const body = this.buf.subarray(end + 4, end + 4 + bodyLen);
    this.buf = Buffer.alloc(0);
    this.finish(status, body);
  }
  finish(label: string, body: Buffer): void {
    const done = this.done;
    this.done = null;
    if (done) done(label, body);
  }
  get busy(): boolean {
    return this.done !== null;
  }
}

const idle: Conn[] = [];
const all = new Set<Conn>();
const waiting: (() => void)[] = [];

/** Requests that take longer than REQUEST_TIMEOUT_MS fail as "timeout" and their connection is dropped. */
setInterval(() => {
  const now = performance.now();
  for (const c of all) {
    if (c.busy && now - c.startedAt > REQUEST_TIMEOUT_MS) {
      c.finish("timeout", Buffer.alloc(0));
      c.socket.destroy();
    }
  }
}, 1000).unref();

function connection(): Promise<Conn> {
  for (;;) {
    const c = idle.pop();
    if (!c) break;
    if (!c.closed) return Promise.resolve(c);
    all.delete(c);
  }
  if (all.size < MAX_SOCKETS) {
    const c = new Conn(net.connect(Number(target.port), target.hostname));
    all.add(c);
    return Promise.resolve(c);
  }
  return new Promise((resolve) => waiting.push(() => resolve(connection())));
}

function release(c: Conn): void {
  if (c.closed) all.delete(c);
  else idle.push(c);
  waiting.shift()?.();
}

/** One request; resolves with "200" or an error label, never rejects. */
async function send(req: { path: string; body: string }): Promise<string> {
  const c = await connection();
  return new Promise((resolve) => {
    c.request(req.path, req.body, (status, body) => {
      release(c);
      if (status === "200" || !/^\d{3}$/.test(status)) return resolve(status);
      let code = "";
      try {
        code = String(JSON.parse(body.toString("utf8")).code ?? "");
      } catch {
        /* not JSON */
      }
      resolve(`${status}${code ? " " + code : ""}`);
    });
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

async function bursts(size: number, intervalMs: number, count: number): Promise<RunResult> {
  const rec = new Recorder(performance.now());
  const completion: number[] = [];
  const all: Promise<void>[] = [];
  for (let b = 0; b < count; b++) {
    const due = rec.start + b * intervalMs - performance.now();
    if (due > 0) await new Promise((r) => setTimeout(r, due));
    const t0 = performance.now();
    all.push(Promise.all(Array.from({ length: size }, () => rec.fire(t0))).then(() => void completion.push(performance.now() - t0)));
  }
  await Promise.all(all);
  return { ...rec.result(false), burst: { size, intervalMs, completion: summarize(completion) } };
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
    case "burst":
      return bursts(m.size, m.intervalMs, m.count);
  }
}

process.on("message", (m: Command) => {
  handle(m).then(
    (r) => process.send!({ result: r }),
    (e: Error) => process.send!({ error: e.stack ?? String(e) }),
  );
});
process.on("disconnect", () => process.exit(0));
