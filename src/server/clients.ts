/**
 * Client identities of the signing API (policy `clients`): a bearer token (matched by its
 * SHA-256) or a TLS client certificate (matched by the SHA-256 fingerprint of its DER). When the
 * policy names clients, every sign request must come from one of them (else 401).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { TLSSocket } from "node:tls";
import type { FastifyRequest } from "fastify";
import { VigilError } from "../errors.js";

export interface ClientIdentity {
  name: string;
  tokenSha256?: string;
  tlsFingerprintSha256?: string;
}

const same = (a: string, b: string): boolean => a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b));

export class ClientAuth {
  constructor(private readonly clients: ClientIdentity[]) {}

  /** The client making this request; throws 401 when it is none of the configured ones. */
  identify(request: FastifyRequest): string {
    const header = request.headers.authorization;
    const m = typeof header === "string" ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (m) {
      const digest = createHash("sha256").update(m[1]).digest("hex");
      const c = this.clients.find((x) => x.tokenSha256 && same(x.tokenSha256, digest));
      if (c) return c.name;
    }
    const socket = request.raw.socket as TLSSocket;
    if (typeof socket.getPeerCertificate === "function") {
      const cert = socket.getPeerCertificate();
      if (cert && cert.raw) {
        const fp = createHash("sha256").update(cert.raw).digest("hex");
        const c = this.clients.find((x) => x.tlsFingerprintSha256 && same(x.tlsFingerprintSha256, fp));
        if (c) return c.name;
      }
    }
    throw new VigilError("unauthorized", "UNKNOWN_CLIENT", "this signer's policy admits only known clients: send a valid bearer token or TLS client certificate");
  }
}
