/** The Web3Signer eth2 signing API: POST /api/v1/eth2/sign/{identifier}, GET /api/v1/eth2/publicKeys. */
import type { FastifyInstance } from "fastify";
import { VigilError } from "../../errors.js";
import type { AppContext } from "../app.js";

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

export function eth2Routes(app: FastifyInstance, ctx: AppContext): void {
  app.post<{ Params: { identifier: string } }>(
    "/api/v1/eth2/sign/:identifier",
    { schema: { params: { type: "object", properties: { identifier: { type: "string" } }, required: ["identifier"] } } },
    async (request, reply) => {
      const started = process.hrtime.bigint();
      const identifier = request.params.identifier;
      const rawType = (request.body as { type?: unknown } | null)?.type;
      const label = typeof rawType === "string" && /^[A-Z_0-9]{1,40}$/.test(rawType) ? rawType : "INVALID";
      try {
        if (!PUBKEY.test(identifier)) {
          throw new VigilError("bad_request", "INVALID_PUBKEY", "the identifier must be a 0x-prefixed 48-byte BLS public key");
        }
        const client = ctx.clientAuth ? ctx.clientAuth.identify(request) : null;
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
    },
  );

  app.get("/api/v1/eth2/publicKeys", async () => (await ctx.vault.listKeys()).map((k) => k.pubkey));
}
