/** Prometheus metrics (GET /metrics). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

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
  readonly haActive = new Gauge({
    name: "vigil_ha_active",
    help: "1 if this instance may sign (no HA group, or it holds the group's lease), 0 if it is a standby",
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "vigil_" });
  }
}
