/**
 * A private, throwaway PostgreSQL server for tests that stop and crash the database: the machine's
 * shared server (test/helpers/pg.ts) is never touched. initdb into a temp dir (as the `postgres` OS
 * user when the tests run as root: PostgreSQL refuses to run as root), start on a free port of
 * 127.0.0.1 with its socket in the temp dir, `crash()` (pg_ctl stop -m immediate: no shutdown
 * checkpoint, crash recovery at the next start), `start()` again, `destroy()` at the end. A server
 * still running when the test process exits is stopped (immediate) by an exit hook.
 */
import { execFile, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export const PG_BIN = process.env.VIGIL_TEST_PG_BIN ?? "/usr/lib/postgresql/15/bin";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** argv to run a PostgreSQL binary as the `postgres` OS user (when root) or as ourselves. */
function asPostgres(bin: string, args: string[]): [string, string[]] {
  const exe = path.join(PG_BIN, bin);
  return isRoot ? ["runuser", ["-u", "postgres", "--", exe, ...args]] : [exe, args];
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const live = new Set<PgServer>();
process.on("exit", () => {
  for (const s of live) s.crashSync();
});

export class PgServer {
  private running = false;

  private constructor(
    /** Temp dir (owned by postgres): data/ below it, the Unix socket and the log beside. */
    readonly dir: string,
    readonly port: number,
  ) {}

  get dataDir(): string {
    return path.join(this.dir, "data");
  }
  get logFile(): string {
    return path.join(this.dir, "postgres.log");
  }
  /** Connection URL (user postgres, database postgres, trust authentication). */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** initdb into a fresh temp dir and start the server. */
  static async create(): Promise<PgServer> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vigil-pg-"));
    fs.chmodSync(dir, 0o700);
    if (isRoot) {
      const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
      const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
      fs.chownSync(dir, uid, gid);
    }
    const server = new PgServer(dir, await freePort());
    try {
      const [cmd, args] = asPostgres("initdb", ["-D", server.dataDir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"]);
      await run(cmd, args, { timeout: 60_000 });
      await server.start();
    } catch (e) {
      await server.destroy();
      throw e;
    }
    return server;
  }

  /** Start (or restart after a crash) and wait until it accepts connections. */
  async start(): Promise<void> {
    const opts = [
      `-k ${this.dir}`,
      `-p ${this.port}`,
      "-c listen_addresses=127.0.0.1",
      "-c max_connections=40",
      "-c shared_buffers=16MB",
      "-c fsync=on",
    ].join(" ");
    const [cmd, args] = asPostgres("pg_ctl", ["start", "-D", this.dataDir, "-l", this.logFile, "-w", "-t", "60", "-o", opts]);
    live.add(this);
    this.running = true;
    try {
      await run(cmd, args, { timeout: 70_000 });
    } catch (e) {
      throw new Error(`pg_ctl start failed: ${(e as Error).message}\n${this.log()}`, { cause: e });
    }
  }

  /** Simulate a crash: pg_ctl stop -m immediate (the server processes quit at once, no checkpoint). */
  async crash(): Promise<void> {
    const [cmd, args] = asPostgres("pg_ctl", ["stop", "-D", this.dataDir, "-m", "immediate", "-w", "-t", "30"]);
    await run(cmd, args, { timeout: 40_000 });
    this.running = false;
    live.delete(this);
  }

  /** crash() for the exit hook (synchronous; errors ignored). */
  crashSync(): void {
    if (!this.running) return;
    try {
      const [cmd, args] = asPostgres("pg_ctl", ["stop", "-D", this.dataDir, "-m", "immediate", "-w", "-t", "30"]);
      execFileSync(cmd, args, { stdio: "ignore", timeout: 40_000 });
    } catch {
      /* best effort */
    }
    this.running = false;
  }

  /** The server log so far (for failure messages). */
  log(): string {
    try {
      return fs.readFileSync(this.logFile, "utf8").slice(-4000);
    } catch {
      return "(no log)";
    }
  }

  /** Stop the server (if running) and delete everything. */
  async destroy(): Promise<void> {
    if (this.running) await this.crash().catch(() => this.crashSync());
    live.delete(this);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
