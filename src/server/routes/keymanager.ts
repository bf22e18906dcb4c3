/** The standard Keymanager API (ethereum/keymanager-APIs): GET/POST/DELETE /eth/v1/keystores. */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../app.js";
import { requireBearer } from "../auth.js";

const PUBKEY = "^0x[0-9a-fA-F]{96}$";
/** An import may carry many keystores (~1 KiB each) and a whole slashing-protection history: more than the 4 MiB other routes take. */
export const KEYMANAGER_IMPORT_BODY_LIMIT = 64 * 1024 * 1024;

export function keymanagerRoutes(app: FastifyInstance, ctx: AppContext, token: string): void {
  const preHandler = requireBearer(token); // onRequest: before the body is read, so a caller without the token gets 401/403, not a parsed body

  app.get("/eth/v1/keystores", { onRequest: preHandler }, async () => {
    const keys = await ctx.vault.listKeys();
    return {
      data: keys.map((k) => ({
        validating_pubkey: k.pubkey,
        ...(k.path ? { derivation_path: k.path } : {}),
        readonly: k.readonly,
      })),
    };
  });

  app.post<{ Body: { keystores: string[]; passwords: string[]; slashing_protection?: string } }>(
    "/eth/v1/keystores",
    {
      onRequest: preHandler,
      bodyLimit: KEYMANAGER_IMPORT_BODY_LIMIT,
      schema: {
        body: {
          type: "object",
          required: ["keystores", "passwords"],
          properties: {
            keystores: { type: "array", maxItems: 10000, items: { type: "string", maxLength: 65536 } },
            passwords: { type: "array", maxItems: 10000, items: { type: "string", maxLength: 4096 } },
            slashing_protection: { type: "string" },
          },
        },
      },
    },
    async (request) => {
      const { keystores, passwords, slashing_protection } = request.body;
      const data = await ctx.vault.importKeystores(keystores, passwords, slashing_protection);
      request.log.info({ imported: data.filter((d) => d.status === "imported").length, requested: keystores.length }, "keymanager import");
      return { data };
    },
  );

  app.delete<{ Body: { pubkeys: string[] } }>(
    "/eth/v1/keystores",
    {
      onRequest: preHandler,
      schema: {
        body: {
          type: "object",
          required: ["pubkeys"],
          properties: { pubkeys: { type: "array", maxItems: 10000, items: { type: "string", pattern: PUBKEY } } },
        },
      },
    },
    async (request) => {
      const { statuses, slashingProtection } = await ctx.vault.deleteKeys(request.body.pubkeys);
      request.log.info({ deleted: statuses.filter((s) => s.status === "deleted").length }, "keymanager delete");
      return { data: statuses, slashing_protection: slashingProtection };
    },
  );
}
