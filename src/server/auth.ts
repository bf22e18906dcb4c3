/**
 * Bearer-token authentication for the Keymanager API. The token lives in
 * <data-dir>/api-token.txt (created 0600 on first start) or a file given with
 * --keymanager-token-file. Unlike Web3Signer, Vigil never serves the Keymanager API without it.
 */
import { randomBytes, timingSafeEqual, createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { FastifyRequest } from "fastify";
import { VigilError } from "../errors.js";

/** Read the token file, creating it (mode 0600, 32 random bytes as hex) if it does not exist. */
export function loadOrCreateToken(file: string): { token: string; created: boolean } {
  try {
    const token = fs.readFileSync(file, "utf8").trim();
    if (token.length < 16) throw new VigilError("bad_request", "WEAK_API_TOKEN", `${file}: the API token must be at least 16 characters`);
    return { token, created: false };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString("hex");
  fs.writeFileSync(file, token + "\n", { mode: 0o600, flag: "wx" });
  return { token, created: true };
}

const digest = (s: string): Buffer => createHash("sha256").update(s).digest();

/**
 * A fastify hook that refuses requests without the right `Authorization: Bearer <token>`: 401
 * when no token is given, 403 when a wrong one is (the Keymanager API's Unauthorized / Forbidden).
 */
export function requireBearer(token: string): (request: FastifyRequest) => Promise<void> {
  const expected = digest(token);
  return async (request) => {
    const header = request.headers.authorization;
    const m = typeof header === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) throw new VigilError("unauthorized", "UNAUTHORIZED", "no bearer token (see api-token.txt in the data directory)");
    // Compare digests so neither the length nor the content leaks through timing.
    if (!timingSafeEqual(digest(m[1]), expected)) throw new VigilError("forbidden", "INVALID_TOKEN", "wrong bearer token");
  };
}
