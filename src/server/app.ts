/** The HTTP face of Vigil: a fastify app in front of the key vault. It holds no key material. */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { VaultApi } from "../vault/api.js";
import { errorHandler, notFoundHandler } from "./errors.js";
import type { Metrics } from "./metrics.js";
import type { Reloader } from "./reload.js";
import { eth2Routes } from "./routes/eth2.js";
import { healthRoutes } from "./routes/health.js";
import { keymanagerRoutes } from "./routes/keymanager.js";

export interface AppContext {
  vault: VaultApi;
  metrics: Metrics;
  reload: Reloader;
  /** Bearer token of the Keymanager API; without one the Keymanager API is not served. */
  apiToken?: string;
}

export interface AppOptions {
  /** A pino logger; none: silent (tests). */
  logger?: FastifyBaseLogger;
}

export function buildApp(ctx: AppContext, opts: AppOptions = {}): FastifyInstance {
  const app = Fastify({
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
    bodyLimit: 4 * 1024 * 1024, // a full phase0/altair block with maximal contents fits
    // A request log line per signature is noise at thousands per second; outcomes are logged by the routes.
    logController: new LogController({ disableRequestLogging: true }),
    keepAliveTimeout: 30_000,
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  eth2Routes(app, ctx);
  healthRoutes(app, ctx);
  if (ctx.apiToken) keymanagerRoutes(app, ctx, ctx.apiToken);
  return app;
}
