/**
 * PostgreSQL slashing-protection store (`pg`): several Vigil instances can share one database.
 *
 * Schema: Vigil creates and migrates its own schema (`opts.schema`, default `public`) with versioned
 * migrations recorded in `schema_version`, applied at open in one transaction holding a
 * transaction-scoped advisory lock, so instances starting together migrate exactly once.
 *
 * Check-and-record (group commit): the decisions requested in one turn of the event loop form a
 * batch, decided in ONE transaction that (1) takes the schema's "global" advisory lock in shared
 * mode, then every validator's advisory lock (a 64-bit key derived from the pubkey) in exclusive
 * mode, in ascending key order (the same order in every instance, so no deadlock); (2) runs the
 * fence's statement if one is set; (3) reads the history slices and watermarks the batch needs — all in
 * one round trip, the fence's result checked before anything is decided; (4) decides
 * each request in queue order with the pure rules — a later request sees what an earlier one in
 * the same batch recorded; (5) inserts the records; (6) COMMITs. No decision resolves before the
 * COMMIT succeeds; on any error every decision of the batch rejects ('unavailable') and nothing is
 * recorded. One batch is in flight per store at a time; requests arriving meanwhile form the next.
 *
 * Imports and watermark changes take the global lock in exclusive mode: they wait for the batches
 * in flight (in every instance) and every later batch sees them. The lock keys depend on the schema
 * name, so deployments in different schemas of one database never wait on each other.
 *
 * Failures (server down, connection lost, timeout, failed COMMIT) reject with VigilError 'unavailable'
 * (SLASHING_DB_UNAVAILABLE): never an allowed decision, never a crash. The pool reconnects by itself.
 */
import { createHash } from "node:crypto";
import pg from "pg";
import { badRequest, VigilError } from "../../errors.js";
import { bytesToHex, hexToBytes, INTERCHANGE_FORMAT_VERSION, interchangeSource, validatorRecords, type InterchangeSource } from "../interchange.js";
import { applicableWatermarks, checkAttestation, checkBlock, NO_WATERMARKS, prunePlan, RETIRED_KIND } from "../rules.js";
import type { Watermarks } from "../rules.js";
import type { Decision, ImportSummary, Interchange, InterchangeValidator, PruneSetting, PruneSummary, SigningRoot, Watermark, WatermarkKind, WatermarkSetting } from "../types.js";
import { checkEpochOrSlot, checkPruneSetting, checkPubkey, checkRoot, checkWatermarkSetting, collectInterchange, GLOBAL_WATERMARK, PRUNE_CHUNK, sortWatermarks, type Retirement } from "./store.js";
import type { InterchangeSink, OnTentative, SlashingStore, StoreStats } from "./store.js";

/**
 * Most decisions one group commit takes (default). Each distinct validator of a batch holds an advisory lock until
 * COMMIT, and the server's lock table holds max_locks_per_transaction × max_connections entries (64 × 100 by default):
 * 512 leaves room for a dozen instances at full batches; raise max_locks_per_transaction for more.
 */
export const PG_MAX_BATCH = 512;
/** Rows per INSERT statement during an import. */
const IMPORT_CHUNK = 5000;
/** Validators read per query while exporting. */
const EXPORT_CHUNK = 500;
const GVR_KEY = "genesis_validators_root";
const SCHEMA_RE = /^[a-z_][a-z0-9_]{0,62}$/;
/** First key of Vigil's two-int4 advisory locks (migration, global); validator locks use the one-int8 form, a separate key space. */
export const LOCK_CLASS = 0x56494731; // "VIG1"

export const DEFAULT_POOL_SIZE = 4;
export const CONNECT_TIMEOUT_MS = 5000;
export const STATEMENT_TIMEOUT_MS = 10_000;

/**
 * The fencing check of an HA group (see src/ha/lease.ts): called inside every batch transaction after
 * its locks are taken and before anything is decided; throwing refuses the whole batch with that error.
 */
/**
 * The HA fence (src/ha/lease.ts), checked inside every batch transaction right after its locks, in the
 * same round trip: `statement()` gives one SQL statement (literals only; it throws to refuse at once),
 * and `verify` throws unless that statement's result proves the lease.
 */
export interface Fence {
  statement(): string;
  verify(result: pg.QueryResult): void;
}

export interface PostgresStoreOptions {
  /** Schema holding Vigil's tables, created if missing (lower-case letters, digits, `_`). Default `public`. */
  schema?: string;
  /** Most connections this store opens (default 4). One batch transaction is in flight at a time. */
  poolSize?: number;
  /** Server-side statement timeout, also bounding lock waits (default 10 s); the client gives up 2 s later. */
  statementTimeoutMs?: number;
  /** Told about connection errors outside any request (an idle connection lost); they never crash the process. */
  onError?: (e: Error) => void;
  /** Most decisions per group commit (default PG_MAX_BATCH). */
  maxBatch?: number;
}

