/**
 * The key vault service: it holds the decrypted keys, owns the slashing-protection store and
 * runs the signing pipeline. In production it runs alone in the vault process (child.ts).
 */
import fs from "node:fs";
import path from "node:path";
import { DB_FILE, KEY_STORE_FILE } from "../config/files.js";
import { resolveNetwork, type Network } from "../config/networks.js";
import { VigilError } from "../errors.js";
import { ensureDevKeys } from "../keys/dev.js";
import { decryptKeystore, parseKeystore, pubkeyFromSecret } from "../keys/keystore.js";
import { loadKeystores } from "../keys/load.js";
import { SealedKeyStore } from "../keys/sealed-store.js";
import { SignPool } from "../keys/sign-pool.js";
import pg from "pg";
import { Lease, notActive } from "../ha/lease.js";
import type { AuditRecord } from "../audit/log.js";
import { Authority } from "./authority.js";
import type { PostgresSlashingStore } from "../slashing/store/postgres.js";
import { readPassphrase } from "../keys/unlock.js";
import { Serial } from "../serial.js";
import { KeyVault, type KeySource } from "../keys/vault.js";
import { Signer } from "../signer.js";
import { interchangeSource, serializeInterchange } from "../slashing/interchange.js";
import { openSqliteStore } from "../slashing/store/sqlite.js";
import type { SlashingStore } from "../slashing/store/store.js";
import type { DeleteStatus, ImportStatus, KeyInfo, SignOutcome, VaultApi, VaultStats, VaultStatus } from "./api.js";


/** Plain, non-secret configuration: what the parent process hands the vault process. */
export interface VaultConfig {
  network: string;
  dataDir: string;
  keystores?: { dir: string; passwordsDir?: string; passwordFile?: string };
  /** Generate / use DEV keys when no other key source is configured. */
  devKeys?: boolean;
  /** Passphrase source of the sealed key store (prompt, stdin, file:<path>, env:<VAR>). */
  unlock?: string;
  /** A PostgreSQL URL: the protection store shared by several instances (else SQLite in dataDir). */
  dbUrl?: string;
  /** PostgreSQL schema for Vigil's tables (default public). */
  dbSchema?: string;
  /** Active/standby group name: only the lease holder signs (needs dbUrl). */
  haGroup?: string;
  /** Lease time-to-live in ms (failover happens within about this plus 3 s). */
  haLeaseMs?: number;
  /** The operator's policy file (default: the policy accepted last time, else the built-in one). */
  policyFile?: string;
  /** Prune the protection history at start and every PRUNE_INTERVAL_MS, keeping each validator's newest N epochs. */
  pruneKeepEpochs?: number;
  /** How often held keys are checked against the retirements in the database (default: one slot). */
  retirementCheckMs?: number;
}

/** How often `pruneKeepEpochs` prunes. */
export const PRUNE_INTERVAL_MS = 12 * 3600_000;

/** Open the configured protection store: PostgreSQL when a URL is given, else SQLite in the data dir. */
export async function openStore(config: Pick<VaultConfig, "dataDir" | "dbUrl" | "dbSchema">): Promise<SlashingStore> {
  if (config.dbUrl) {
    const { openPostgresStore } = await import("../slashing/store/postgres.js");
    return openPostgresStore(config.dbUrl, { schema: config.dbSchema });
  }
  return openSqliteStore(path.join(config.dataDir, DB_FILE));
}

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const silent: Logger = { info() {}, warn() {}, error() {} };
const hex = (b: Uint8Array): string => "0x" + Buffer.from(b).toString("hex");

const shuttingDown = (): VigilError => new VigilError("unavailable", "SHUTTING_DOWN", "Vigil is shutting down");

export class VaultService implements VaultApi {
  readonly keys = new KeyVault();
  private readonly signer: Signer;
  private locked = false;
  private keystoreSource?: VaultConfig["keystores"];
  private keystoreKind: KeySource = "keystore";
  /** The sealed key store, open (its key-encryption key in memory) once unlocked. */
  private sealed: SealedKeyStore | null = null;
  private sealedFile = "";
  /** The passphrase source still to be used (the store is locked until then). */
  pendingUnlock: string | null = null;

  private constructor(
    readonly network: Network,
    readonly store: SlashingStore,
    private readonly log: Logger,
    readonly authority: Authority,
  ) {
    this.signer = new Signer(network, store, this.keys);
  }

