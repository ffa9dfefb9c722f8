/**
 * @module observability/metrics
 * Every metric Baton exports, declared in one place. Names follow
 * `baton_<subsystem>_<name>_<unit>`. One registry per Baton instance, so several instances in
 * one process (tests) do not collide.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export class Metrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: "baton_http_requests_total",
    help: "HTTP requests answered, by route and status code.",
    labelNames: ["route", "status"] as const,
    registers: [this.registry],
  });

  readonly httpErrors = new Counter({
    name: "baton_http_errors_total",
    help: "HTTP requests answered with an error, by tenant (empty before authentication) and error code.",
    labelNames: ["tenant", "code"] as const,
    registers: [this.registry],
  });

  readonly appendLatency = new Histogram({
    name: "baton_streams_append_duration_seconds",
    help: "Time from accepting an append to its durable acknowledgement.",
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });

  readonly appendedEvents = new Counter({
    name: "baton_streams_appended_events_total",
    help: "Events durably appended (duplicates excluded).",
    registers: [this.registry],
  });

  readonly duplicateEvents = new Counter({
    name: "baton_streams_duplicate_events_total",
    help: "Publishes answered from the idempotency window instead of being stored again.",
    registers: [this.registry],
  });

  readonly droppedEphemeral = new Counter({
    name: "baton_ws_dropped_ephemeral_total",
    help: "Ephemeral publications not sent because the socket's buffer was full.",
    registers: [this.registry],
  });

  readonly pendingEvents: Gauge;
  readonly connections: Gauge;

  constructor(pending: () => number, connections: () => number) {
    this.connections = new Gauge({
      name: "baton_ws_connections",
      help: "Open WebSocket connections on this node.",
      registers: [this.registry],
      collect() {
        this.set(connections());
      },
    });
    this.pendingEvents = new Gauge({
      name: "baton_streams_pending_events",
      help: "Events accepted but not yet durable (bounded; beyond the bound publishes get OVERLOADED).",
      registers: [this.registry],
      collect() {
        this.set(pending());
      },
    });
    collectDefaultMetrics({ register: this.registry, prefix: "baton_process_" });
  }
}