/**
 * Versioned migrations: MIGRATIONS[i] brings the schema from version i to i + 1. Append only.
 * They run with `search_path` set to Vigil's schema. Same logical tables and versions as the SQLite engine;
 * the record tables have an identity `id` where SQLite has its rowid (insertion order, for export).
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE metadata (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
   CREATE TABLE validators (
     id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     pubkey TEXT NOT NULL UNIQUE CHECK (length(pubkey) = 98)
   );
   CREATE TABLE signed_blocks (
     id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     validator_id BIGINT NOT NULL REFERENCES validators (id),
     slot BIGINT NOT NULL CHECK (slot >= 0 AND slot <= 9007199254740991),
     signing_root BYTEA CHECK (signing_root IS NULL OR length(signing_root) = 32)
   );
   CREATE INDEX signed_blocks_validator_slot ON signed_blocks (validator_id, slot);
   CREATE TABLE signed_attestations (
     id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
     validator_id BIGINT NOT NULL REFERENCES validators (id),
     source_epoch BIGINT NOT NULL CHECK (source_epoch >= 0 AND source_epoch <= 9007199254740991),
     target_epoch BIGINT NOT NULL CHECK (target_epoch >= 0 AND target_epoch <= 9007199254740991),
     signing_root BYTEA CHECK (signing_root IS NULL OR length(signing_root) = 32)
   );
   CREATE INDEX signed_attestations_validator_target ON signed_attestations (validator_id, target_epoch);
   CREATE INDEX signed_attestations_validator_source ON signed_attestations (validator_id, source_epoch);`,
  // v2: watermarks for key migrations between clusters (see rules.ts). pubkey '*' = every validator.
  `CREATE TABLE watermarks (
     kind TEXT NOT NULL CHECK (kind IN ('low', 'high')),
     pubkey TEXT NOT NULL CHECK (pubkey = '*' OR length(pubkey) = 98),
     slot BIGINT CHECK (slot >= 0 AND slot <= 9007199254740991),
     epoch BIGINT CHECK (epoch >= 0 AND epoch <= 9007199254740991),
     CHECK (slot IS NOT NULL OR epoch IS NOT NULL),
     PRIMARY KEY (kind, pubkey)
   );`,
  // v3: validators retired by a Keymanager DELETE (see SlashingStore.retire).
  `CREATE TABLE retired_validators (pubkey TEXT PRIMARY KEY CHECK (length(pubkey) = 98), retired_at TIMESTAMPTZ NOT NULL DEFAULT now());`,
];
export const PG_SCHEMA_VERSION = MIGRATIONS.length;

const ident = (s: string): string => '"' + s.replace(/"/g, '""') + '"';

/** A signed 32-bit key for one of the schema's two-int4 advisory locks. */
function schemaLockKey(schema: string, purpose: "migrate" | "global"): number {
  return createHash("sha256").update(`vigil/${schema}/${purpose}`).digest().readInt32BE(0);
}

/** The validator's advisory lock key: a stable signed 64-bit key derived from the schema and the pubkey bytes. */
export function validatorLockKey(schema: string, pubkey: string): bigint {
  const h = createHash("sha256").update(`vigil/${schema}/validator/`).update(Buffer.from(pubkey.slice(2), "hex")).digest();
  return h.readBigInt64BE(0);
}

/** An int8 (returned by pg as a decimal string) as a safe JS number. */
function num(v: unknown): number {
  const n = typeof v === "number" ? v : typeof v === "string" && /^[0-9]+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw new VigilError("unavailable", "SLASHING_DB_CORRUPT", `slashing database holds an out-of-range number: ${String(v)}`);
  return n;
}
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));

const PUBKEY_LITERAL = /^0x[0-9a-f]{96}$/;
/** A text[] literal of pubkeys (checked again: nothing but 0x and lower-case hex can reach the SQL). */
function litPubkeys(pks: string[]): string {
  for (const pk of pks) if (!PUBKEY_LITERAL.test(pk)) throw new VigilError("internal", "INVALID_PUBKEY", "pubkey not canonical");
  return `'{${pks.join(",")}}'::text[]`;
}
/** An int8[] literal of safe integers (bigint advisory-lock keys included). */
function litInt8s(ns: (number | bigint)[]): string {
  for (const n of ns) if (typeof n !== "bigint" && !Number.isSafeInteger(n)) throw new VigilError("internal", "INVALID_NUMBER", "not an integer");
  return `'{${ns.join(",")}}'::int8[]`;
}
/** A bytea[] literal: each root hex-decoded by the server (or NULL). */
function litByteas(roots: (Buffer | null)[]): string {
  if (roots.length === 0) return "'{}'::bytea[]";
  return `ARRAY[${roots.map((r) => (r === null ? "NULL" : `decode('${r.toString("hex")}', 'hex')`)).join(",")}]::bytea[]`;
}

function bytea(root: SigningRoot): Buffer | null {
  return root === null ? null : Buffer.from(root.buffer, root.byteOffset, root.byteLength);
}

/** A database failure as the error callers see: 'unavailable' (cannot decide safely), never an allowed decision. */
function unavailable(e: unknown): VigilError {
  if (e instanceof VigilError) return e;
  const err = new VigilError("unavailable", "SLASHING_DB_UNAVAILABLE", `slashing database: ${(e as Error)?.message ?? String(e)}`);
  (err as { cause?: unknown }).cause = e;
  return err;
}

const closedError = (): VigilError => new VigilError("unavailable", "SLASHING_DB_ERROR", "slashing database is closed");

/**
 * The statements of a group commit, as PREPAREs (one string, run once per connection). Arrays come
 * as parameters: $1 of the history reads is every pubkey of the batch, then one array per column of
 * the requests in queue order (the result rows carry their 1-based position `i`).
 */