  /** Open the protection database, bind it to the network, load the configured keys. */
  static async open(config: VaultConfig, log: Logger = silent): Promise<VaultService> {
    const network = resolveNetwork(config.network);
    try {
      fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new VigilError("bad_request", "DATA_DIR_UNUSABLE", `cannot use ${config.dataDir} as the data directory: ${(e as Error).message}`);
    }
    if (config.haGroup && !config.dbUrl) {
      throw new VigilError("bad_request", "HA_NEEDS_POSTGRES", "--ha-group needs --db-url: the lease lives in the shared PostgreSQL database");
    }
    const store = await openStore(config);
    let authority: Authority;
    try {
      authority = await Authority.open(config.dataDir, network, config.policyFile);
    } catch (e) {
      await store.close();
      throw e;
    }
    const service = new VaultService(network, store, log, authority);
    try {
      await service.start(config);
    } catch (e) {
      // Nothing stays open when start-up fails (the audit log's file handle, the lease, the database).
      await service.close().catch(() => undefined);
      throw e;
    }
    return service;
  }

  private async start(config: VaultConfig): Promise<void> {
    const { log, network } = this;
    log.info({ policy: this.authority.policySource, rules: this.authority.policy.rules.length }, "policy loaded");
    if (config.haGroup) await this.joinHaGroup(config);
    try {
      await this.signer.init();
    } catch (e) {
      if (e instanceof VigilError && e.code === "GENESIS_VALIDATORS_ROOT_MISMATCH") {
        throw new VigilError(
          e.kind,
          e.code,
          `the protection database in ${config.dataDir} belongs to another network than ${network.name} (${e.message}); use a separate --data-dir per network`,
        );
      }
      throw e;
    }
    this.sealedFile = path.join(config.dataDir, KEY_STORE_FILE);
    if (config.unlock) {
      this.pendingUnlock = config.unlock;
      this.locked = true;
    } else if (SealedKeyStore.exists(this.sealedFile)) {
      throw new VigilError(
        "bad_request",
        "UNLOCK_REQUIRED",
        `${this.sealedFile} holds sealed keys: start with --unlock prompt|stdin|file:<path>|env:<VAR>`,
      );
    }
    if (config.keystores) {
      this.keystoreSource = config.keystores;
    } else if (config.devKeys && !config.unlock) {
      const dev = await ensureDevKeys(config.dataDir);
      if (dev.created) log.warn({ dir: dev.dir }, "no keys configured: generated DEV keys (never deposit to them)");
      this.keystoreSource = { dir: dev.dir, passwordFile: dev.passwordFile };
      this.keystoreKind = "dev";
    }
    await this.loadKeystoreDir();
    this.retirementTimer = setInterval(() => this.unloadRetired(), config.retirementCheckMs ?? network.secondsPerSlot * 1000);
    this.retirementTimer.unref();
  }

  /** (Re)load the keystore directory's keys, keeping keys from other sources. */
  private async loadKeystoreDir(): Promise<{ errors: number }> {
    if (!this.keystoreSource) return { errors: 0 };
    const started = Date.now();
    const loaded = await loadKeystores(this.keystoreSource);
    const { errors } = loaded;
    for (const e of errors) this.log.error({ file: e.file, code: e.code }, `keystore not loaded: ${e.message}`);
    const keys = await this.withoutRetired(loaded.keys, this.keystoreSource.dir);
    this.keys.replaceSource(
      this.keystoreKind,
      keys.map((k) => ({ pubkey: k.pubkey, secret: k.secret, origin: k.source })),
    );
    this.log.info({ keys: keys.length, errors: errors.length, ms: Date.now() - started }, "keystores loaded");
    return { errors: errors.length };
  }

