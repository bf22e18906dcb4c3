/**
 * SQLite slashing-protection store (better-sqlite3): WAL, one BEGIN IMMEDIATE transaction per group of
 * check-and-records, so concurrent signers (threads or processes) are serialised. Durability is
 * synchronous=FULL's (the WAL is fsynced after every commit, before any decision resolves), but the
 * fsync runs on the libuv thread pool instead of blocking the event loop inside COMMIT.
 */
import fs from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { badRequest, VigilError } from "../../errors.js";
import { bytesToHex, hexToBytes, INTERCHANGE_FORMAT_VERSION, interchangeSource, validatorRecords, type InterchangeSource } from "../interchange.js";
import { applicableWatermarks, checkAttestation, checkBlock, prunePlan, RETIRED_KIND } from "../rules.js";
import type { Watermarks } from "../rules.js";
import type { Decision, ImportSummary, Interchange, PruneSetting, PruneSummary, SigningRoot, Watermark, WatermarkKind, WatermarkSetting } from "../types.js";
import { checkEpochOrSlot, checkPruneSetting, checkPubkey, checkRoot, checkWatermarkSetting, collectInterchange, GLOBAL_WATERMARK, PRUNE_CHUNK, sortWatermarks, type Retirement } from "./store.js";
import type { InterchangeSink, OnTentative, SlashingStore, StoreStats } from "./store.js";

export const BUSY_TIMEOUT_MS = 5000;
/** Most decisions one group commit takes. */
export const MAX_BATCH = 1024;
const GVR_KEY = "genesis_validators_root";

