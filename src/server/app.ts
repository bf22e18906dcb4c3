/** The HTTP face of Vigil: a fastify app in front of the key vault. It holds no key material. */
import type { Socket } from "node:net";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { VaultApi } from "../vault/api.js";
import { errorHandler, notFoundHandler } from "./errors.js";
import type { Metrics } from "./metrics.js";
import type { ClientAuth } from "./clients.js";
import type { Reloader } from "./reload.js";
import { eth2Routes } from "./routes/eth2.js";
import { healthRoutes } from "./routes/health.js";
import { keymanagerRoutes } from "./routes/keymanager.js";
import { adminRoutes } from "./routes/admin.js";

export interface AppContext {
  vault: VaultApi;
  metrics: Metrics;
  reload: Reloader;
  /** Bearer token of the Keymanager and admin APIs; without one they are not served. */
  apiToken?: string;
  /** Client authentication of the signing API (when the policy names clients). */
  clientAuth?: ClientAuth;
}

export interface AppOptions {
  /** A pino logger; none: silent (tests). */
  logger?: FastifyBaseLogger;
  /** Serve HTTPS; with `ca`, ask clients for certificates (identities by fingerprint). */
  https?: { key: Buffer; cert: Buffer; ca?: Buffer };
}

/**
 * Requests node's HTTP parser cannot read (malformed, headers too large, too slow): a JSON answer if
 * nothing was written on the socket yet, then the socket is destroyed.
 */
function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === "ECONNRESET" || socket.destroyed) return;
  const [status, code, message] =
    err.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? ["408 Request Timeout", "REQUEST_TIMEOUT", "the request did not arrive in time"]
      : err.code === "HPE_HEADER_OVERFLOW"
        ? ["431 Request Header Fields Too Large", "HEADERS_TOO_LARGE", "request headers too large"]
        : ["400 Bad Request", "BAD_REQUEST", "malformed HTTP request"];
  if (socket.writable && socket.bytesWritten === 0) {
    const body = JSON.stringify({ code, message });
    socket.write(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy(err);
}

export function buildApp(ctx: AppContext, opts: AppOptions = {}): FastifyInstance {
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
    bodyLimit: 4 * 1024 * 1024, // a full phase0/altair block with maximal contents fits
    // A request log line per signature is noise at thousands per second; outcomes are logged by the routes.
    logController: new LogController({ disableRequestLogging: true }),
    keepAliveTimeout: 30_000,
    // Errors fastify raises before routing (a malformed URL escape …): the same {code, message} bodies.
    frameworkErrors: (error, request, reply) => errorHandler(error, request, reply),
    // A request (headers and body) must arrive within 60 s: a client that opens requests and never
    // finishes them cannot hold sign-body budget or sockets for ever.
    requestTimeout: 60_000,
    clientErrorHandler,
    ...(opts.https
      ? { https: { ...opts.https, requestCert: !!opts.https.ca, rejectUnauthorized: false } }
      : {}),
  }) as unknown as FastifyInstance;
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  eth2Routes(app, ctx);
  healthRoutes(app, ctx);
  if (ctx.apiToken) {
    keymanagerRoutes(app, ctx, ctx.apiToken);
    adminRoutes(app, ctx, ctx.apiToken);
  }
  return app;
}
