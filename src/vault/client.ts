/** The HTTP process's side of the vault: forks the vault process and forwards typed requests. */
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { withNodeFlags } from "../config/node-flags.js";
import { VigilError } from "../errors.js";
import type { DeleteStatus, ImportStatus, KeyInfo, SignOutcome, VaultApi, VaultOp, VaultStatus } from "./api.js";
import { Batcher, errorFromWire, MAX_IN_FLIGHT, type VaultEvent, type VaultRequest, type VaultResponse } from "./protocol.js";
import type { VaultConfig } from "./service.js";

const CHILD = fileURLToPath(new URL("./child.js", import.meta.url));
const down = (why: string): VigilError => new VigilError("unavailable", "VAULT_DOWN", `the key vault process is not running (${why})`);

export class VaultClient implements VaultApi {
  private nextId = 1;
  private readonly outbox = new Batcher<VaultRequest>(
    (batch) => {
      this.child.send({ batch }, (err) => {
        if (!err) return;
        for (const r of batch) {
          const p = this.pending.get(r.id);
          if (p && this.pending.delete(r.id)) p.reject(down(err.message));
        }
      });
    },
    (r, e) => {
      const p = this.pending.get(r.id);
      if (p && this.pending.delete(r.id)) p.reject(new VigilError("bad_request", "INVALID_BODY", `the request cannot be passed to the key vault (${(e as Error).message})`));
    },
  );
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  private exited: string | null = null;

  private constructor(
    private readonly child: ChildProcess,
    onExit: (why: string) => void,
  ) {
    child.on("message", (m: { batch?: VaultResponse[] } | VaultEvent) => {
      if (!("batch" in m) || !Array.isArray(m.batch)) return;
      for (const r of m.batch) {
        const p = this.pending.get(r.id);
        if (!p) continue;
        this.pending.delete(r.id);
        if (r.ok) p.resolve(r.result);
        else p.reject(errorFromWire(r.error));
      }
    });
    child.on("exit", (code, signal) => {
      this.exited = signal ? `killed by ${signal}` : `exit code ${code}`;
      for (const p of this.pending.values()) p.reject(down(this.exited));
      this.pending.clear();
      onExit(this.exited);
    });
  }

  /**
   * Fork the vault process and wait until it has opened the protection database and loaded
   * the keys. It shares this process's stdin (for an unlock prompt), stdout and stderr.
   */
  static spawn(config: VaultConfig & { logLevel?: string }, onExit: (why: string) => void): Promise<VaultClient> {
    const child = fork(CHILD, [], {
      stdio: ["inherit", "inherit", "inherit", "ipc"],
      // Memory: V8's heap sizing as for this process (NODE_FLAGS) and two malloc arenas for the
      // vault's threads instead of glibc's 8 per core (each thread's arena holds on to freed memory).
      execArgv: withNodeFlags(process.execArgv),
      env: { MALLOC_ARENA_MAX: "2", ...process.env, VIGIL_VAULT_CONFIG: JSON.stringify(config) },
      serialization: "json",
    });
    // --unlock env:VAR: the vault has its copy; this process needs none (its initial environment,
    // /proc/<pid>/environ, still shows it: file: or stdin keep it out of the HTTP process altogether).
    if (config.unlock?.startsWith("env:")) delete process.env[config.unlock.slice("env:".length)];
    return new Promise((resolve, reject) => {
      const early = (code: number | null, signal: string | null): void =>
        reject(down(signal ? `killed by ${signal}` : `exit code ${code}`));
      child.once("exit", early);
      child.on("message", function first(m: VaultEvent) {
        if (!("event" in m)) return;
        if (m.event === "ready") {
          child.off("message", first);
          child.off("exit", early);
          resolve(new VaultClient(child, onExit));
        } else if (m.event === "fatal") {
          child.off("message", first);
          child.off("exit", early);
          reject(errorFromWire(m.error));
        }
      });
    });
  }

  private call<T>(op: VaultOp, ...args: unknown[]): Promise<T> {
    if (this.exited) return Promise.reject(down(this.exited));
    if (this.pending.size >= MAX_IN_FLIGHT) {
      return Promise.reject(new VigilError("unavailable", "VAULT_BUSY", "too many requests in flight to the key vault"));
    }
    // JSON turns an undefined argument into null: leave trailing ones out, so that the vault sees them absent.
    while (args.length > 0 && args[args.length - 1] === undefined) args.pop();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.outbox.push({ id, op, args });
    });
  }

  sign(pubkey: string, body: unknown, client: string | null = null): Promise<SignOutcome> {
    return this.call("sign", pubkey, body, client);
  }
  listKeys(): Promise<KeyInfo[]> {
    return this.call("listKeys");
  }
  status(): Promise<VaultStatus> {
    return this.call("status");
  }
  reload(): Promise<{ errors: number }> {
    return this.call("reload");
  }
  started(): Promise<void> {
    return this.call("started");
  }
  importKeystores(keystores: string[], passwords: string[], slashingProtection?: string): Promise<ImportStatus[]> {
    return this.call("importKeystores", keystores, passwords, slashingProtection);
  }
  deleteKeys(pubkeys: string[]): Promise<{ statuses: DeleteStatus[]; slashingProtection: string }> {
    return this.call("deleteKeys", pubkeys);
  }
  listApprovals(): Promise<unknown[]> {
    return this.call("listApprovals");
  }
  getApproval(id: string): Promise<unknown> {
    return this.call("getApproval", id);
  }
  approve(id: string, approver: string, signature: string): Promise<unknown> {
    return this.call("approve", id, approver, signature);
  }
  reject(id: string, approver: string, signature: string): Promise<unknown> {
    return this.call("reject", id, approver, signature);
  }

  /** Stop the vault process (SIGTERM: it closes the database) and wait for it. */
  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise((r) => this.child.once("exit", r));
    this.child.kill("SIGTERM");
    await done;
  }
}
