/** Liveness, readiness, key reload and metrics: /upcheck, /healthcheck, /reload, /metrics. */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../app.js";

export function healthRoutes(app: FastifyInstance, ctx: AppContext): void {
  app.get("/upcheck", async (_request, reply) => reply.type("text/plain; charset=utf-8").send("OK"));

  // 200 only once keys are loaded and the protection database answers.
  app.get("/healthcheck", async (_request, reply) => {
    const keysUp = ctx.vault.size > 0;
    let dbUp = true;
    try {
      await ctx.store.getGenesisValidatorsRoot();
    } catch {
      dbUp = false;
    }
    const status = keysUp && dbUp ? "UP" : "DOWN";
    return reply.status(status === "UP" ? 200 : 503).send({
      status,
      checks: [
        { id: "keys-check", status: keysUp ? "UP" : "DOWN", keys: ctx.vault.size },
        { id: "slashing-protection-db", status: dbUp ? "UP" : "DOWN" },
      ],
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
    ctx.metrics.keysLoaded.set(ctx.vault.size);
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });
}
