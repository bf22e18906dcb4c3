/** The Web3Signer eth2 signing API: POST /api/v1/eth2/sign/{identifier}, GET /api/v1/eth2/publicKeys. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { VigilError } from "../../errors.js";
import type { AppContext } from "../app.js";
import { REQUEST_TYPES } from "../../eth2/request.js";

const PUBKEY = /^0x[0-9a-fA-F]{96}$/;

/**
 * JSON unless the client asks for text and not for JSON: `*\/*` or no Accept header gets JSON
 * (Lodestar < 1.18 and older Lighthouse JSON-parse every answer).
 */
export function wantsText(accept: string | undefined): boolean {
  if (!accept) return false;
  // A client sends the same Accept header with every request: parse each distinct one once.
  let text = acceptCache.get(accept);
  if (text === undefined) {
    text = parseWantsText(accept);
    if (acceptCache.size >= 64) acceptCache.clear();
    acceptCache.set(accept, text);
  }
  return text;
}

const acceptCache = new Map<string, boolean>();

function parseWantsText(accept: string): boolean {
  const types = accept.split(",").map((part) => {
    const [type, ...params] = part.trim().toLowerCase().split(";");
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return { type: type.trim(), q: q ? Number(q.slice(2)) : 1 };
  });
  const accepted = (t: string): boolean => types.some((x) => x.q > 0 && x.type === t);
  if (accepted("application/json") || accepted("application/*") || accepted("*/*")) return false;
  return accepted("text/plain") || accepted("text/*");
}

/** A sign request's body: the largest (a phase0/Altair block with maximal contents) is well under 1 MiB of JSON. */
export const SIGN_BODY_LIMIT = 1024 * 1024;
/** Bytes of sign-request bodies being handled at once; beyond this, 503 VAULT_BUSY before a body is read. */
export const SIGN_BYTES_IN_FLIGHT = 64 * 1024 * 1024;
/** Nesting and size bounds of a sign body (a maximal block nests about 10 deep in about 20,000 values). */
const MAX_DEPTH = 32;
const MAX_VALUES = 200_000;

/**
 * Refuse bodies no request type has the shape of before anything else walks them: a deeply nested
 * value would overflow the stack of whatever serializes it next (the IPC to the vault). Returns
 * how many of its values are JSON numbers (their text is checked then: see nonIntegerNumber).
 */
export function checkBodyShape(body: unknown): number {
  // Iterative (parallel stacks, nothing allocated per value): this runs on every sign request.
  const values: unknown[] = [body];
  const depths: number[] = [1];
  let count = 0;
  let numbers = typeof body === "number" ? 1 : 0;
  while (values.length > 0) {
    const v = values.pop() as Record<string, unknown> | unknown[];
    const depth = depths.pop()!;
    if (depth > MAX_DEPTH) throw new VigilError("bad_request", "INVALID_BODY", `the body nests deeper than ${MAX_DEPTH} levels`);
    if (Array.isArray(v)) {
      count += v.length;
      for (let i = 0; i < v.length; i++) push(v[i], depth);
    } else {
      for (const k in v) {
        count++;
        push(v[k], depth);
      }
    }
    if (count > MAX_VALUES) throw new VigilError("bad_request", "INVALID_BODY", `the body holds more than ${MAX_VALUES} values`);
  }
  return numbers;
  function push(child: unknown, depth: number): void {
    if (typeof child === "object" && child !== null) {
      values.push(child);
      depths.push(depth + 1);
    } else if (typeof child === "number") numbers++;
  }
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;

/**
 * The first JSON number in `text` written with a sign, a fraction or an exponent (`-0`, `1.0`,
 * `1e0`, `1e-400`), or null. JSON.parse turns these into integers (1.0 and 1e0 into 1, 1e-400 and
 * -0 into 0), so only the text tells that the client did not write an unsigned integer; no field
 * of a sign request is signed, fractional or in exponent form (consensus specs: every integer is a uint).
 */
export function nonIntegerNumber(text: string): string | null {
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 34) {
      // a string: skip to its closing quote (a backslash escapes the next character)
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (d === 92) i++;
        else if (d === 34) break;
      }
    } else if (c === 45 || c === 46 || ((c === 101 || c === 69) && i > 0 && isDigit(text.charCodeAt(i - 1)))) {
      // outside strings '-', '.' and an 'e' after a digit belong only to numbers (true and false have no digit before their e)
      let a = i;
      let b = i + 1;
      const inNumber = (x: number): boolean => isDigit(x) || x === 43 || x === 45 || x === 46 || x === 69 || x === 101;
      while (a > 0 && inNumber(text.charCodeAt(a - 1))) a--;
      while (b < n && inNumber(text.charCodeAt(b))) b++;
      return text.slice(a, Math.min(b, a + 40));
    }
  }
  return null;
}


const KNOWN_TYPES = new Set<string>(REQUEST_TYPES);

/** A sign request's share of the bytes-in-flight budget, given back exactly once. */
interface Budget {
  bytes: number;
  /** The handler runs: it gives the share back when it is done with the body, not before. */
  handling: boolean;
  returned: boolean;
}

