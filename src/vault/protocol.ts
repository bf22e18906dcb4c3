/**
 * The vault IPC protocol (parent ⇄ vault process over the anonymous socketpair that
 * child_process.fork creates: no other process can connect to it).
 */
import { VigilError, type ErrorKind } from "../errors.js";
import { VAULT_OPS, type VaultOp } from "./api.js";

/** Requests one side may have in flight; more are refused with 503 VAULT_BUSY. */
export const MAX_IN_FLIGHT = 8192;

export interface VaultRequest {
  id: number;
  op: VaultOp;
  args: unknown[];
}

export type VaultResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: WireError };

export interface WireError {
  kind: ErrorKind;
  code: string;
  message: string;
  details?: Record<string, unknown>;
}

/** Messages the vault sends unprompted. */
export type VaultEvent =
  | { event: "ready" }
  | { event: "fatal"; error: { kind: ErrorKind; code: string; message: string } }
  | { event: "locked"; locked: boolean };

/**
 * Messages queued in one turn of the event loop travel together as one IPC message
 * `{ batch: [...] }`: one write and one parse instead of one per request.
 */
export class Batcher<T> {
  private queue: T[] = [];
  private scheduled = false;
  /**
   * @param unsendable told of a message that could not be serialized (the batch is then sent one
   *   message at a time, so that one bad message fails alone instead of taking the process down)
   */
  constructor(
    private readonly flushTo: (batch: T[]) => void,
    private readonly unsendable: (m: T, e: unknown) => void,
  ) {}
  push(m: T): void {
    this.queue.push(m);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        const batch = this.queue;
        this.queue = [];
        try {
          this.flushTo(batch);
        } catch {
          for (const one of batch) {
            try {
              this.flushTo([one]);
            } catch (e) {
              this.unsendable(one, e);
            }
          }
        }
      });
    }
  }
}

export function isVaultRequest(m: unknown): m is VaultRequest {
  if (typeof m !== "object" || m === null) return false;
  const r = m as Record<string, unknown>;
  return (
    Number.isSafeInteger(r.id) &&
    typeof r.op === "string" &&
    (VAULT_OPS as readonly string[]).includes(r.op) &&
    Array.isArray(r.args) &&
    r.args.length <= 3
  );
}

export function errorToWire(e: unknown): WireError {
  if (e instanceof VigilError) return { kind: e.kind, code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) };
  return { kind: "internal", code: "INTERNAL_ERROR", message: "internal error in the key vault; see its log" };
}

export function errorFromWire(e: WireError): VigilError {
  return new VigilError(e.kind, e.code, e.message, e.details);
}
