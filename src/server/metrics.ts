/** Prometheus metrics (GET /metrics). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { VaultStats } from "../vault/api.js";

/** The vault's counters, exported as Prometheus counters (name, help, where in VaultStats). */
const VAULT_COUNTERS: [string, string, (s: VaultStats) => number][] = [
  ["vigil_vault_cpu_seconds_total", "CPU time (user + system) of the key vault process, its signing threads included", (s) => s.process.cpuSeconds],
  ["vigil_protection_decisions_total", "Slashing-protection check-and-record decisions (allowed or refused)", (s) => s.protection.decisions],
  ["vigil_protection_group_commits_total", "Slashing-protection transactions; decisions made in the same turn share one", (s) => s.protection.groupCommits],
  ["vigil_protection_wal_syncs_total", "fdatasyncs of the SQLite WAL, each covering every commit before it (0 with PostgreSQL)", (s) => s.protection.walSyncs],
  ["vigil_bls_batches_total", "Batches of signing jobs handed to the BLS signing threads", (s) => s.bls.batches],
  ["vigil_bls_signatures_total", "BLS signing jobs handed to the signing threads", (s) => s.bls.signatures],
  ["vigil_audit_records_total", "Entries appended to the audit log", (s) => s.audit.records],
  ["vigil_audit_syncs_total", "fdatasyncs of the audit log (entries of one turn share one)", (s) => s.audit.syncs],
  ["vigil_audit_anchor_writes_total", "Rewrites of the audit log's head anchor (audit.head)", (s) => s.audit.anchorWrites],
  ["vigil_prune_runs_succeeded_total", "Prunes of the slashing-protection history that succeeded", (s) => s.prune.succeeded],
  ["vigil_prune_runs_failed_total", "Prunes of the slashing-protection history that failed (retried at the next interval)", (s) => s.prune.failed],
  ["vigil_prune_records_deleted_total", "Slashing-protection records deleted by pruning", (s) => s.prune.recordsDeleted],
];

/** The vault's gauges (name, help, where in VaultStats; null: no value). */
const VAULT_GAUGES: [string, string, (s: VaultStats) => number | null][] = [
  ["vigil_vault_resident_memory_bytes", "Resident memory of the key vault process", (s) => s.process.residentBytes],
  ["vigil_vault_heap_used_bytes", "V8 heap in use in the key vault process's main thread", (s) => s.process.heapUsedBytes],
  ["vigil_bls_threads", "BLS signing threads in the key vault process (0: it signs on its main thread)", (s) => s.bls.threads],
  ["vigil_bls_queued_jobs", "Signing jobs waiting for a BLS thread to go idle", (s) => s.bls.queued],
  ["vigil_audit_head_seq", "Number of the last entry durably in the audit log (-1: empty)", (s) => s.audit.headSeq],
  ["vigil_prune_last_success_timestamp_seconds", "When the last successful prune ended (Unix time)", (s) => s.prune.lastSuccessSeconds],
];

export class Metrics {
  readonly registry = new Registry();
  readonly signRequests = new Counter({
    name: "vigil_sign_requests_total",
    help: "Sign requests by type and outcome (signed, or the refusal code)",
    labelNames: ["type", "outcome"] as const,
    registers: [this.registry],
  });
  readonly signDuration = new Histogram({
    name: "vigil_sign_duration_seconds",
    help: "Time from request to signature, including the durable slashing-protection commit",
    labelNames: ["type"] as const,
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly policyDecisions = new Counter({
    name: "vigil_policy_decisions_total",
    help: "Policy refusals, approvals required and warnings, by rule id",
    labelNames: ["rule", "outcome"] as const,
    registers: [this.registry],
  });
  readonly keysLoaded = new Gauge({ name: "vigil_keys_loaded", help: "Validator keys loaded", registers: [this.registry] });
  /** Run before each scrape: gauges whose value is kept elsewhere, set then rather than on every change. */
  private readonly scrapeHooks: (() => void)[] = [];
  onScrape(fn: () => void): void {
    this.scrapeHooks.push(fn);
  }
  readonly signBytesInFlight: Gauge = new Gauge({
    name: "vigil_sign_body_bytes_in_flight",
    help: "Bytes of sign-request bodies being read or handled (declared Content-Length); at 64 MiB new sign requests get 503 VAULT_BUSY",
    registers: [this.registry],
    collect: () => {
      for (const f of this.scrapeHooks) f();
    },
  });
  readonly haActive = new Gauge({
    name: "vigil_ha_active",
    help: "1 if this instance may sign (no HA group, or it holds the group's lease), 0 if it is a standby",
    registers: [this.registry],
  });

  private readonly vaultCounters = VAULT_COUNTERS.map(([name, help, read]) => ({
    counter: new Counter({ name, help, registers: [this.registry] }),
    read,
    last: 0,
  }));
  private readonly vaultGauges = VAULT_GAUGES.map(([name, help, read]) => ({ gauge: new Gauge({ name, help, registers: [this.registry] }), read }));

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "vigil_" });
  }

  /** Bring the vault's metrics up to `stats` (read from the vault at each scrape). */
  observeVault(stats: VaultStats): void {
    for (const c of this.vaultCounters) {
      const v = c.read(stats);
      if (v >= c.last) c.counter.inc(v - c.last);
      else {
        c.counter.reset(); // a new vault process counts from zero
        c.counter.inc(v);
      }
      c.last = v;
    }
    for (const g of this.vaultGauges) {
      const v = g.read(stats);
      if (v === null) g.gauge.reset();
      else g.gauge.set(v);
    }
  }
}