export function eth2Routes(app: FastifyInstance, ctx: AppContext): void {
  let bytesInFlight = 0;
  const budgets = new WeakMap<object, Budget>();
  const giveBack = (b: Budget | undefined): void => {
    if (!b || b.returned) return;
    b.returned = true;
    bytesInFlight -= b.bytes;
  };
  ctx.metrics.onScrape(() => ctx.metrics.signBytesInFlight.set(bytesInFlight));
  const clients = new WeakMap<object, string | null>();
  /** The JSON text of sign bodies, until the handler has checked their numbers. */
  const bodyTexts = new WeakMap<object, string>();
  // The sign route in a scope of its own: its JSON parser (fastify's own, prototype poisoning
  // refused) also keeps the body's text; other routes keep fastify's parser untouched.
  app.register(async (scope) => {
    const parseJson = scope.getDefaultJsonParser("error", "error");
    scope.addContentTypeParser("application/json", { parseAs: "string" }, (request, text, done) => {
      bodyTexts.set(request, text as string);
      parseJson(request, text as string, done);
    });
    signRoute(scope);
  });

  function signRoute(scope: FastifyInstance): void {
    scope.post<{ Params: { identifier: string } }>(
      "/api/v1/eth2/sign/:identifier",
      {
        bodyLimit: SIGN_BODY_LIMIT,
        schema: { params: { type: "object", properties: { identifier: { type: "string" } }, required: ["identifier"] } },
        // Before a body is read: only the policy's clients (when it names any) may have one read, and
        // bodies waiting for the vault are bounded in bytes, not only in count (a small JSON body can
        // take 7x its size as objects). A share comes back when the handler is done with the body,
        // or, if the handler never ran (body never complete, too large, connection gone), when the
        // request or its response closes, whichever comes first.
        // A callback hook, not an async one: no promise per request on this path.
        onRequest: (request, reply, done) => {
          if (ctx.clientAuth) {
            try {
              clients.set(request, ctx.clientAuth.identify(request));
            } catch (err) {
              ctx.metrics.signRequests.inc({ type: "UNREAD", outcome: err instanceof VigilError ? err.code : "ERROR" });
              return done(err as Error);
            }
          }
          const declared = Number(request.headers["content-length"]);
          const bytes = Number.isSafeInteger(declared) && declared >= 0 ? Math.min(declared, SIGN_BODY_LIMIT) : SIGN_BODY_LIMIT;
          if (bytesInFlight + bytes > SIGN_BYTES_IN_FLIGHT) {
            ctx.metrics.signRequests.inc({ type: "UNREAD", outcome: "VAULT_BUSY" });
            return done(new VigilError("unavailable", "VAULT_BUSY", "too many bytes of sign requests in flight; retry"));
          }
          bytesInFlight += bytes;
          const budget: Budget = { bytes, handling: false, returned: false };
          budgets.set(request, budget);
          const early = (): void => {
            if (!budget.handling) giveBack(budget);
          };
          request.raw.once("close", early);
          reply.raw.once("close", early);
          done();
        },
      },
      async (request, reply) => {
        const budget = budgets.get(request);
        if (budget) budget.handling = true;
        try {
          return await sign(request, reply);
        } finally {
          giveBack(budget);
        }
      },
    );
  }

  async function sign(request: FastifyRequest<{ Params: { identifier: string } }>, reply: FastifyReply): Promise<FastifyReply> {
    const started = process.hrtime.bigint();
    const identifier = request.params.identifier;
    const rawType = (request.body as { type?: unknown } | null)?.type;
    // Metric labels only from the known types: any other string would be a new time series.
    const label = typeof rawType === "string" && KNOWN_TYPES.has(rawType) ? rawType : "INVALID";
    try {
      if (!PUBKEY.test(identifier)) {
        throw new VigilError("bad_request", "INVALID_PUBKEY", "the identifier must be a 0x-prefixed 48-byte BLS public key");
      }
      const text = bodyTexts.get(request);
      bodyTexts.delete(request);
      if (checkBodyShape(request.body) > 0) {
        // Lodestar and Teku send every uint64 as a decimal string: numbers are rare, their text is read only then.
        const odd = text === undefined ? "a JSON number of a body not read as JSON text" : nonIntegerNumber(text);
        if (odd !== null) throw new VigilError("bad_request", "INVALID_NUMBER", `${odd} is not an unsigned integer as written: send integers as decimal strings ("1") or plain JSON integers (1), without sign, fraction or exponent`);
      }
      const client = clients.get(request) ?? null;
      const result = await ctx.vault.sign(identifier.toLowerCase(), request.body, client);
      for (const w of result.warnings ?? []) {
        ctx.metrics.policyDecisions.inc({ rule: w.ruleId, outcome: "warned" });
        request.log.warn({ pubkey: identifier, rule: w.ruleId }, `policy warning: ${w.message}`);
      }
      const signature = result.signature;
      ctx.metrics.signRequests.inc({ type: result.type, outcome: "signed" });
      ctx.metrics.signDuration.observe({ type: result.type }, Number(process.hrtime.bigint() - started) / 1e9);
      if (request.log.level === "debug" || request.log.level === "trace") request.log.debug({ pubkey: identifier, summary: result.summary }, "signed");
      if (wantsText(request.headers.accept)) return reply.type("text/plain; charset=utf-8").send(signature);
      return reply.type("application/json").send({ signature });
    } catch (err) {
      ctx.metrics.signRequests.inc({ type: label, outcome: err instanceof VigilError ? err.code : "ERROR" });
      const rule = err instanceof VigilError ? (err.details?.rule_id as string | undefined) : undefined;
      if (rule) ctx.metrics.policyDecisions.inc({ rule, outcome: (err as VigilError).code === "APPROVAL_REQUIRED" ? "approval_required" : "refused" });
      if (err instanceof VigilError && err.kind === "slashing") {
        request.log.warn({ pubkey: identifier, rule: err.code }, `refused by slashing protection: ${err.message}`);
      }
      throw err;
    }
  }

  app.get("/api/v1/eth2/publicKeys", async (request) => {
    if (ctx.clientAuth) ctx.clientAuth.identify(request); // the key list is for the policy's clients too
    return (await ctx.vault.listKeys()).map((k) => k.pubkey);
  });
}
