/**
 * Errors the core raises. The core knows nothing of HTTP: each error has a `kind`
 * that the server maps to a status code, and a stable machine-readable `code`.
 */
export type ErrorKind =
  | "bad_request" // malformed or invalid input (HTTP 400)
  | "unauthorized" // missing/wrong credentials (HTTP 401)
  | "forbidden" // refused by the operator's policy (HTTP 403)
  | "not_found" // unknown key or resource (HTTP 404)
  | "conflict" // operation already running (HTTP 409)
  | "slashing" // refused by slashing protection (HTTP 412)
  | "unavailable" // cannot decide safely right now: locked, store down (HTTP 503)
  | "internal"; // a bug (HTTP 500); never used for bad input

export class VigilError extends Error {
  constructor(
    readonly kind: ErrorKind,
    readonly code: string,
    message: string,
    /** Extra machine-readable fields for the error body (e.g. approval_id). */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "VigilError";
  }
}

export const badRequest = (code: string, message: string): VigilError => new VigilError("bad_request", code, message);
