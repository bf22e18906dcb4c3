/**
 * The admin API (bearer token, like the Keymanager API): approvals of requests that the policy
 * holds back. Approvers sign on their own machines (`vigil approvals approve`); only
 * {approver, signature} travels, and the vault verifies it against the policy's approver keys.
 */
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../app.js";
import { requireBearer } from "../auth.js";

const ID = { type: "object", properties: { id: { type: "string", pattern: "^[0-9a-f]{32}$" } }, required: ["id"] } as const;
const DECISION = {
  type: "object",
  required: ["approver", "signature"],
  properties: { approver: { type: "string", maxLength: 64 }, signature: { type: "string", maxLength: 200 } },
} as const;

export function adminRoutes(app: FastifyInstance, ctx: AppContext, token: string): void {
  const preHandler = requireBearer(token); // onRequest: before the body is read, so a caller without the token gets 401/403, not a parsed body
  app.get("/admin/v1/approvals", { onRequest: preHandler }, async () => ({ data: await ctx.vault.listApprovals() }));
  app.get<{ Params: { id: string } }>("/admin/v1/approvals/:id", { onRequest: preHandler, schema: { params: ID } }, async (request) => ({
    data: await ctx.vault.getApproval(request.params.id),
  }));
  for (const verb of ["approve", "reject"] as const) {
    app.post<{ Params: { id: string }; Body: { approver: string; signature: string } }>(
      `/admin/v1/approvals/:id/${verb}`,
      { onRequest: preHandler, schema: { params: ID, body: DECISION } },
      async (request) => {
        const { approver, signature } = request.body;
        const data = await ctx.vault[verb](request.params.id, approver, signature);
        request.log.warn({ id: request.params.id, approver }, `approval ${verb}d`);
        return { data };
      },
    );
  }
}