function batchStatements(t: { validators: string; blocks: string; atts: string; watermarks: string; retired: string }, globalKey: number): string {
  return [
    // The shared global lock (imports and watermark changes take it exclusively), then the validators' locks in the given (ascending) order.
    `PREPARE vigil_lock_global AS SELECT pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${globalKey})`,
    `PREPARE vigil_lock_validators(int8[]) AS SELECT pg_advisory_xact_lock(k) FROM unnest($1) AS k`,
    `PREPARE vigil_watermarks(text[]) AS SELECT kind, pubkey, slot, epoch FROM ${t.watermarks} WHERE pubkey = ANY($1) OR pubkey = '*'
       UNION ALL SELECT '${RETIRED_KIND}', pubkey, 0, 0 FROM ${t.retired} WHERE pubkey = ANY($1)`,
    `PREPARE vigil_block_history(text[], text[], int8[]) AS
       WITH v AS MATERIALIZED (
         SELECT v.id, v.pubkey, (SELECT min(b.slot) FROM ${t.blocks} b WHERE b.validator_id = v.id) AS min_slot
         FROM ${t.validators} v WHERE v.pubkey = ANY($1))
       SELECT t.i, v.min_slot,
         (SELECT array_agg(b.signing_root) FROM ${t.blocks} b WHERE b.validator_id = v.id AND b.slot = t.slot) AS same_slot
       FROM unnest($2, $3) WITH ORDINALITY AS t(pk, slot, i)
       LEFT JOIN v ON v.pubkey = t.pk`,
    // Each surround probe walks one index from the new vote outwards (normally zero rows); "+ 0" keeps the
    // planner off the other index, which would scan the validator's whole history (SQLite: INDEXED BY).
    `PREPARE vigil_attestation_history(text[], text[], int8[], int8[]) AS
       WITH v AS MATERIALIZED (
         SELECT v.id, v.pubkey,
           (SELECT min(a.source_epoch) FROM ${t.atts} a WHERE a.validator_id = v.id) AS min_source,
           (SELECT min(a.target_epoch) FROM ${t.atts} a WHERE a.validator_id = v.id) AS min_target
         FROM ${t.validators} v WHERE v.pubkey = ANY($1))
       SELECT t.i, v.min_source, v.min_target,
         (SELECT array_agg(a.signing_root) FROM ${t.atts} a WHERE a.validator_id = v.id AND a.target_epoch = t.target) AS same_target,
         EXISTS (SELECT 1 FROM ${t.atts} a
                   WHERE a.validator_id = v.id AND a.source_epoch > t.source AND a.target_epoch + 0 < t.target) AS surrounds,
         EXISTS (SELECT 1 FROM ${t.atts} a
                   WHERE a.validator_id = v.id AND a.target_epoch > t.target AND a.source_epoch + 0 < t.source) AS surrounded
       FROM unnest($2, $3, $4) WITH ORDINALITY AS t(pk, source, target, i)
       LEFT JOIN v ON v.pubkey = t.pk`,
    // New validators first (in the order of their first record, as the SQLite engine does), then the
    // records, each joined to its validator's id.
    `PREPARE vigil_insert_validators(text[]) AS
       INSERT INTO ${t.validators} (pubkey) SELECT pk FROM unnest($1) WITH ORDINALITY AS t(pk, i) ORDER BY i
       ON CONFLICT (pubkey) DO NOTHING`,
    `PREPARE vigil_insert_blocks(text[], int8[], bytea[]) AS
       INSERT INTO ${t.blocks} (validator_id, slot, signing_root)
       SELECT v.id, t.s, t.r FROM unnest($1, $2, $3) WITH ORDINALITY AS t(pk, s, r, i)
       JOIN ${t.validators} v ON v.pubkey = t.pk ORDER BY t.i`,
    `PREPARE vigil_insert_attestations(text[], int8[], int8[], bytea[]) AS
       INSERT INTO ${t.atts} (validator_id, source_epoch, target_epoch, signing_root)
       SELECT v.id, t.s, t.tg, t.r FROM unnest($1, $2, $3, $4) WITH ORDINALITY AS t(pk, s, tg, r, i)
       JOIN ${t.validators} v ON v.pubkey = t.pk ORDER BY t.i`,
  ].join(";\n");
}

/**
 * Open the PostgreSQL slashing-protection store at `url` (a libpq-style connection URL), creating or
 * migrating its schema. Rejects with VigilError 'unavailable' if the database cannot be reached.
 */
export async function openPostgresStore(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresSlashingStore> {
  const schema = opts.schema ?? "public";
  if (!SCHEMA_RE.test(schema)) throw badRequest("INVALID_SCHEMA", "schema must be lower-case letters, digits and _ (at most 63), not starting with a digit");
  const poolSize = opts.poolSize ?? DEFAULT_POOL_SIZE;
  if (!Number.isSafeInteger(poolSize) || poolSize < 1) throw badRequest("INVALID_POOL_SIZE", "poolSize must be a positive integer");
  const maxBatch = opts.maxBatch ?? PG_MAX_BATCH;
  if (!Number.isSafeInteger(maxBatch) || maxBatch < 1) throw badRequest("INVALID_MAX_BATCH", "maxBatch must be a positive integer");
  const statementTimeout = opts.statementTimeoutMs ?? STATEMENT_TIMEOUT_MS;
  const onError = opts.onError ?? (() => undefined);
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: statementTimeout,
    query_timeout: statementTimeout + 2000,
    // A paused or partitioned instance must not hold validator locks for ever.
    idle_in_transaction_session_timeout: statementTimeout,
    keepAlive: true,
    application_name: "vigil",
    // Short OLTP statements: JIT compilation (triggered by row estimates of the batch queries) costs more than it saves.
    options: "-c jit=off",
  });
  // An idle client losing its connection emits 'error' on the pool; a checked-out one on itself. Never crash.
  pool.on("error", (e) => onError(e));
  pool.on("connect", (client) => client.on("error", (e) => onError(e)));
  const store = new PostgresSlashingStore(pool, schema, maxBatch);
  try {
    await store.migrate();
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw unavailable(e);
  }
  return store;
}

type BlockRequest = { type: "block"; pk: string; slot: number; root: Buffer | null; onTentative?: OnTentative };
type AttestationRequest = { type: "attestation"; pk: string; source: number; target: number; root: Buffer | null; onTentative?: OnTentative };
type Request = BlockRequest | AttestationRequest;
interface Pending {
  req: Request;
  resolve: (d: Decision) => void;
  reject: (e: unknown) => void;
}
/** What a batch recorded so far for one validator (later requests in the batch see it). */
interface Overlay {
  blocks: { slot: number; root: Buffer | null }[];
  atts: { source: number; target: number; root: Buffer | null }[];
}

export class PostgresSlashingStore implements SlashingStore {
  private pending: Pending[] = [];
  private flushScheduled = false;
  private inFlight: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private fence: Fence | null = null;
  readonly stats: StoreStats = { decisions: 0, groupCommits: 0, walSyncs: 0 };
  private readonly globalKey: number;
  private readonly migrateKey: number;
  private readonly lockKeys = new Map<string, bigint>();
  /** Schema-qualified table names. */
  private readonly t: { meta: string; validators: string; blocks: string; atts: string; watermarks: string; retired: string };

  constructor(
    readonly pool: pg.Pool,
    readonly schema: string,
    private readonly maxBatch = PG_MAX_BATCH,
  ) {
    const q = (table: string): string => `${ident(schema)}.${table}`;
    this.t = {
      meta: q("metadata"),
      validators: q("validators"),
      blocks: q("signed_blocks"),
      atts: q("signed_attestations"),
      watermarks: q("watermarks"),
      retired: q("retired_validators"),
    };
    this.globalKey = schemaLockKey(schema, "global");
    this.migrateKey = schemaLockKey(schema, "migrate");
    this.prepares = batchStatements(this.t, this.globalKey);
  }

  /** PREPAREs of the batch statements, run once per connection before its first transaction. */
  private readonly prepares: string;
  private readonly preparedOn = new WeakSet<pg.PoolClient>();

