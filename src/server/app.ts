/** The HTTP face of Vigil: a fastify app in front of the key vault. It holds no key material. */
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

export function buildApp(ctx: AppContext, opts: AppOptions = {}): FastifyInstance {
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
    bodyLimit: 4 * 1024 * 1024, // a full phase0/altair block with maximal contents fits
    // A request log line per signature is noise at thousands per second; outcomes are logged by the routes.
    logController: new LogController({ disableRequestLogging: true }),
    keepAliveTimeout: 30_000,
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