/** Versioned migrations: MIGRATIONS[i] brings the schema from version i to i + 1. Append only. */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE metadata (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
   CREATE TABLE validators (id INTEGER PRIMARY KEY, pubkey TEXT NOT NULL UNIQUE CHECK (length(pubkey) = 98)) STRICT;
   CREATE TABLE signed_blocks (
     validator_id INTEGER NOT NULL REFERENCES validators (id),
     slot INTEGER NOT NULL CHECK (slot >= 0),
     signing_root BLOB CHECK (signing_root IS NULL OR length(signing_root) = 32)
   ) STRICT;
   CREATE INDEX signed_blocks_validator_slot ON signed_blocks (validator_id, slot);
   CREATE TABLE signed_attestations (
     validator_id INTEGER NOT NULL REFERENCES validators (id),
     source_epoch INTEGER NOT NULL CHECK (source_epoch >= 0),
     target_epoch INTEGER NOT NULL CHECK (target_epoch >= 0),
     signing_root BLOB CHECK (signing_root IS NULL OR length(signing_root) = 32)
   ) STRICT;
   CREATE INDEX signed_attestations_validator_target ON signed_attestations (validator_id, target_epoch);
   CREATE INDEX signed_attestations_validator_source ON signed_attestations (validator_id, source_epoch);`,
  // v2: watermarks for key migrations between clusters (see rules.ts). pubkey '*' = every validator.
  `CREATE TABLE watermarks (
     kind TEXT NOT NULL CHECK (kind IN ('low', 'high')),
     pubkey TEXT NOT NULL CHECK (pubkey = '*' OR length(pubkey) = 98),
     slot INTEGER CHECK (slot >= 0),
     epoch INTEGER CHECK (epoch >= 0),
     CHECK (slot IS NOT NULL OR epoch IS NOT NULL),
     PRIMARY KEY (kind, pubkey)
   ) STRICT;`,
  // v3: validators retired by a Keymanager DELETE (see SlashingStore.retire).
  `CREATE TABLE retired_validators (pubkey TEXT PRIMARY KEY CHECK (length(pubkey) = 98), retired_at TEXT NOT NULL) STRICT;`,
];

/** Open (creating if needed, mode 0600) the SQLite slashing-protection database at `file`. */
export function openSqliteStore(file: string): SqliteSlashingStore {
  return new SqliteSlashingStore(file);
}

type Stmt = Database.Statement<unknown[]>;

/** Whether `key` is in `seen`; adds it. */
function seenBefore(seen: Set<string>, key: string): boolean {
  if (seen.has(key)) return true;
  seen.add(key);
  return false;
}

function blob(root: SigningRoot): Buffer | null {
  return root === null ? null : Buffer.from(root.buffer, root.byteOffset, root.byteLength);
}

export class SqliteSlashingStore implements SlashingStore {
  private readonly db: Database.Database;
  private readonly s: Record<string, Stmt>;
  private pending: { decide: () => Decision; onTentative?: OnTentative; resolve: (d: Decision) => void; reject: (e: unknown) => void }[] = [];
  private flushScheduled = false;
  private closed = false;
  /** The WAL file, fdatasynced after commits (null: not in WAL mode, SQLite syncs in COMMIT itself). */
  private walFd: number | null = null;
  /** Write transactions committed so far, and how many of them a finished WAL sync covers. */
  private committed = 0;
  private synced = 0;
  private syncing = false;
  private syncWaiters: { seq: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** Set when a WAL sync failed: the database's durable state is unknown, nothing is decided any more. */
  private syncError: VigilError | null = null;
  readonly stats: StoreStats = { decisions: 0, groupCommits: 0, walSyncs: 0 };
  /** The WAL's fdatasync (tests replace it to delay or fail syncs). */
  syncWal: (fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => void = fs.fdatasync;

  /** Called after a group's tentative decisions were told, just before its COMMIT; if it throws, the group rolls back (tests inject a failing commit here). */
  beforeCommit?: () => void;

  constructor(readonly file: string) {
    if (file !== ":memory:") {
      fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true, mode: 0o700 });
      try {
        fs.closeSync(fs.openSync(file, "wx", 0o600)); // SQLite gives -wal/-shm the same mode
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
    }
    this.db = new Database(file, { timeout: BUSY_TIMEOUT_MS });
    try {
      this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      const wal = this.db.pragma("journal_mode = WAL", { simple: true }) === "wal";
      this.db.pragma("synchronous = FULL");
      this.db.pragma("foreign_keys = ON");
      this.migrate();
      if (wal) {
        // The WAL exists from here on and keeps its inode while this connection is open (SQLite deletes
        // it only when the last connection closes). Commits now write it without fsync (synchronous=NORMAL;
        // checkpoints still sync) and syncWal makes them durable before a decision resolves.
        this.walFd = fs.openSync(`${file}-wal`, "r+");
        this.db.pragma("synchronous = NORMAL");
      }
    } catch (e) {
      if (this.walFd !== null) fs.closeSync(this.walFd);
      this.db.close();
      throw e;
    }
    const p = (sql: string): Stmt => this.db.prepare(sql);
    this.s = {
      begin: p("BEGIN IMMEDIATE"),
      commit: p("COMMIT"),
      rollback: p("ROLLBACK"),
      getMeta: p("SELECT value FROM metadata WHERE key = ?").pluck(),
      setMeta: p("INSERT INTO metadata (key, value) VALUES (?, ?)"),
      validatorId: p("SELECT id FROM validators WHERE pubkey = ?").pluck(),
      insertValidator: p("INSERT INTO validators (pubkey) VALUES (?)"),
      blocksAtSlot: p("SELECT signing_root FROM signed_blocks WHERE validator_id = ? AND slot = ?").pluck(),
      minSlot: p("SELECT MIN(slot) FROM signed_blocks WHERE validator_id = ?").pluck(),
      blockExists: p("SELECT 1 FROM signed_blocks WHERE validator_id = ? AND slot = ? AND signing_root IS ?").pluck(),
      insertBlock: p("INSERT INTO signed_blocks (validator_id, slot, signing_root) VALUES (?, ?, ?)"),
      attsAtTarget: p("SELECT signing_root FROM signed_attestations WHERE validator_id = ? AND target_epoch = ?").pluck(),
      // Each surround query walks the index from the new vote forwards: normally zero rows, so O(log n).
      surroundsExisting: p(
        `SELECT EXISTS (SELECT 1 FROM signed_attestations INDEXED BY signed_attestations_validator_source
           WHERE validator_id = ? AND source_epoch > ? AND target_epoch < ?)`,
      ).pluck(),
      surroundedByExisting: p(
        `SELECT EXISTS (SELECT 1 FROM signed_attestations INDEXED BY signed_attestations_validator_target
           WHERE validator_id = ? AND target_epoch > ? AND source_epoch < ?)`,
      ).pluck(),
      minSource: p("SELECT MIN(source_epoch) FROM signed_attestations WHERE validator_id = ?").pluck(),
      minTarget: p("SELECT MIN(target_epoch) FROM signed_attestations WHERE validator_id = ?").pluck(),
      attExists: p(
        "SELECT 1 FROM signed_attestations WHERE validator_id = ? AND target_epoch = ? AND source_epoch = ? AND signing_root IS ?",
      ).pluck(),
      insertAtt: p("INSERT INTO signed_attestations (validator_id, source_epoch, target_epoch, signing_root) VALUES (?, ?, ?, ?)"),
      allValidators: p("SELECT id, pubkey FROM validators ORDER BY id"),
      blocksOf: p("SELECT slot, signing_root AS root FROM signed_blocks WHERE validator_id = ? ORDER BY slot, rowid"),
      watermarksFor: p(
        `SELECT kind, slot, epoch FROM watermarks WHERE pubkey IN (@pk, '*')
         UNION ALL SELECT '${RETIRED_KIND}', 0, 0 FROM retired_validators WHERE pubkey = @pk`,
      ),
      retire: p("INSERT INTO retired_validators (pubkey, retired_at) VALUES (?, ?) ON CONFLICT (pubkey) DO NOTHING"),
      unretire: p("DELETE FROM retired_validators WHERE pubkey = ?"),
      allRetired: p("SELECT pubkey, retired_at FROM retired_validators ORDER BY pubkey"),
      watermarksOf: p("SELECT kind, pubkey, slot, epoch FROM watermarks WHERE pubkey IN (?, '*')"),
      allWatermarks: p("SELECT kind, pubkey, slot, epoch FROM watermarks"),
      setWatermark: p(
        `INSERT INTO watermarks (kind, pubkey, slot, epoch) VALUES (?, ?, ?, ?)
           ON CONFLICT (kind, pubkey) DO UPDATE SET slot = COALESCE(excluded.slot, watermarks.slot), epoch = COALESCE(excluded.epoch, watermarks.epoch)`,
      ),
      clearWatermark: p("DELETE FROM watermarks WHERE kind = ? AND pubkey = ?"),
      maxSlot: p("SELECT MAX(slot) FROM signed_blocks WHERE validator_id = ?").pluck(),
      maxTarget: p("SELECT MAX(target_epoch) FROM signed_attestations WHERE validator_id = ?").pluck(),
      maxSourceUpTo: p("SELECT MAX(source_epoch) FROM signed_attestations WHERE validator_id = ? AND target_epoch <= ?").pluck(),
      minSourceAbove: p("SELECT MIN(source_epoch) FROM signed_attestations WHERE validator_id = ? AND target_epoch > ?").pluck(),
      deleteBlocksUpTo: p("DELETE FROM signed_blocks WHERE validator_id = ? AND slot <= ?"),
      deleteAttsUpTo: p("DELETE FROM signed_attestations WHERE validator_id = ? AND target_epoch <= ?"),
      attsOf: p(
        `SELECT source_epoch AS source, target_epoch AS target, signing_root AS root FROM signed_attestations
           WHERE validator_id = ? ORDER BY target_epoch, source_epoch, rowid`,
      ),
    };
  }

  private migrate(): void {
    this.db
      .transaction(() => {
        this.db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL) STRICT");
        const current = (this.db.prepare("SELECT MAX(version) FROM schema_version").pluck().get() as number | null) ?? 0;
        if (current > MIGRATIONS.length) {
          throw new VigilError("unavailable", "SLASHING_DB_TOO_NEW", `slashing database schema v${current} is newer than this Vigil (v${MIGRATIONS.length})`);
        }
        const record = this.db.prepare("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)");
        for (let v = current; v < MIGRATIONS.length; v++) {
          this.db.exec(MIGRATIONS[v]);
          record.run(v + 1, new Date().toISOString());
        }
      })
      .immediate();
  }

  /** Run a database operation; database failures become VigilError 'unavailable' (cannot decide safely). */
  private guard<T>(fn: () => T): T {
    if (this.syncError) throw this.syncError;
    try {
      return fn();
    } catch (e) {
      if (e instanceof VigilError) throw e;
      const code = (e as { code?: string }).code ?? "";
      const busy = code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED");
      const err = new VigilError("unavailable", busy ? "SLASHING_DB_BUSY" : "SLASHING_DB_ERROR", `slashing database: ${(e as Error).message}`);
      (err as { cause?: unknown }).cause = e;
      throw err;
    }
  }

  private readGvr(): Uint8Array | null {
    const v = this.s.getMeta.get(GVR_KEY) as Buffer | undefined;
    return v === undefined ? null : new Uint8Array(v);
  }

  /** Inside a transaction: bind if unbound, else require equality. */
  private bindGvr(gvr: Uint8Array): void {
    const bound = this.readGvr();
    if (bound === null) this.s.setMeta.run(GVR_KEY, Buffer.from(gvr));
    else if (!Buffer.from(bound).equals(Buffer.from(gvr))) {
      throw badRequest(
        "GENESIS_VALIDATORS_ROOT_MISMATCH",
        `genesis validators root ${bytesToHex(gvr)} differs from the database's ${bytesToHex(bound)}`,
      );
    }
  }

  private validatorId(pubkey: string, create: true): number;
  private validatorId(pubkey: string, create: false): number | undefined;
  private validatorId(pubkey: string, create: boolean): number | undefined {
    const id = this.s.validatorId.get(pubkey) as number | undefined;
    if (id !== undefined || !create) return id;
    return Number(this.s.insertValidator.run(pubkey).lastInsertRowid);
  }

  /** Inside a transaction: the watermarks that apply to `pubkey` (its own and the global ones, combined). */
  private watermarks(pubkey: string): Watermarks {
    return applicableWatermarks(this.s.watermarksFor.all({ pk: pubkey }) as { kind: WatermarkKind | typeof RETIRED_KIND; slot: number | null; epoch: number | null }[]);
  }

  async getGenesisValidatorsRoot(): Promise<Uint8Array | null> {
    return this.guard(() => this.readGvr());
  }

  async bindGenesisValidatorsRoot(gvr: Uint8Array): Promise<void> {
    if (!(gvr instanceof Uint8Array) || gvr.length !== 32) throw badRequest("INVALID_ROOT", "genesis validators root must be 32 bytes");
    this.guard(() => this.db.transaction(() => this.bindGvr(gvr)).immediate());
    await this.durable(++this.committed);
  }

  async checkAndRecordBlock(pubkey: string, slot: number, signingRoot: Uint8Array | null, onTentative?: OnTentative): Promise<Decision> {
    const pk = checkPubkey(pubkey);
    checkEpochOrSlot(slot, "slot");
    const root = blob(checkRoot(signingRoot, "signing root"));
    return this.enqueue((): Decision => {
      const id = this.validatorId(pk, false);
      const decision = checkBlock(
        slot,
        root,
        id === undefined
          ? { sameSlot: [], minSlot: null }
          : { sameSlot: this.s.blocksAtSlot.all(id, slot) as Buffer[], minSlot: this.s.minSlot.get(id) as number | null },
        this.watermarks(pk),
      );
      if (decision.allowed && !decision.repeat) this.s.insertBlock.run(id ?? this.validatorId(pk, true), slot, root);
      return decision;
    }, onTentative);
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
    const root = blob(checkRoot(signingRoot, "signing root"));
    return this.enqueue((): Decision => {
      const id = this.validatorId(pk, false);
      const decision = checkAttestation(
        source,
        target,
        root,
        id === undefined
          ? { sameTarget: [], surroundsExisting: false, surroundedByExisting: false, minSource: null, minTarget: null }
          : {
              sameTarget: this.s.attsAtTarget.all(id, target) as Buffer[],
              surroundsExisting: this.s.surroundsExisting.get(id, source, target) === 1,
              surroundedByExisting: this.s.surroundedByExisting.get(id, target, source) === 1,
              minSource: this.s.minSource.get(id) as number | null,
              minTarget: this.s.minTarget.get(id) as number | null,
            },
        this.watermarks(pk),
      );
      if (decision.allowed && !decision.repeat) this.s.insertAtt.run(id ?? this.validatorId(pk, true), source, target, root);
      return decision;
    }, onTentative);
  }

  /**
   * Group commit: decisions requested in the same turn of the event loop are made one after
   * another inside ONE `BEGIN IMMEDIATE` transaction and share its commit; groups committed while a
   * WAL sync runs share the next one. Tentative decisions are told before the COMMIT; none resolves
   * before the commit is durable. If the commit or its sync fails, none is allowed (all reject 'unavailable').
   */
  private enqueue(decide: () => Decision, onTentative?: OnTentative): Promise<Decision> {
    if (this.closed) return Promise.reject(new VigilError("unavailable", "SLASHING_DB_ERROR", "slashing database is closed"));
    if (this.syncError) return Promise.reject(this.syncError);
    return new Promise((resolve, reject) => {
      this.pending.push({ decide, onTentative, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const batch = this.pending.splice(0, MAX_BATCH);
    if (this.pending.length > 0) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    if (batch.length === 0) return;
    let decisions: Decision[];
    try {
      decisions = this.guard(() => {
        this.s.begin.run();
        try {
          const made = batch.map((b) => b.decide());
          made.forEach((d, i) => {
            try {
              batch[i].onTentative?.(d);
            } catch {
              /* a listener's failure does not change the decision */
            }
          });
          this.beforeCommit?.();
          this.s.commit.run();
          return made;
        } catch (e) {
          if (this.db.inTransaction) this.s.rollback.run();
          throw e;
        }
      });
    } catch (e) {
      for (const b of batch) b.reject(e);
      return;
    }
    this.stats.groupCommits++;
    this.stats.decisions += batch.length;
    // A group that wrote nothing (refusals) still waits for earlier commits it may have read. A repeat
    // writes nothing either, but it is answered with a signature and may repeat a record that another
    // process sharing this file committed without having synced it yet: it waits for a sync of its own.
    if (decisions.some((d) => d.allowed)) this.committed++;
    this.durable(this.committed).then(
      () => batch.forEach((b, i) => b.resolve(decisions[i])),
      (e) => batch.forEach((b) => b.reject(e)),
    );
  }

  /** Resolves once the first `seq` write transactions are on disk: a WAL fdatasync begun after their COMMITs finished. */
  private durable(seq: number): Promise<void> {
    if (this.syncError) return Promise.reject(this.syncError);
    if (seq <= this.synced || this.walFd === null) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.syncWaiters.push({ seq, resolve, reject });
      this.startSync();
    });
  }

  /** One WAL sync at a time; it covers every commit made before it started. */
  private startSync(): void {
    if (this.syncing || this.syncError || this.walFd === null) return;
    this.syncing = true;
    const upTo = this.committed;
    this.syncWal(this.walFd, (err) => {
      this.syncing = false;
      if (err) {
        // After a failed fsync the kernel may have dropped the dirty pages: what is on disk is unknown.
        this.syncError = new VigilError("unavailable", "SLASHING_DB_ERROR", `slashing database: syncing its WAL failed (${err.code ?? err.message}); nothing is signed until Vigil restarts`);
        for (const w of this.syncWaiters.splice(0)) w.reject(this.syncError);
        return;
      }
      this.stats.walSyncs++;
      this.synced = Math.max(this.synced, upTo);
      const waiting = this.syncWaiters;
      this.syncWaiters = [];
      for (const w of waiting) {
        if (w.seq <= this.synced) w.resolve();
        else this.syncWaiters.push(w);
      }
      if (this.syncWaiters.length > 0) this.startSync();
    });
  }

  async importInterchange(doc: Interchange | InterchangeSource): Promise<ImportSummary> {
    const source = interchangeSource(doc);
    const summary = this.guard(() =>
      this.db
        .transaction((): ImportSummary => {
          this.bindGvr(hexToBytes(source.metadata.genesis_validators_root));
          const pubkeys = new Set<string>();
          const sum: ImportSummary = {
            validators: 0,
            validatorsAdded: 0,
            blocksImported: 0,
            blocksSkipped: 0,
            attestationsImported: 0,
            attestationsSkipped: 0,
          };
          // Entries are validated as they are read: an invalid one throws and rolls the whole import back.
          for (const entry of source.entries()) {
            pubkeys.add(entry.pubkey);
            const rec = validatorRecords(entry);
            let id = this.validatorId(entry.pubkey, false);
            // A validator new to the database has no records yet: only repeats within this entry are
            // skipped, found in memory instead of by one query per record.
            const fresh = id === undefined ? new Set<string>() : null;
            if (id === undefined) {
              id = this.validatorId(entry.pubkey, true);
              sum.validatorsAdded++;
            }
            // Slashable records (inside the file or against the database) are still kept: they only make checks stricter.
            rec.blocks.forEach((b, i) => {
              const root = blob(b.signingRoot);
              const repeat = fresh
                ? seenBefore(fresh, `b${b.slot}:${entry.signed_blocks[i].signing_root ?? ""}`)
                : this.s.blockExists.get(id, b.slot, root) !== undefined;
              if (repeat) sum.blocksSkipped++;
              else {
                this.s.insertBlock.run(id, b.slot, root);
                sum.blocksImported++;
              }
            });
            rec.attestations.forEach((a, i) => {
              const root = blob(a.signingRoot);
              const repeat = fresh
                ? seenBefore(fresh, `a${a.source}:${a.target}:${entry.signed_attestations[i].signing_root ?? ""}`)
                : this.s.attExists.get(id, a.target, a.source, root) !== undefined;
              if (repeat) sum.attestationsSkipped++;
              else {
                this.s.insertAtt.run(id, a.source, a.target, root);
                sum.attestationsImported++;
              }
            });
          }
          sum.validators = pubkeys.size;
          return sum;
        })
        .immediate(),
    );
    await this.durable(++this.committed);
    return summary;
  }

  async exportInterchange(pubkeys?: string[]): Promise<Interchange> {
    return collectInterchange(this, pubkeys);
  }

  async exportInterchangeTo(sink: InterchangeSink, pubkeys?: string[]): Promise<void> {
    const wanted = pubkeys === undefined ? undefined : new Set(pubkeys.map(checkPubkey));
    // One read transaction: a consistent snapshot, handed over one validator at a time.
    this.guard(() =>
      this.db.transaction((): void => {
        const gvr = this.readGvr();
        if (gvr === null) throw badRequest("GENESIS_VALIDATORS_ROOT_UNSET", "the slashing database is not bound to a genesis validators root yet");
        sink.start({ interchange_format_version: INTERCHANGE_FORMAT_VERSION, genesis_validators_root: bytesToHex(gvr) });
        for (const v of this.s.allValidators.all() as { id: number; pubkey: string }[]) {
          if (wanted !== undefined && !wanted.has(v.pubkey)) continue;
          sink.entry({
            pubkey: v.pubkey,
            signed_blocks: (this.s.blocksOf.all(v.id) as { slot: number; root: Buffer | null }[]).map((b) =>
              b.root === null ? { slot: String(b.slot) } : { slot: String(b.slot), signing_root: bytesToHex(b.root) },
            ),
            signed_attestations: (this.s.attsOf.all(v.id) as { source: number; target: number; root: Buffer | null }[]).map((a) => {
              const att = { source_epoch: String(a.source), target_epoch: String(a.target) };
              return a.root === null ? att : { ...att, signing_root: bytesToHex(a.root) };
            }),
          });
        }
      })(),
    );
  }

  async setWatermark(w: WatermarkSetting): Promise<void> {
    const { kind, scope, slot, epoch } = checkWatermarkSetting(w);
    // BEGIN IMMEDIATE: serialised with every check-and-record (same connection or not).
    this.guard(() =>
      this.db
        .transaction(() => {
          if (slot === null && epoch === null) this.s.clearWatermark.run(kind, scope);
          else this.s.setWatermark.run(kind, scope, slot, epoch);
        })
        .immediate(),
    );
    await this.durable(++this.committed);
  }

  async prune(keep: PruneSetting, pubkeys?: string[]): Promise<PruneSummary> {
    const k = checkPruneSetting(keep);
    const wanted = pubkeys === undefined ? undefined : new Set(pubkeys.map(checkPubkey));
    const all = this.guard(() => this.s.allValidators.all() as { id: number; pubkey: string }[]).filter((v) => !wanted || wanted.has(v.pubkey));
    const summary: PruneSummary = { validators: all.length, blocksDeleted: 0, attestationsDeleted: 0, kept: [] };
    for (let i = 0; i < all.length; i += PRUNE_CHUNK) {
      // BEGIN IMMEDIATE: serialised with every check-and-record; what a decision reads is before or after a validator's prune, never between.
      this.guard(() =>
        this.db
          .transaction(() => {
            for (const v of all.slice(i, i + PRUNE_CHUNK)) {
              const maxTarget = this.s.maxTarget.get(v.id) as number | null;
              const cut = maxTarget === null ? null : maxTarget - k.epochs;
              const plan = prunePlan(
                {
                  maxSlot: this.s.maxSlot.get(v.id) as number | null,
                  maxTarget,
                  prunedMaxSource: cut === null ? null : (this.s.maxSourceUpTo.get(v.id, cut) as number | null),
                  keptMinSource: cut === null ? null : (this.s.minSourceAbove.get(v.id, cut) as number | null),
                },
                k,
              );
              if (plan.blockCut !== null) summary.blocksDeleted += this.s.deleteBlocksUpTo.run(v.id, plan.blockCut).changes;
              if (plan.attestationCut !== null) summary.attestationsDeleted += this.s.deleteAttsUpTo.run(v.id, plan.attestationCut).changes;
              if (plan.keptAll) summary.kept.push(v.pubkey);
            }
          })
          .immediate(),
      );
      await this.durable(++this.committed);
    }
    summary.kept.sort();
    return summary;
  }

  async getWatermarks(pubkey?: string): Promise<Watermark[]> {
    const pk = pubkey === undefined ? undefined : checkPubkey(pubkey);
    type Row = { kind: WatermarkKind; pubkey: string; slot: number | null; epoch: number | null };
    const rows = this.guard(() => (pk === undefined ? this.s.allWatermarks.all() : this.s.watermarksOf.all(pk)) as Row[]);
    return sortWatermarks(rows.map((r) => ({ kind: r.kind, pubkey: r.pubkey === GLOBAL_WATERMARK ? null : r.pubkey, slot: r.slot, epoch: r.epoch })));
  }

  async retire(pubkeys: string[]): Promise<void> {
    const pks = pubkeys.map(checkPubkey);
    const at = new Date().toISOString();
    // BEGIN IMMEDIATE: serialised with every check-and-record; all or none.
    this.guard(() =>
      this.db
        .transaction(() => {
          for (const pk of pks) this.s.retire.run(pk, at);
        })
        .immediate(),
    );
    await this.durable(++this.committed);
  }

  async unretire(pubkeys: string[]): Promise<string[]> {
    const pks = pubkeys.map(checkPubkey);
    const lifted = this.guard(() => this.db.transaction(() => pks.filter((pk) => this.s.unretire.run(pk).changes > 0)).immediate());
    await this.durable(++this.committed);
    return lifted;
  }

  async getRetired(): Promise<Retirement[]> {
    const rows = this.guard(() => this.s.allRetired.all() as { pubkey: string; retired_at: string }[]);
    return rows.map((r) => ({ pubkey: r.pubkey, retiredAt: r.retired_at }));
  }

  async close(): Promise<void> {
    // Decide what is already queued (nothing is dropped silently), then close.
    while (this.pending.length > 0) this.flush();
    this.closed = true;
    await this.durable(this.committed).catch(() => undefined); // each waiter got the outcome already
    if (this.walFd !== null) fs.closeSync(this.walFd);
    this.walFd = null;
    if (this.db.open) this.db.close();
  }
}