  /**
   * Open (or, on first use, create) the sealed key store with the passphrase from `source`
   * (or take the store `opened` early) and load its keys. Until this succeeds the vault is
   * locked: nothing is signed.
   */
  async unlock(source = this.pendingUnlock ?? "prompt", read = readPassphrase, opened?: SealedKeyStore): Promise<number> {
    if (this.sealed) throw new VigilError("conflict", "ALREADY_UNLOCKED", "the key store was unlocked already");
    const exists = opened !== undefined || SealedKeyStore.exists(this.sealedFile);
    let sealed: SealedKeyStore;
    if (opened) sealed = opened;
    else {
      const passphrase = await read(source, {
        prompt: exists ? "Vigil key store passphrase: " : "New Vigil key store passphrase: ",
        confirm: !exists,
      });
      // No key store is created once shutting down (checked again after the key derivation).
      const notClosing = (): void => {
        if (this.closing) throw shuttingDown();
      };
      notClosing();
      sealed = exists ? await SealedKeyStore.open(this.sealedFile, passphrase) : await SealedKeyStore.create(this.sealedFile, passphrase, { beforeWrite: notClosing });
    }
    const info = new Map(sealed.list().map((k) => [k.pubkey, k]));
    // In turn with key operations: retirements are read and the keys loaded as one step.
    const load = this.keyOp(async () => {
      let unsealed;
      try {
        const all = sealed.unsealAll();
        const pubkeys = all.map((k) => k.pubkey);
        unsealed = await this.withoutRetired(all, this.sealedFile);
        this.leftOutAsRetired(pubkeys, unsealed);
      } catch (e) {
        if (!opened) sealed.close();
        throw e;
      }
      // Already listening: the policy is recorded as accepted before any key can sign (if that fails, the vault stays locked).
      try {
        if (this.serving) this.recordAcceptedPolicy();
      } catch (e) {
        for (const k of unsealed) k.secret.fill(0);
        if (!opened) sealed.close();
        throw e;
      }
      await this.keys.addAll(
        "sealed",
        unsealed.map(({ pubkey, secret }) => ({ pubkey, secret, origin: this.sealedFile, path: info.get(pubkey)?.path })),
      );
      this.sealed = sealed;
      this.pendingUnlock = null;
      this.locked = false;
      return unsealed.length;
    });
    const count = await load.catch((e: unknown) => {
      if (!opened && this.sealed !== sealed) sealed.close(); // shutting down before the keys were loaded
      throw e;
    });
    this.log.info({ keys: count, file: this.sealedFile }, exists ? "sealed key store unlocked" : "sealed key store created");
    this.acceptPolicyOnceStarted();
    return count;
  }

  /**
   * `entries` without those of retired validators (SlashingStore.retire), whose secrets are zeroed
   * here: a key deleted through the Keymanager API is not loaded again from a file that still holds it.
   */
  private async withoutRetired<T extends { pubkey: string; secret: Uint8Array }>(entries: T[], from: string): Promise<T[]> {
    let retired: Set<string>;
    try {
      retired = new Set((await this.store.getRetired()).map((r) => r.pubkey));
    } catch (e) {
      for (const k of entries) k.secret.fill(0);
      throw e;
    }
    const skipped = entries.filter((k) => retired.has(k.pubkey.toLowerCase()));
    if (skipped.length === 0) return entries;
    for (const k of skipped) k.secret.fill(0);
    this.log.warn(
      { keys: skipped.length, pubkeys: skipped.slice(0, 10).map((k) => k.pubkey), from },
      "retired keys not loaded: they were deleted through the Keymanager API. To use one again, import it through the Keymanager API, or lift its retirement (vigil slashing retired --lift <pubkey>)",
    );
    return entries.filter((k) => !retired.has(k.pubkey.toLowerCase()));
  }

  private lease: Lease | null = null;
  private leasePool: pg.Pool | null = null;

  /** Compete for the group's lease; every signing transaction is fenced by it. */
  private async joinHaGroup(config: VaultConfig): Promise<void> {
    this.leasePool = new pg.Pool({ connectionString: config.dbUrl, max: 2, connectionTimeoutMillis: 3000 });
    this.leasePool.on("error", () => undefined); // an idle client's error must not crash the vault
    this.lease = new Lease(this.leasePool, {
      group: config.haGroup!,
      schema: config.dbSchema,
      ttlMs: config.haLeaseMs,
      onChange: (active, fence) => this.log.warn({ group: config.haGroup, fence }, active ? "HA: this instance is now ACTIVE" : "HA: this instance is now STANDBY"),
    });
    await this.lease.start();
    (this.store as PostgresSlashingStore).setFence(this.lease.fence);
  }

