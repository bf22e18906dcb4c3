/** Liveness, readiness, key reload and metrics: /upcheck, /healthcheck, /reload, /metrics. */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../app.js";

/** True when the Accept header names JSON and neither text nor anything. */
function wantsJsonOnly(accept: string | undefined): boolean {
  if (!accept) return false;
  const types = accept.split(",").map((t) => t.split(";")[0].trim().toLowerCase());
  return types.includes("application/json") && !types.some((t) => t === "*/*" || t.startsWith("text/"));
}

export function healthRoutes(app: FastifyInstance, ctx: AppContext): void {
  // Web3Signer answers text "OK"; clients that accept only JSON (Lodestar >= 1.18) get {"status":"OK"}.
  app.get("/upcheck", async (request, reply) =>
    wantsJsonOnly(request.headers.accept)
      ? reply.type("application/json").send({ status: "OK" })
      : reply.type("text/plain; charset=utf-8").send("OK"),
  );

  // 200 only once keys are loaded (and unlocked) and the protection database answers.
  app.get("/healthcheck", async (_request, reply) => {
    let s;
    try {
      s = await ctx.vault.status();
    } catch {
      s = null;
    }
    const keysUp = !!s && s.keys > 0 && !s.locked;
    const dbUp = !!s && s.dbUp;
    const status = keysUp && dbUp ? "UP" : "DOWN";
    return reply.status(status === "UP" ? 200 : 503).send({
      status,
      checks: [
        { id: "vault", status: s ? "UP" : "DOWN", locked: s?.locked ?? null },
        { id: "keys-check", status: keysUp ? "UP" : "DOWN", keys: s?.keys ?? 0 },
        { id: "slashing-protection-db", status: dbUp ? "UP" : "DOWN" },
        { id: "ha", status: "UP", role: s?.role ?? null, fence: s?.fence ?? null },
      ],
      role: s?.role ?? null,
      outcome: status,
    });
  });

  app.post("/reload", async (_request, reply) => {
    if (ctx.reload.status === "running") {
      return reply.status(409).send({ code: "RELOAD_IN_PROGRESS", message: "a reload is already running" });
    }
    void ctx.reload.run();
    return reply.status(202).send({ status: "accepted", message: "reload started; GET /reload for its status" });
  });

  app.get("/reload", async () => ctx.reload.state());

  app.get("/metrics", async (_request, reply) => {
    const s = await ctx.vault.status().catch(() => null);
    ctx.metrics.keysLoaded.set(s?.keys ?? 0);
    ctx.metrics.haActive.set(s?.role === "standby" ? 0 : 1);
    if (s) ctx.metrics.observeVault(s.stats);
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });
}
