/**
 * Active/standby with fencing over one PostgreSQL database.
 *
 * Instances of an HA group compete for one lease row. The holder renews it every `renewMs`;
 * when it stops renewing (crash, pause, partition) the row expires after `ttlMs` and another
 * instance takes it, incrementing the fencing number. Every signing transaction checks, under
 * a share lock on the lease row and by the database's clock, that this instance still holds the
 * lease with its fencing number: a former primary (paused, partitioned, slow) can never commit
 * a decision after losing it. A transaction left idle by a paused process is ended by the server
 * (idle_in_transaction_session_timeout), which releases the row so a takeover is not blocked.
 */
import { randomUUID } from "node:crypto";
import pg from "pg";
import { VigilError } from "../errors.js";
import type { Fence } from "../slashing/store/postgres.js";

export interface LeaseOptions {
  group: string;
  /** Unique per process: a restarted instance is a new holder. */
  instanceId?: string;
  ttlMs?: number;
  renewMs?: number;
  schema?: string;
  onChange?: (active: boolean, fence: number | null) => void;
}

export type Role = "active" | "standby";

const ident = (s: string): string => '"' + s.replace(/"/g, '""') + '"';

export class Lease {
  readonly instanceId: string;
  private fenceNumber: number | null = null;
  /** Local deadline (ms, monotonic) after which we stop assuming we are active. */
  private activeUntil = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The role last reported through onChange. */
  private reported = false;
  private readonly table: string;
  readonly ttlMs: number;
  readonly renewMs: number;

  constructor(
    private readonly pool: pg.Pool,
    readonly opts: LeaseOptions,
  ) {
    this.instanceId = opts.instanceId ?? randomUUID();
    this.ttlMs = opts.ttlMs ?? 4000;
    // At least four renewals per lease: the holder counts its lease valid for 0.8 of the ttl only.
    this.renewMs = opts.renewMs ?? Math.min(1000, Math.floor(this.ttlMs / 4));
    this.table = `${ident(opts.schema ?? "public")}.vigil_ha_lease`;
  }

  async start(): Promise<void> {
    await this.pool.query(
      `CREATE TABLE IF NOT EXISTS ${this.table} (
         group_name TEXT PRIMARY KEY, holder TEXT NOT NULL, fence BIGINT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)`,
    ).catch((e: { code?: string }) => { if (!["23505", "42P07", "42710"].includes(e?.code ?? "")) throw e; }); // instances starting together race CREATE TABLE IF NOT EXISTS: the loser's table exists
    await this.tick();
    this.timer = setInterval(() => void this.tick(), this.renewMs);
  }

  get role(): Role {
    return this.isActive() ? "active" : "standby";
  }

  get fencingNumber(): number | null {
    return this.isActive() ? this.fenceNumber : null;
  }

  private isActive(): boolean {
    return this.fenceNumber !== null && performance.now() < this.activeUntil;
  }

  /** Take or renew the lease: one statement, decided by the database's clock. */
  private async tick(): Promise<void> {
    const started = performance.now();
    try {
      const res = await this.pool.query(
        `INSERT INTO ${this.table} AS l (group_name, holder, fence, expires_at)
           VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond')
         ON CONFLICT (group_name) DO UPDATE SET
           holder = EXCLUDED.holder,
           fence = CASE WHEN l.holder = EXCLUDED.holder THEN l.fence ELSE l.fence + 1 END,
           expires_at = EXCLUDED.expires_at
         WHERE l.holder = EXCLUDED.holder OR l.expires_at < clock_timestamp()
         RETURNING fence`,
        [this.opts.group, this.instanceId, this.ttlMs],
      );
      if (res.rowCount === 1) {
        this.fenceNumber = Number(res.rows[0].fence);
        // Count our local validity from when we asked, minus a margin for clock rate differences.
        this.activeUntil = started + this.ttlMs * 0.8;
      } else {
        this.fenceNumber = null;
      }
    } catch {
      // Database unreachable: we keep no lease we cannot renew (activeUntil runs out by itself).
    }
    const nowActive = this.isActive();
    if (nowActive !== this.reported) {
      this.reported = nowActive;
      this.opts.onChange?.(nowActive, this.fencingNumber);
    }
  }

  /**
   * The fencing check, run inside every signing transaction right after its validator locks (in the
   * same round trip): refuses unless this instance holds the lease with its fencing number now, by
   * the database's clock. The row's share lock keeps a takeover waiting until the transaction ends.
   */
  readonly fence: Fence = {
    statement: (): string => {
      const fence = this.fencingNumber;
      if (fence === null) throw notActive(this.opts.group);
      return `SELECT 1 FROM ${this.table} WHERE group_name = ${pg.escapeLiteral(this.opts.group)} AND holder = ${pg.escapeLiteral(this.instanceId)}
        AND fence = ${fence} AND expires_at > clock_timestamp() FOR SHARE`;
    },
    verify: (result: pg.QueryResult): void => {
      if (result.rowCount !== 1) {
        this.fenceNumber = null;
        throw notActive(this.opts.group);
      }
    },
  };

  /** Give the lease up (clean shutdown): a standby takes over at once. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.fenceNumber !== null) {
      await this.pool
        .query(`UPDATE ${this.table} SET expires_at = clock_timestamp() WHERE group_name = $1 AND holder = $2`, [this.opts.group, this.instanceId])
        .catch(() => undefined);
    }
    this.fenceNumber = null;
  }
}

export function notActive(group: string): VigilError {
  return new VigilError("unavailable", "STANDBY", `this instance is a standby in HA group "${group}": it signs only while it holds the lease`);
}