  async sign(pubkey: string, body: unknown, client: string | null = null): Promise<SignOutcome> {
    const rawType = (body as { type?: unknown } | null)?.type;
    const audit: AuditRecord = {
      client,
      pubkey,
      type: typeof rawType === "string" ? rawType.slice(0, 64) : "INVALID",
      summary: "",
      signingRoot: null,
      ruleId: null,
      outcome: "refused",
    };
    let verdict: ReturnType<Authority["decide"]> | null = null;
    let audited = false;
    let result;
    try {
      if (this.locked) throw new VigilError("unavailable", "LOCKED", "the key store is locked: unlock Vigil to sign");
      if (this.lease && this.lease.role !== "active") throw notActive(this.lease.opts.group);
      result = await this.signer.sign(
        pubkey,
        body,
        async (req, root) => {
          Object.assign(audit, { type: req.type, summary: req.message.summary, signingRoot: hex(root) });
          verdict = this.authority.decide(req, root, pubkey, client, body);
          audit.ruleId = verdict.ruleId;
        },
        // Slashing protection allowed it (its commit may still be running): audit it while BLS signs.
        () => {
          const v = verdict as ReturnType<Authority["decide"]> | null;
          audit.outcome = v?.outcome ?? "allowed";
          if (v?.warnings.length) audit.message = v.warnings.map((w) => `${w.ruleId}: ${w.message}`).join("; ").slice(0, 500);
          audited = true;
          return this.authority.audit.record({ ...audit });
        },
      );
    } catch (e) {
      const err = e instanceof VigilError ? e : new VigilError("internal", "INTERNAL_ERROR", "internal error");
      if (err.code === "VALIDATOR_RETIRED") this.unloadRetired();
      if (audited) {
        // Audited as allowed, then the protection commit, signing or the audit write failed: no signature
        // left. Say so in the log too (best effort: a failed audit log already refuses everything).
        const failed: AuditRecord = { ...audit, outcome: "refused", code: err.code, message: `not signed after all: ${err.message}`.slice(0, 500) };
        await this.authority.audit.record(failed).catch(() => undefined);
        throw e;
      }
      audit.outcome = err.code === "APPROVAL_REQUIRED" ? "approval_required" : "refused";
      audit.ruleId = (err.details?.rule_id as string | undefined) ?? audit.ruleId;
      audit.code = err.code;
      audit.message = err.message.slice(0, 500);
      await this.authority.audit.record(audit); // the refusal is audited before it is answered
      throw e;
    }
    const v = verdict as ReturnType<Authority["decide"]> | null;
    // No signature has left before its decision was in the audit log (awaited inside signer.sign).
    return {
      type: result.type,
      signature: hex(result.signature),
      signingRoot: hex(result.signingRoot),
      summary: result.summary,
      ruleId: v?.ruleId,
      warnings: v?.warnings ?? [],
    };
  }

  private serving = false;
  private policyAccepted = false;

  async started(): Promise<void> {
    this.serving = true;
    this.acceptPolicyOnceStarted();
  }

  /** Listening and unlocked: the policy in force becomes the accepted one (policy.accepted.yaml, policy.history). */
  private acceptPolicyOnceStarted(): void {
    if (this.serving && !this.locked) this.recordAcceptedPolicy();
  }

  private recordAcceptedPolicy(): void {
    if (this.policyAccepted) return;
    try {
      this.authority.acceptPolicy();
    } catch (e) {
      this.locked = true; // fail closed: nothing is signed under a policy that is not on record
      this.log.error({ err: e }, "the policy in force could not be recorded as accepted");
      throw new VigilError(
        "unavailable",
        "POLICY_NOT_RECORDED",
        `the policy in force (${this.authority.policySource}) could not be recorded as accepted in the data directory: ${(e as Error).message}`,
      );
    }
    this.policyAccepted = true;
    this.log.info({ policy: this.authority.policySource }, "policy in force");
  }

  /** A check of held keys against the retirements is running. */
  private unloading = false;
  /** Asked for while one was running (it may have read the retirements before the newest): run once more. */
  private recheck = false;
  private retirementTimer: NodeJS.Timeout | null = null;
  /** The last retirement check failed (logged once until one succeeds). */
  private retirementCheckFailing = false;
  /** Retirements being lifted by this instance's key operations now, and a count of lifts begun or ended. */
  private liftsInFlight = 0;
  private liftChanges = 0;
  /** Keymanager DELETEs running now (each retires, then unloads its keys itself). */
  private deleting = 0;

  /** Lift retirements (an import); the retirement check holds off its unloads meanwhile. */
  private async lift(pubkeys: string[]): Promise<string[]> {
    this.liftsInFlight++;
    this.liftChanges++;
    try {
      return await this.store.unretire(pubkeys);
    } finally {
      this.liftsInFlight--;
      this.liftChanges++;
    }
  }

