/**
 * PostgreSQL for the tests: the server at VIGIL_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432/test),
 * a throwaway schema per store, dropped (CASCADE) afterwards. An unreachable server FAILS the tests with a
 * clear message: it is never a reason to skip (CI starts PostgreSQL).
 */
import pg from "pg";
import { openPostgresStore } from "../../src/slashing/store/postgres.js";
import type { PostgresSlashingStore, PostgresStoreOptions } from "../../src/slashing/store/postgres.js";

export const PG_URL = process.env.VIGIL_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test";

const hint = (e: unknown): Error =>
  new Error(
    `PostgreSQL test server unreachable at ${PG_URL} (${(e as Error)?.message ?? String(e)}). ` +
      "Start PostgreSQL or point VIGIL_TEST_PG_URL at one; these tests do not skip.",
    { cause: e },
  );

let seq = 0;

/** Throwaway schemas (and the stores opened on them) for one test file; `cleanup()` closes and drops them all. */
export class PgScratch {
  private readonly schemas = new Set<string>();
  private readonly stores: PostgresSlashingStore[] = [];
  private adminPool: pg.Pool | null = null;

  constructor(private readonly tag: string) {
    if (!/^[a-z0-9_]{1,20}$/.test(tag)) throw new Error(`bad scratch tag ${tag}`);
  }

  /** A new unique schema name (not created: the store creates it). */
  schema(): string {
    const name = `vt_${this.tag}_${process.pid}_${++seq}_${Math.random().toString(36).slice(2, 8)}`;
    this.schemas.add(name);
    return name;
  }

  /** A pool on the test database for direct SQL (lazily created, ended by cleanup). */
  admin(): pg.Pool {
    if (this.adminPool === null) {
      this.adminPool = new pg.Pool({ connectionString: PG_URL, max: 4, connectionTimeoutMillis: 5000 });
      this.adminPool.on("error", () => undefined);
    }
    return this.adminPool;
  }

  /** Fails with a clear message when the server cannot be reached. */
  async ping(): Promise<void> {
    try {
      await this.admin().query("SELECT 1");
    } catch (e) {
      throw hint(e);
    }
  }

  /** Open a store on a fresh schema (or on `opts.schema`), tracked for cleanup. */
  async open(opts: PostgresStoreOptions = {}, url = PG_URL): Promise<PostgresSlashingStore> {
    const schema = opts.schema ?? this.schema();
    this.schemas.add(schema);
    let store: PostgresSlashingStore;
    try {
      store = await openPostgresStore(url, { ...opts, schema });
    } catch (e) {
      if (url === PG_URL) await this.ping(); // a clear message if the server is down
      throw e;
    }
    this.stores.push(store);
    return store;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.stores.map((s) => s.close().catch(() => undefined)));
    if (this.schemas.size > 0) {
      const admin = this.admin();
      for (const s of this.schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`).catch(() => undefined);
    }
    await this.adminPool?.end();
    this.adminPool = null;
  }
}
