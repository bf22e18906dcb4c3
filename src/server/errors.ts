/** Mapping core errors and framework errors to HTTP: every error body is JSON {code, message}. */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { VigilError, type ErrorKind } from "../errors.js";

const STATUS: Record<ErrorKind, number> = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  slashing: 412,
  unavailable: 503,
  internal: 500,
};

export interface ErrorBody {
  code: string;
  message: string;
}

/** Status and body for any error thrown while handling a request. */
export function toHttpError(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof VigilError) return { status: STATUS[err.kind], body: { ...err.details, code: err.code, message: err.message } };
  const fe = err as Partial<FastifyError>;
  if (fe && typeof fe.statusCode === "number" && fe.statusCode >= 400 && fe.statusCode < 500) {
    if (fe.validation) return { status: 400, body: { code: "INVALID_REQUEST", message: fe.message ?? "invalid request" } };
    const code =
      fe.code === "FST_ERR_CTP_INVALID_JSON_BODY" || fe.code === "FST_ERR_CTP_EMPTY_JSON_BODY" || (err instanceof SyntaxError)
        ? "INVALID_JSON"
        : fe.code === "FST_ERR_CTP_BODY_TOO_LARGE"
          ? "BODY_TOO_LARGE"
          : fe.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE"
            ? "UNSUPPORTED_MEDIA_TYPE"
            : "BAD_REQUEST";
    return { status: fe.statusCode, body: { code, message: fe.message ?? "bad request" } };
  }
  return { status: 500, body: { code: "INTERNAL_ERROR", message: "internal error; see the signer's log" } };
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body } = toHttpError(err);
  if (status >= 500) request.log.error({ err }, "request failed");
  else request.log.info({ code: body.code, status }, body.message);
  void reply.status(status).type("application/json").send(body);
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  void reply.status(404).send({ code: "NOT_FOUND", message: `no route ${request.method} ${request.url.split("?")[0]}` });
}