  /**
   * Every slot (and at once after a refusal as retired) the held keys are checked against the
   * retirements in the database: a validator retired while its key is held here (deleted through
   * the Keymanager API by another instance on the database) stops signing here altogether, exits,
   * RANDAO and sync committee messages included. The unload does not wait for key operations (an
   * import's key derivations take about 0.9 s per scrypt keystore): it is skipped and retried
   * shortly when one of them lifted a retirement while the retirements were read, or a DELETE
   * runs. Then, in turn with key operations, a key of the sealed store that this instance left out
   * or unloaded as retired loads again once its retirement is lifted (imported again elsewhere, `--lift`).
   */
  private unloadRetired(): void {
    if (this.closing) return;
    if (this.unloading) {
      this.recheck = true;
      return;
    }
    this.unloading = true;
    this.recheck = false;
    const run = async (): Promise<void> => {
      const changes = this.liftChanges;
      const quiet = (): boolean => this.liftsInFlight === 0 && this.deleting === 0 && this.liftChanges === changes;
      if (!quiet()) return this.retryCheckSoon();
      const retired = new Set((await this.store.getRetired()).map((r) => r.pubkey));
      if (this.closing) return;
      if (!quiet()) return this.retryCheckSoon();
      for (const pubkey of retired) {
        const source = this.keys.sourceOf(pubkey);
        if (this.keys.remove(pubkey)) {
          if (source === "sealed") this.retiredSealed.add(pubkey);
          this.log.warn({ pubkey }, "key unloaded: its validator is retired (its key was deleted through the Keymanager API, here or in another instance on the database); import it again to sign with it here");
        }
      }
      // Keys left out as retired whose retirement was lifted: loaded in turn with key operations (not awaited here: the next check does not wait for them).
      if ([...this.retiredSealed].some((pk) => !retired.has(pk))) this.loadLiftedSoon();
      if (this.retirementCheckFailing) this.log.info({}, "the check of held keys against retirements works again");
      this.retirementCheckFailing = false;
    };
    run()
      .catch((e) => {
        if (this.closing || this.retirementCheckFailing) return;
        this.retirementCheckFailing = true;
        this.log.error({ err: e }, "could not check the held keys against the retirements in the database; retried every slot (blocks and attestations of retired validators are refused regardless)");
      })
      .finally(() => {
        this.unloading = false;
        if (this.recheck) this.unloadRetired();
      });
  }

  private retryTimer: NodeJS.Timeout | null = null;
  private loadingLifted = false;

  /** In turn with key operations, from a fresh read of the retirements: load the keys left out as retired whose retirement was lifted. */
  private loadLiftedSoon(): void {
    if (this.loadingLifted || this.closing) return;
    this.loadingLifted = true;
    this.keyOp(async () => this.loadLifted(new Set((await this.store.getRetired()).map((r) => r.pubkey))))
      .catch((e) => {
        if (!this.closing) this.log.error({ err: e }, "could not load again the keys of the sealed store whose retirement was lifted; they load at the next start");
      })
      .finally(() => (this.loadingLifted = false));
  }