  /** Create or migrate the schema, once, under a transaction-scoped advisory lock (instances starting together wait). Called by openPostgresStore. */
  async migrate(): Promise<void> {
    await this.tx(async (c) => {
      await c.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_CLASS, this.migrateKey]);
      const exists = await c.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [this.schema]);
      if (exists.rowCount === 0) await c.query(`CREATE SCHEMA ${ident(this.schema)}`);
      await c.query(`SET LOCAL search_path TO ${ident(this.schema)}`);
      await c.query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
      const current = num((await c.query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_version")).rows[0].v);
      if (current > MIGRATIONS.length) {
        throw new VigilError("unavailable", "SLASHING_DB_TOO_NEW", `slashing database schema v${current} is newer than this Vigil (v${MIGRATIONS.length})`);
      }
      for (let v = current; v < MIGRATIONS.length; v++) {
        await c.query(MIGRATIONS[v]);
        await c.query("INSERT INTO schema_version (version) VALUES ($1)", [v + 1]);
      }
    });
  }

  /**
   * Install (or remove, with null) the fence checked inside every batch transaction after its locks.
   * If it refuses, every decision of the batch rejects with its error (a non-VigilError becomes 'unavailable').
   */
  setFence(fence: Fence | null): void {
    this.fence = fence;
  }

  /**
   * Run `fn` in a transaction on a pooled connection. Database errors become VigilError 'unavailable';
   * a VigilError thrown by `fn` passes through (after ROLLBACK). A connection in an unknown state is discarded.
   */
  private async tx<T>(
    fn: (c: pg.PoolClient, begun: pg.QueryResult[]) => Promise<T>,
    begin = "BEGIN",
    /** Statements sent in the same round trip as the COMMIT (literal SQL; a failure aborts the transaction). */
    finish?: (value: T) => string | null,
    /** The transaction EXECUTEs the batch statements (prepared first on a new connection; the schema exists by then). */
    usesPrepared = false,
  ): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw unavailable(e);
    }
    let result: T;
    try {
      if (usesPrepared && !this.preparedOn.has(client)) {
        // Prepared statements live as long as the session (not undone by a rollback): once per connection.
        await client.query(this.prepares);
        this.preparedOn.add(client);
      }
      const begun = (await client.query(begin)) as pg.QueryResult | pg.QueryResult[]; // several statements: one result each
      result = await fn(client, Array.isArray(begun) ? begun : [begun]);
      const last = finish?.(result);
      await client.query(last ? `${last}; COMMIT` : "COMMIT");
    } catch (e) {
      // A server-side error leaves the connection usable (roll back, keep it); anything else (lost
      // connection, timeout, an error in our code between statements) discards it: the server rolls back.
      const healthy = e instanceof pg.DatabaseError || e instanceof VigilError;
      let released = false;
      if (healthy) {
        try {
          await client.query("ROLLBACK");
          client.release();
          released = true;
        } catch {
          /* fall through: discard */
        }
      }
      if (!released) client.release(e instanceof Error ? e : new Error(String(e)));
      throw unavailable(e);
    }
    client.release();
    return result;
  }

  private validatorKey(pk: string): bigint {
    let k = this.lockKeys.get(pk);
    if (k === undefined) {
      k = validatorLockKey(this.schema, pk);
      if (this.lockKeys.size > 100_000) this.lockKeys.clear();
      this.lockKeys.set(pk, k);
    }
    return k;
  }

  /** Inside a transaction: bind if unbound, else require equality — under the metadata row's lock. */
  private async bindGvrIn(c: pg.PoolClient, gvr: Uint8Array): Promise<void> {
    await c.query(`INSERT INTO ${this.t.meta} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, [GVR_KEY, Buffer.from(gvr)]);
    const bound = (await c.query(`SELECT value FROM ${this.t.meta} WHERE key = $1 FOR UPDATE`, [GVR_KEY])).rows[0].value as Buffer;
    if (!bound.equals(Buffer.from(gvr))) {
      throw badRequest(
        "GENESIS_VALIDATORS_ROOT_MISMATCH",
        `genesis validators root ${bytesToHex(gvr)} differs from the database's ${bytesToHex(bound)}`,
      );
    }
  }

  private async readGvr(c: pg.PoolClient | pg.Pool): Promise<Uint8Array | null> {
    const r = await c.query(`SELECT value FROM ${this.t.meta} WHERE key = $1`, [GVR_KEY]);
    return r.rowCount === 0 ? null : new Uint8Array(r.rows[0].value as Buffer);
  }

  async getGenesisValidatorsRoot(): Promise<Uint8Array | null> {
    if (this.closing) throw closedError();
    try {
      return await this.readGvr(this.pool);
    } catch (e) {
      throw unavailable(e);
    }
  }

  async bindGenesisValidatorsRoot(gvr: Uint8Array): Promise<void> {
    if (!(gvr instanceof Uint8Array) || gvr.length !== 32) throw badRequest("INVALID_ROOT", "genesis validators root must be 32 bytes");
    if (this.closing) throw closedError();
    await this.tx((c) => this.bindGvrIn(c, gvr));
  }

  async checkAndRecordBlock(pubkey: string, slot: number, signingRoot: Uint8Array | null, onTentative?: OnTentative): Promise<Decision> {
    const pk = checkPubkey(pubkey);
    checkEpochOrSlot(slot, "slot");
    const root = bytea(checkRoot(signingRoot, "signing root"));
    return this.enqueue({ type: "block", pk, slot, root, onTentative });
  }

  async checkAndRecordAttestation(
    pubkey: string,
    source: number,
    target: number,
    signingRoot: Uint8Array | null,
    onTentative?: OnTentative,
  ): Promise<Decision> {
    const pk = checkPubkey(pubkey);
    checkEpochOrSlot(source, "source epoch");
    checkEpochOrSlot(target, "target epoch");
    const root = bytea(checkRoot(signingRoot, "signing root"));
    return this.enqueue({ type: "attestation", pk, source, target, root, onTentative });
  }

  private enqueue(req: Request): Promise<Decision> {
    if (this.closing) return Promise.reject(closedError());
    return new Promise((resolve, reject) => {
      this.pending.push({ req, resolve, reject });
      this.schedule();
    });
  }

  /** Flush on the next turn (so that everything requested in this turn joins the batch), unless a batch is in flight. */
  private schedule(): void {
    if (this.flushScheduled || this.inFlight !== null || this.pending.length === 0) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.inFlight !== null || this.pending.length === 0) return;
    const batch = this.pending.splice(0, this.maxBatch);
    this.inFlight = this.decideBatch(batch.map((b) => b.req)).then(
      (decisions) => {
        this.stats.groupCommits++;
        this.stats.decisions += batch.length;
        batch.forEach((b, i) => b.resolve(decisions[i]));
      },
      (e: unknown) => batch.forEach((b) => b.reject(e)),
    );
    void this.inFlight.then(() => {
      this.inFlight = null;
      this.schedule();
    });
  }

  /**
   * One group commit in two round trips: (1) BEGIN, locks (sorted), the fence (HA), history; then, with
   * the decisions made here in queue order (and told tentatively), (2) the inserts and COMMIT.
   * The statements are prepared once per connection (batchStatements); their arguments are inlined as SQL
   * literals in the EXECUTEs (several statements per round trip take no parameters): only validated pubkeys,
   * safe integers and hex-encoded roots, each checked again by the lit* helpers.
   */
  private async decideBatch(reqs: Request[]): Promise<Decision[]> {
    const fence = this.fence;
    let fenceSql: string | null = null;
    try {
      fenceSql = fence?.statement() ?? null;
    } catch (e) {
      throw unavailable(e);
    }
    const pubkeys = [...new Set(reqs.map((r) => r.pk))];
    const keys = [...new Set(pubkeys.map((pk) => this.validatorKey(pk)))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const blocks = reqs.filter((r): r is BlockRequest => r.type === "block");
    const atts = reqs.filter((r): r is AttestationRequest => r.type === "attestation");
    // BEGIN, then the shared global lock (imports and watermark changes take it exclusively), then the validators'
    // locks in ascending key order.
    // With a fence (HA), a session frozen mid-transaction must not hold validator locks for long:
    // the server ends it after 3 s idle, so a new active instance can decide for those validators.
    // Planner settings for the prepared batch statements: one generic plan each, made at the first EXECUTE (a custom
    // plan per group would cost what preparing saves). Every batch statement looks rows up by an indexed key, so index
    // scans in nested loops are the right plan at any table size; without the enable_* settings a plan first made on a
    // new, empty database could stay a sequential scan while the tables grow.
    const begin = `BEGIN;${fenceSql !== null ? " SET LOCAL idle_in_transaction_session_timeout = '3s';" : ""}
      SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;
      EXECUTE vigil_lock_global; EXECUTE vigil_lock_validators(${litInt8s(keys)})${fenceSql !== null ? `;\n${fenceSql}` : ""}`;
    // The history slices the rules need, as of now (we hold the locks: nobody else writes them until COMMIT).
    const reads = [`EXECUTE vigil_watermarks(${litPubkeys(pubkeys)})`];
    if (blocks.length > 0) {
      reads.push(`EXECUTE vigil_block_history(${litPubkeys(pubkeys)}, ${litPubkeys(blocks.map((b) => b.pk))}, ${litInt8s(blocks.map((b) => b.slot))})`);
    }
    if (atts.length > 0) {
      reads.push(
        `EXECUTE vigil_attestation_history(${litPubkeys(pubkeys)}, ${litPubkeys(atts.map((a) => a.pk))}, ${litInt8s(atts.map((a) => a.source))}, ${litInt8s(atts.map((a) => a.target))})`,
      );
    }
    const { decisions } = await this.tx(
      async (c, begun) => {
        // The fence's result first: a refusal decides nothing (the transaction rolls back).
        if (fence !== null) fence.verify(begun[begun.length - reads.length - 1]);
        const [wmResult, ...rest] = begun.slice(-reads.length);
        const wmRows = wmResult.rows as { kind: WatermarkKind | typeof RETIRED_KIND; pubkey: string; slot: string | null; epoch: string | null }[];
        const watermarks = new Map<string, Watermarks>();
        const wmOf = (pk: string): Watermarks => {
          let w = watermarks.get(pk);
          if (w === undefined) {
            const rows = wmRows.filter((r) => r.pubkey === pk || r.pubkey === GLOBAL_WATERMARK);
            w = rows.length === 0 ? NO_WATERMARKS : applicableWatermarks(rows.map((r) => ({ kind: r.kind, slot: numOrNull(r.slot), epoch: numOrNull(r.epoch) })));
            watermarks.set(pk, w);
          }
          return w;
        };
        type BlockRow = { i: string; same_slot: (Buffer | null)[] | null; min_slot: string | null };
        type AttRow = { i: string; same_target: (Buffer | null)[] | null; surrounds: boolean | null; surrounded: boolean | null; min_source: string | null; min_target: string | null };
        const blockRows: BlockRow[] = [];
        const attRows: AttRow[] = [];
        if (blocks.length > 0) for (const row of rest.shift()!.rows as BlockRow[]) blockRows[Number(row.i) - 1] = row;
        if (atts.length > 0) for (const row of rest.shift()!.rows as AttRow[]) attRows[Number(row.i) - 1] = row;

        // Decide in queue order; what an earlier request of the batch records is seen by the later ones.
        const overlays = new Map<string, Overlay>();
        const overlayOf = (pk: string): Overlay => {
          let o = overlays.get(pk);
          if (o === undefined) overlays.set(pk, (o = { blocks: [], atts: [] }));
          return o;
        };
        const newBlocks: BlockRequest[] = [];
        const newAtts: AttestationRequest[] = [];
        let bi = 0;
        let ai = 0;
        const decisions = reqs.map((req): Decision => {
          const o = overlayOf(req.pk);
          if (req.type === "block") {
            const row = blockRows[bi++];
            let minSlot = numOrNull(row.min_slot);
            const sameSlot: SigningRoot[] = [...(row.same_slot ?? [])];
            for (const b of o.blocks) {
              if (b.slot === req.slot) sameSlot.push(b.root);
              if (minSlot === null || b.slot < minSlot) minSlot = b.slot;
            }
            const d = checkBlock(req.slot, req.root, { sameSlot, minSlot }, wmOf(req.pk));
            if (d.allowed && !d.repeat) {
              o.blocks.push({ slot: req.slot, root: req.root });
              newBlocks.push(req);
            }
            return d;
          }
          const row = attRows[ai++];
          let minSource = numOrNull(row.min_source);
          let minTarget = numOrNull(row.min_target);
          let surroundsExisting = row.surrounds === true;
          let surroundedByExisting = row.surrounded === true;
          const sameTarget: SigningRoot[] = [...(row.same_target ?? [])];
          for (const a of o.atts) {
            if (a.target === req.target) sameTarget.push(a.root);
            if (a.source > req.source && a.target < req.target) surroundsExisting = true;
            if (a.target > req.target && a.source < req.source) surroundedByExisting = true;
            if (minSource === null || a.source < minSource) minSource = a.source;
            if (minTarget === null || a.target < minTarget) minTarget = a.target;
          }
          const d = checkAttestation(req.source, req.target, req.root, { sameTarget, surroundsExisting, surroundedByExisting, minSource, minTarget }, wmOf(req.pk));
          if (d.allowed && !d.repeat) {
            o.atts.push({ source: req.source, target: req.target, root: req.root });
            newAtts.push(req);
          }
          return d;
        });

        // Tell the decisions now (the signer may start BLS work); none resolves before the COMMIT.
        decisions.forEach((d, i) => {
          try {
            reqs[i].onTentative?.(d);
          } catch {
            /* a listener's failure does not change the decision */
          }
        });
        return { decisions, newBlocks, newAtts };
      },
      `${begin};\n${reads.join(";\n")}`,
      // Record, in the COMMIT's round trip: new validators first (in the order of their first record, as the
      // SQLite engine does), then the records, each joined to its validator's id.
      ({ newBlocks, newAtts }) => {
        const isNew = new Set<Request>([...newBlocks, ...newAtts]);
        const recorded = [...new Set(reqs.filter((r) => isNew.has(r)).map((r) => r.pk))];
        if (recorded.length === 0) return null;
        const sql = [`EXECUTE vigil_insert_validators(${litPubkeys(recorded)})`];
        if (newBlocks.length > 0) {
          sql.push(
            `EXECUTE vigil_insert_blocks(${litPubkeys(newBlocks.map((b) => b.pk))}, ${litInt8s(newBlocks.map((b) => b.slot))}, ${litByteas(newBlocks.map((b) => b.root))})`,
          );
        }
        if (newAtts.length > 0) {
          sql.push(
            `EXECUTE vigil_insert_attestations(${litPubkeys(newAtts.map((a) => a.pk))}, ${litInt8s(newAtts.map((a) => a.source))}, ${litInt8s(newAtts.map((a) => a.target))}, ${litByteas(newAtts.map((a) => a.root))})`,
          );
        }
        return sql.join(";\n");
      },
      true,
    );
    return decisions;
  }

  async importInterchange(doc: Interchange | InterchangeSource): Promise<ImportSummary> {
    const source = interchangeSource(doc);
    if (this.closing) throw closedError();
    return this.tx(async (c): Promise<ImportSummary> => {
      // Exclusive global lock: no decision is in flight meanwhile, and every later one sees the import.
      await c.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_CLASS, this.globalKey]);
      await this.bindGvrIn(c, hexToBytes(source.metadata.genesis_validators_root));
      const pubkeys = new Set<string>();
      const sum: ImportSummary = {
        validators: 0,
        validatorsAdded: 0,
        blocksImported: 0,
        blocksSkipped: 0,
        attestationsImported: 0,
        attestationsSkipped: 0,
      };
      // Entries are validated as they are read (an invalid one throws: the transaction rolls back) and
      // written in groups of about IMPORT_CHUNK records, so that memory stays bounded.
      let group: InterchangeValidator[] = [];
      let size = 0;
      for (const entry of source.entries()) {
        pubkeys.add(entry.pubkey);
        group.push(entry);
        size += 1 + entry.signed_blocks.length + entry.signed_attestations.length;
        if (size >= IMPORT_CHUNK) {
          await this.importGroup(c, group, sum);
          group = [];
          size = 0;
        }
      }
      if (group.length > 0) await this.importGroup(c, group, sum);
      sum.validators = pubkeys.size;
      return sum;
    });
  }

  /** Write some entries' validators and records (inside the import's transaction). */
  private async importGroup(c: pg.PoolClient, group: InterchangeValidator[], sum: ImportSummary): Promise<void> {
    const pubkeys = [...new Set(group.map((e) => e.pubkey))];
    const ids = new Map<string, string>();
    for (let i = 0; i < pubkeys.length; i += IMPORT_CHUNK) {
      const chunk = pubkeys.slice(i, i + IMPORT_CHUNK);
      const added = await c.query(
        `INSERT INTO ${this.t.validators} (pubkey) SELECT pk FROM unnest($1::text[]) WITH ORDINALITY AS t(pk, i) ORDER BY i
           ON CONFLICT (pubkey) DO NOTHING`,
        [chunk],
      );
      sum.validatorsAdded += added.rowCount ?? 0;
      const r = await c.query(`SELECT id, pubkey FROM ${this.t.validators} WHERE pubkey = ANY($1::text[])`, [chunk]);
      for (const row of r.rows as { id: string; pubkey: string }[]) ids.set(row.pubkey, row.id);
    }
    // Exact duplicates inside this group are skipped here; those in the database (earlier groups included:
    // same transaction) by the INSERT's NOT EXISTS. Slashable records are still kept: they only make checks stricter.
    const blocks: [string, number, Buffer | null][] = [];
    const atts: [string, number, number, Buffer | null][] = [];
    const seen = new Set<string>();
    const hexOf = (r: Buffer | null): string => (r === null ? "-" : r.toString("hex"));
    for (const entry of group) {
      const id = ids.get(entry.pubkey) as string;
      const rec = validatorRecords(entry);
      for (const b of rec.blocks) {
        const root = bytea(b.signingRoot);
        const key = `b/${id}/${b.slot}/${hexOf(root)}`;
        if (seen.has(key)) sum.blocksSkipped++;
        else {
          seen.add(key);
          blocks.push([id, b.slot, root]);
        }
      }
      for (const a of rec.attestations) {
        const root = bytea(a.signingRoot);
        const key = `a/${id}/${a.source}/${a.target}/${hexOf(root)}`;
        if (seen.has(key)) sum.attestationsSkipped++;
        else {
          seen.add(key);
          atts.push([id, a.source, a.target, root]);
        }
      }
    }
    for (let i = 0; i < blocks.length; i += IMPORT_CHUNK) {
      const chunk = blocks.slice(i, i + IMPORT_CHUNK);
      const r = await c.query(
        `INSERT INTO ${this.t.blocks} (validator_id, slot, signing_root)
           SELECT v, s, r FROM unnest($1::int8[], $2::int8[], $3::bytea[]) WITH ORDINALITY AS t(v, s, r, i)
           WHERE NOT EXISTS (SELECT 1 FROM ${this.t.blocks} b WHERE b.validator_id = t.v AND b.slot = t.s AND b.signing_root IS NOT DISTINCT FROM t.r)
           ORDER BY i`,
        [chunk.map((b) => b[0]), chunk.map((b) => b[1]), chunk.map((b) => b[2])],
      );
      sum.blocksImported += r.rowCount ?? 0;
      sum.blocksSkipped += chunk.length - (r.rowCount ?? 0);
    }
    for (let i = 0; i < atts.length; i += IMPORT_CHUNK) {
      const chunk = atts.slice(i, i + IMPORT_CHUNK);
      const r = await c.query(
        `INSERT INTO ${this.t.atts} (validator_id, source_epoch, target_epoch, signing_root)
           SELECT v, s, tg, r FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::bytea[]) WITH ORDINALITY AS t(v, s, tg, r, i)
           WHERE NOT EXISTS (SELECT 1 FROM ${this.t.atts} a WHERE a.validator_id = t.v AND a.target_epoch = t.tg AND a.source_epoch = t.s
                               AND a.signing_root IS NOT DISTINCT FROM t.r)
           ORDER BY i`,
        [chunk.map((a) => a[0]), chunk.map((a) => a[1]), chunk.map((a) => a[2]), chunk.map((a) => a[3])],
      );
      sum.attestationsImported += r.rowCount ?? 0;
      sum.attestationsSkipped += chunk.length - (r.rowCount ?? 0);
    }
  }

  async exportInterchange(pubkeys?: string[]): Promise<Interchange> {
    return collectInterchange(this, pubkeys);
  }

  async exportInterchangeTo(sink: InterchangeSink, pubkeys?: string[]): Promise<void> {
    const wanted = pubkeys === undefined ? null : [...new Set(pubkeys.map(checkPubkey))];
    if (this.closing) throw closedError();
    // One consistent snapshot of every validator, read EXPORT_CHUNK validators at a time.
    await this.tx(async (c): Promise<void> => {
      const gvr = await this.readGvr(c);
      if (gvr === null) throw badRequest("GENESIS_VALIDATORS_ROOT_UNSET", "the slashing database is not bound to a genesis validators root yet");
      sink.start({ interchange_format_version: INTERCHANGE_FORMAT_VERSION, genesis_validators_root: bytesToHex(gvr) });
      const filter = wanted === null ? "" : "WHERE v.pubkey = ANY($1::text[])";
      const vs = (await c.query(`SELECT v.id, v.pubkey FROM ${this.t.validators} v ${filter} ORDER BY v.id`, wanted === null ? [] : [wanted])).rows as { id: string; pubkey: string }[];
      for (let i = 0; i < vs.length; i += EXPORT_CHUNK) {
        const chunk = vs.slice(i, i + EXPORT_CHUNK);
        const ids = [chunk.map((v) => v.id)];
        const byId = new Map<string, InterchangeValidator>();
        for (const v of chunk) byId.set(v.id, { pubkey: v.pubkey, signed_blocks: [], signed_attestations: [] });
        const blocks = await c.query(
          `SELECT b.validator_id AS vid, b.slot, b.signing_root AS root FROM ${this.t.blocks} b
             WHERE b.validator_id = ANY($1::int8[]) ORDER BY b.validator_id, b.slot, b.id`,
          ids,
        );
        for (const b of blocks.rows as { vid: string; slot: string; root: Buffer | null }[]) {
          const slot = String(num(b.slot));
          (byId.get(b.vid) as InterchangeValidator).signed_blocks.push(b.root === null ? { slot } : { slot, signing_root: bytesToHex(b.root) });
        }
        const atts = await c.query(
          `SELECT a.validator_id AS vid, a.source_epoch AS source, a.target_epoch AS target, a.signing_root AS root FROM ${this.t.atts} a
             WHERE a.validator_id = ANY($1::int8[]) ORDER BY a.validator_id, a.target_epoch, a.source_epoch, a.id`,
          ids,
        );
        for (const a of atts.rows as { vid: string; source: string; target: string; root: Buffer | null }[]) {
          const att = { source_epoch: String(num(a.source)), target_epoch: String(num(a.target)) };
          (byId.get(a.vid) as InterchangeValidator).signed_attestations.push(a.root === null ? att : { ...att, signing_root: bytesToHex(a.root) });
        }
        for (const entry of byId.values()) sink.entry(entry);
      }
    }, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  }

  async setWatermark(w: WatermarkSetting): Promise<void> {
    const { kind, scope, slot, epoch } = checkWatermarkSetting(w);
    if (this.closing) throw closedError();
    await this.tx(async (c) => {
      // Exclusive global lock: waits for the batches in flight in every instance; every later batch sees the change.
      await c.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_CLASS, this.globalKey]);
      if (slot === null && epoch === null) {
        await c.query(`DELETE FROM ${this.t.watermarks} WHERE kind = $1 AND pubkey = $2`, [kind, scope]);
      } else {
        await c.query(
          `INSERT INTO ${this.t.watermarks} AS w (kind, pubkey, slot, epoch) VALUES ($1, $2, $3, $4)
             ON CONFLICT (kind, pubkey) DO UPDATE SET slot = COALESCE(EXCLUDED.slot, w.slot), epoch = COALESCE(EXCLUDED.epoch, w.epoch)`,
          [kind, scope, slot, epoch],
        );
      }
    });
  }

  async retire(pubkeys: string[]): Promise<void> {
    const pks = pubkeys.map(checkPubkey);
    if (this.closing) throw closedError();
    await this.tx(async (c) => {
      // Exclusive global lock, as for a watermark: every later batch, in every instance, sees the retirement.
      await c.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_CLASS, this.globalKey]);
      await c.query(`INSERT INTO ${this.t.retired} (pubkey) SELECT unnest($1::text[]) ON CONFLICT (pubkey) DO NOTHING`, [pks]);
    });
  }

  async unretire(pubkeys: string[]): Promise<string[]> {
    const pks = pubkeys.map(checkPubkey);
    if (this.closing) throw closedError();
    let lifted: string[] = [];
    await this.tx(async (c) => {
      await c.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_CLASS, this.globalKey]);
      lifted = (await c.query(`DELETE FROM ${this.t.retired} WHERE pubkey = ANY($1::text[]) RETURNING pubkey`, [pks])).rows.map((r: { pubkey: string }) => r.pubkey);
    });
    return pks.filter((pk) => lifted.includes(pk));
  }

  async getRetired(): Promise<Retirement[]> {
    if (this.closing) throw closedError();
    try {
      const rows = (await this.pool.query(`SELECT pubkey, retired_at FROM ${this.t.retired} ORDER BY pubkey`)).rows as { pubkey: string; retired_at: Date }[];
      return rows.map((r) => ({ pubkey: r.pubkey, retiredAt: r.retired_at.toISOString() }));
    } catch (e) {
      throw unavailable(e);
    }
  }

  async prune(keep: PruneSetting, pubkeys?: string[]): Promise<PruneSummary> {
    const k = checkPruneSetting(keep);
    const wanted = pubkeys === undefined ? undefined : new Set(pubkeys.map(checkPubkey));
    if (this.closing) throw closedError();
    let all: { id: string; pubkey: string }[];
    try {
      all = (await this.pool.query(`SELECT id, pubkey FROM ${this.t.validators} ORDER BY id`)).rows;
    } catch (e) {
      throw unavailable(e);
    }
    if (wanted) all = all.filter((v) => wanted.has(v.pubkey));
    const summary: PruneSummary = { validators: all.length, blocksDeleted: 0, attestationsDeleted: 0, kept: [] };
    const { blocks, atts } = this.t;
    for (let i = 0; i < all.length; i += PRUNE_CHUNK) {
      const ids = all.slice(i, i + PRUNE_CHUNK).map((v) => v.id);
      await this.tx(async (c) => {
        // Exclusive global lock, as for imports: every batch (in every instance) decides before or after this chunk, never between.
        await c.query("SELECT pg_advisory_xact_lock($1, $2)", [LOCK_CLASS, this.globalKey]);
        const views = (
          await c.query(
            `SELECT v.id, v.pubkey, m.max_target,
               (SELECT max(b.slot) FROM ${blocks} b WHERE b.validator_id = v.id) AS max_slot,
               (SELECT max(a.source_epoch) FROM ${atts} a WHERE a.validator_id = v.id AND a.target_epoch <= m.max_target - $2) AS pruned_max_source,
               (SELECT min(a.source_epoch) FROM ${atts} a WHERE a.validator_id = v.id AND a.target_epoch > m.max_target - $2) AS kept_min_source
             FROM ${this.t.validators} v CROSS JOIN LATERAL (SELECT max(a.target_epoch) AS max_target FROM ${atts} a WHERE a.validator_id = v.id) m
             WHERE v.id = ANY($1::int8[])`,
            [ids, k.epochs],
          )
        ).rows as { id: string; pubkey: string; max_target: unknown; max_slot: unknown; pruned_max_source: unknown; kept_min_source: unknown }[];
        const cuts = { blocks: { ids: [] as string[], cuts: [] as number[] }, atts: { ids: [] as string[], cuts: [] as number[] } };
        for (const v of views) {
          const plan = prunePlan(
            { maxSlot: numOrNull(v.max_slot), maxTarget: numOrNull(v.max_target), prunedMaxSource: numOrNull(v.pruned_max_source), keptMinSource: numOrNull(v.kept_min_source) },
            k,
          );
          if (plan.blockCut !== null) cuts.blocks.ids.push(v.id), cuts.blocks.cuts.push(plan.blockCut);
          if (plan.attestationCut !== null) cuts.atts.ids.push(v.id), cuts.atts.cuts.push(plan.attestationCut);
          if (plan.keptAll) summary.kept.push(v.pubkey);
        }
        const del = async (table: string, column: string, c2: { ids: string[]; cuts: number[] }): Promise<number> =>
          c2.ids.length === 0
            ? 0
            : ((
                await c.query(
                  `DELETE FROM ${table} r USING unnest($1::int8[], $2::int8[]) AS x(id, cut) WHERE r.validator_id = x.id AND r.${column} <= x.cut`,
                  [c2.ids, c2.cuts],
                )
              ).rowCount ?? 0);
        summary.blocksDeleted += await del(blocks, "slot", cuts.blocks);
        summary.attestationsDeleted += await del(atts, "target_epoch", cuts.atts);
      });
    }
    summary.kept.sort();
    return summary;
  }

  async getWatermarks(pubkey?: string): Promise<Watermark[]> {
    const pk = pubkey === undefined ? undefined : checkPubkey(pubkey);
    if (this.closing) throw closedError();
    let rows: { kind: WatermarkKind; pubkey: string; slot: string | null; epoch: string | null }[];
    try {
      rows = (
        pk === undefined
          ? await this.pool.query(`SELECT kind, pubkey, slot, epoch FROM ${this.t.watermarks}`)
          : await this.pool.query(`SELECT kind, pubkey, slot, epoch FROM ${this.t.watermarks} WHERE pubkey IN ($1, '*')`, [pk])
      ).rows;
    } catch (e) {
      throw unavailable(e);
    }
    return sortWatermarks(
      rows.map((r) => ({ kind: r.kind, pubkey: r.pubkey === GLOBAL_WATERMARK ? null : r.pubkey, slot: numOrNull(r.slot), epoch: numOrNull(r.epoch) })),
    );
  }

  /** Decide what is already queued (nothing is dropped silently), then close the pool. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.inFlight !== null || this.pending.length > 0) {
        if (this.inFlight === null) this.flush();
        await this.inFlight;
      }
      await this.pool.end();
    })();
    return this.closing;
  }
}