  private retryCheckSoon(): void {
    if (this.retryTimer || this.closing) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.unloadRetired();
    }, 50);
    this.retryTimer.unref();
  }

  async listApprovals(): Promise<unknown[]> {
    return this.authority.approvals.list(Date.now());
  }

  async getApproval(id: string): Promise<unknown> {
    const e = this.authority.approvals.get(id, Date.now());
    if (!e) throw new VigilError("not_found", "APPROVAL_NOT_FOUND", `no approval ${id}`);
    return e;
  }

  async approve(id: string, approver: string, signature: string): Promise<unknown> {
    return this.authority.approvals.approve(id, approver, signature, Date.now());
  }

  async reject(id: string, approver: string, signature: string): Promise<unknown> {
    return this.authority.approvals.reject(id, approver, signature, Date.now());
  }

  async listKeys(): Promise<KeyInfo[]> {
    return this.keys.list().map((k) => ({ ...k, readonly: k.source !== "sealed" }));
  }

  async status(): Promise<VaultStatus> {
    let dbUp = true;
    try {
      await this.store.getGenesisValidatorsRoot();
    } catch {
      dbUp = false;
    }
    const gvr = this.signer.genesisValidatorsRoot;
    return {
      locked: this.locked,
      keys: this.keys.size,
      dbUp,
      network: this.network.name,
      genesisValidatorsRoot: gvr ? hex(gvr) : null,
      role: this.lease ? this.lease.role : "single",
      fence: this.lease?.fencingNumber ?? null,
      clients: this.authority.policy.clients.size
        ? [...this.authority.policy.clients.values()].map((c) => ({ ...c }))
        : null,
      stats: this.stats(),
    };
  }

  private stats(): VaultStats {
    const { user, system } = process.cpuUsage();
    const mem = process.memoryUsage();
    const audit = this.authority.audit;
    const pool = this.pool;
    return {
      process: { cpuSeconds: (user + system) / 1e6, residentBytes: mem.rss, heapUsedBytes: mem.heapUsed },
      protection: { ...this.store.stats },
      bls: { threads: pool?.size ?? 0, batches: pool?.stats.batches ?? 0, signatures: pool?.stats.jobs ?? 0, queued: pool?.queued ?? 0 },
      audit: { records: audit.stats.records, syncs: audit.stats.syncs, anchorWrites: audit.stats.anchorWrites, headSeq: audit.head.seq },
      prune: { ...this.pruneStats },
    };
  }

  /**
   * Imports, deletions and reloads run one at a time, in the order they arrive: each decides from
   * the keys held and the retirements recorded when it starts (an import that found a key held and
   * lifted its retirement must not interleave with a DELETE that retires it).
   */
  private readonly keyOps = new Serial();
  /** Set by close(): no new key operation starts; those already asked for finish before the stores close. */
  private closing = false;

  private keyOp<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(shuttingDown());
    return this.keyOps.run(fn);
  }

  /**
   * Keys of the sealed store this instance left out (at unlock) or unloaded because their validator
   * was retired: POST /reload loads those whose retirement was lifted since. Only those: a key of
   * the store that is not held for another reason (its keystore-directory copy was held instead,
   * then removed) stays out until the next start.
   */
  private readonly retiredSealed = new Set<string>();

  private leftOutAsRetired(pubkeys: string[], loaded: { pubkey: string }[]): void {
    const kept = new Set(loaded.map((k) => k.pubkey.toLowerCase()));
    for (const pk of pubkeys) if (!kept.has(pk.toLowerCase())) this.retiredSealed.add(pk.toLowerCase());
  }

  /** POST /reload: the keystore directory again, and the sealed keys left out as retired whose retirement was lifted since. */
  reload(): Promise<{ errors: number }> {
    return this.keyOp(async () => {
      const dir = await this.loadKeystoreDir();
      await this.loadLifted(new Set((await this.store.getRetired()).map((r) => r.pubkey)));
      return dir;
    });
  }

  /** Load the sealed keys left out or unloaded as retired whose validator is not in `retired` any more. Runs in turn with key operations. */
  private async loadLifted(retired: Set<string>): Promise<void> {
    const sealed = this.sealed;
    if (!sealed || this.locked) return;
    for (const pk of this.retiredSealed) if (!sealed.has(pk) || this.keys.has(pk)) this.retiredSealed.delete(pk); // deleted or held again since
    const info = sealed.list().filter((k) => this.retiredSealed.has(k.pubkey) && !retired.has(k.pubkey));
    if (info.length === 0) return;
    const entries: { pubkey: string; secret: Uint8Array; path?: string; origin: string }[] = [];
    let added: number;
    try {
      for (const k of info) entries.push({ pubkey: k.pubkey, secret: sealed.unseal(k.pubkey), path: k.path, origin: this.sealedFile });
      added = await this.keys.addAll("sealed", entries);
    } catch (e) {
      for (const k of entries) k.secret.fill(0);
      throw e;
    } finally {
      for (const k of info) this.retiredSealed.delete(k.pubkey); // on a failure too: not tried every slot; they load at the next start
    }
    if (added > 0) this.log.warn({ keys: added, pubkeys: info.slice(0, 10).map((k) => k.pubkey), file: this.sealedFile }, "keys of the sealed key store loaded again: their validators' retirement was lifted");
  }

  importKeystores(keystores: string[], passwords: string[], slashingProtection?: string): Promise<ImportStatus[]> {
    return this.keyOp(() => this.importNow(keystores, passwords, slashingProtection));
  }

  deleteKeys(pubkeys: string[]): Promise<{ statuses: DeleteStatus[]; slashingProtection: string }> {
    return this.keyOp(async () => {
      this.deleting++;
      try {
        return await this.deleteNow(pubkeys);
      } finally {
        this.deleting--;
      }
    });
  }

  private async importNow(keystores: string[], passwords: string[], slashingProtection?: string): Promise<ImportStatus[]> {
    if (keystores.length !== passwords.length) {
      throw new VigilError("bad_request", "INVALID_REQUEST", "keystores and passwords must have the same length");
    }
    if (this.locked) throw new VigilError("unavailable", "LOCKED", "the key store is locked: unlock Vigil first");
    const sealed = this.sealed;
    if (!sealed) {
      return keystores.map(() => ({
        status: "error" as const,
        message: "no sealed key store to keep imported keys in: start Vigil with --unlock",
      }));
    }
    // Keymanager API: the history comes in before any imported key can sign.
    if (slashingProtection !== undefined) {
      const source = interchangeSource(slashingProtection); // entries are checked as they are imported: all or nothing
      await this.store.importInterchange(source);
    }
    const out: ImportStatus[] = [];
    for (const [i, text] of keystores.entries()) {
      try {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          throw new VigilError("bad_request", "INVALID_KEYSTORE", "keystore is not JSON");
        }
        const keystore = parseKeystore(json);
        const secret = await decryptKeystore(keystore, passwords[i]);
        const pubkey = pubkeyFromSecret(secret);
        if (this.keys.has(pubkey)) {
          secret.fill(0);
          // Held here, but retired by another instance on the database: importing it here means it is to sign here.
          if ((await this.lift([pubkey])).length > 0) this.log.warn({ pubkey }, "retirement lifted: the key was imported again through the Keymanager API");
          out.push({ status: "duplicate" });
          continue;
        }
        try {
          await sealed.add([{ secret, path: keystore.path || undefined }]);
          // A key deleted here earlier (retired) signs again once imported again, with the history this request brought.
          const lifted = await this.lift([pubkey]);
          if (lifted.length > 0) this.log.warn({ pubkey }, "retirement lifted: the key was imported again through the Keymanager API");
        } catch (e) {
          secret.fill(0);
          throw e;
        }
        this.keys.add("sealed", { pubkey, secret, origin: this.sealedFile, path: keystore.path || undefined });
        out.push({ status: "imported" });
      } catch (e) {
        out.push({ status: "error", message: e instanceof VigilError ? `${e.code}: ${e.message}` : "internal error; see the vault log" });
        if (!(e instanceof VigilError)) this.log.error({ err: e }, "keystore import failed");
      }
    }
    return out;
  }

  private async deleteNow(pubkeys: string[]): Promise<{ statuses: DeleteStatus[]; slashingProtection: string }> {
    // Locked, the sealed keys are not loaded: a DELETE would answer not_active, retire nothing, and
    // the key would sign here again once unlocked.
    if (this.locked) throw new VigilError("unavailable", "LOCKED", "the key store is locked: unlock Vigil first");
    const statuses: DeleteStatus[] = [];
    // Retire them first, all in one transaction (SlashingStore.retire): if the database cannot record it, nothing is deleted.
    // A key in the store but not loaded (its validator was retired, e.g. by another instance) is deleted from the store too.
    const inStore = new Set(this.sealed?.list().map((k) => k.pubkey) ?? []);
    const sealedHere = (pk: string): boolean => this.keys.sourceOf(pk) === "sealed" || (!this.keys.has(pk) && inStore.has(pk));
    const retiring = [...new Set(pubkeys.map((p) => p.toLowerCase()))].filter(sealedHere);
    if (retiring.length > 0) await this.store.retire(retiring);
    const storeOnly = new Set<number>(); // entries removed from the store that were not signing here
    const removed = new Set<string>(); // a key listed twice is removed once; its other entries say not_found / not_active
    for (const raw of pubkeys) {
      const pubkey = raw.toLowerCase();
      const source = this.keys.sourceOf(pubkey);
      if (source && source !== "sealed") {
        const also = inStore.has(pubkey) ? `, then DELETE it again: it is also in ${this.sealedFile}, from which it would load at the next start` : "";
        statuses.push({ status: "error", message: `key loaded from a keystore directory (${source}): remove its file and POST /reload${also}` });
      } else if (removed.has(pubkey)) {
        statuses.push({ status: "not_found" });
      } else if (source === "sealed") {
        removed.add(pubkey);
        this.keys.remove(pubkey); // from here on nothing is signed with it
        try {
          await this.sealed!.remove([pubkey]);
          statuses.push({ status: "deleted" });
        } catch (e) {
          // It no longer signs here, but it is still in the store file: say so.
          statuses.push({ status: "error", message: `stopped signing, but not removed from ${this.sealedFile}: ${(e as Error).message}` });
        }
      } else if (inStore.has(pubkey)) {
        // Not signing here (retired and unloaded): removed from the store; Keymanager API: not active, history returned.
        removed.add(pubkey);
        try {
          const [r] = await this.sealed!.remove([pubkey]);
          statuses.push({ status: r.status === "deleted" ? "not_active" : "not_found" }); // not_active if its history is returned (below)
          if (r.status === "deleted") storeOnly.add(statuses.length - 1);
        } catch (e) {
          statuses.push({ status: "error", message: `not removed from ${this.sealedFile}: ${(e as Error).message}` });
        }
      } else {
        statuses.push({ status: "not_found" });
      }
    }
    const gvr = await this.store.getGenesisValidatorsRoot();
    // Keymanager API: history only of keys answered `deleted` or `not_active`, never of one that
    // goes on signing here (a key from a keystore directory), whose exported history would go stale.
    const candidates = pubkeys.map((p) => p.toLowerCase()).filter((_, i) => ["deleted", "not_active", "not_found"].includes(statuses[i].status));
    // EIP-3076: with no genesis validators root bound yet, nothing was ever signed.
    const doc =
      gvr && candidates.length > 0
        ? await this.store.exportInterchange(candidates)
        : { metadata: { interchange_format_version: "5" as const, genesis_validators_root: hex(gvr ?? new Uint8Array(32)) }, data: [] };
    const withHistory = new Set(doc.data.map((d) => d.pubkey));
    pubkeys.forEach((p, i) => {
      if (statuses[i].status === "not_found" && withHistory.has(p.toLowerCase())) statuses[i] = { status: "not_active" };
      // Keymanager API: not_active means history returned; removed from the store without any: deleted.
      if (storeOnly.has(i) && !withHistory.has(p.toLowerCase())) statuses[i] = { status: "deleted" };
    });
    return { statuses, slashingProtection: serializeInterchange(doc) };
  }

  /** Sign on `threads` worker threads instead of the main thread. */
  useSigningThreads(threads: number): void {
    if (threads > 0) this.keys.attachPool((this.pool = new SignPool(threads)));
  }

  private pool: SignPool | null = null;

  private pruneTimer: NodeJS.Timeout | null = null;
  private readonly pruneStats: VaultStats["prune"] = { succeeded: 0, failed: 0, recordsDeleted: 0, lastSuccessSeconds: null };
  private pruning: Promise<void> | null = null;

  /** Prune now and every `intervalMs` (keeping `keepEpochs` epochs and as many epochs' slots); failures are logged and retried next time. */
  startPruning(keepEpochs: number, slotsPerEpoch: number, intervalMs = PRUNE_INTERVAL_MS): void {
    const run = (): void => {
      if (this.pruning) return;
      // In an HA group the instances share one database: only the lease holder prunes it.
      if (this.lease && this.lease.role !== "active") {
        this.log.info({ keepEpochs }, "standby: pruning the shared slashing-protection history is left to the active instance");
        return;
      }
      const started = Date.now();
      this.pruning = this.store
        .prune({ epochs: keepEpochs, slots: keepEpochs * slotsPerEpoch })
        .then(
          (s) => {
            this.pruneStats.succeeded++;
            this.pruneStats.recordsDeleted += s.blocksDeleted + s.attestationsDeleted;
            this.pruneStats.lastSuccessSeconds = Date.now() / 1000;
            this.log.info({ ...s, kept: s.kept.length, keepEpochs, ms: Date.now() - started }, "pruned the slashing-protection history");
            for (const pk of s.kept) this.log.warn({ pubkey: pk }, "kept every attestation of this validator: a kept vote surrounds an older one");
          },
          (e: unknown) => {
            this.pruneStats.failed++;
            this.log.warn({ err: e instanceof Error ? e.message : String(e) }, "pruning the slashing-protection history failed (retried at the next interval)");
          },
        )
        .finally(() => (this.pruning = null));
    };
    run();
    this.pruneTimer = setInterval(run, intervalMs);
    this.pruneTimer.unref();
  }

  /** Close everything, each part even if another fails (the first failure is thrown at the end). */
  async close(): Promise<void> {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
    if (this.retirementTimer) clearInterval(this.retirementTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.closing = true;
    const steps: (() => unknown)[] = [
      () => this.keyOps.run(async () => undefined), // key operations already asked for finish first
      () => this.pruning,
      () => this.lease?.stop(),
      () => this.leasePool?.end(),
      () => this.sealed?.close(),
      () => this.store.close(),
      () => this.pool?.close(),
      () => this.authority.close(),
    ];
    let failure: unknown = null;
    for (const step of steps) {
      try {
        await step();
      } catch (e) {
        failure ??= e;
      }
    }
    if (failure !== null) throw failure;
  }
}
