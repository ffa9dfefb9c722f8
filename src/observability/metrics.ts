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

  /**
   * Consumer-group gauges and counters, read from the groups at scrape time: one series per
   * tenant and group (groups are few; events and keys never become labels).
   */
  watchGroups(groups: () => Iterable<GroupSample>): void {
    const gauge = (name: string, help: string, pick: (g: GroupSample) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ["tenant", "group"] as const,
        registers: [this.registry],
        collect() {
          this.reset();
          for (const g of groups()) this.set({ tenant: g.tenant, group: g.group }, pick(g));
        },
      });
    };
    const counter = (name: string, help: string, pick: (g: GroupSample) => number): void => {
      new Counter({
        name,
        help,
        labelNames: ["tenant", "group"] as const,
        registers: [this.registry],
        collect() {
          this.reset();
          for (const g of groups()) this.inc({ tenant: g.tenant, group: g.group }, pick(g));
        },
      });
    };
    gauge("baton_group_pending_events", "Events read by the group and not done yet (ready, in flight, retrying, waiting behind their key).", (g) => g.pending);
    gauge("baton_group_in_flight_events", "Deliveries held by members and not yet settled.", (g) => g.inFlight);
    gauge("baton_group_delayed_events", "Events waiting for their retry (backoff) or for the dead-letter write.", (g) => g.delayed);
    gauge("baton_group_blocked_keys", "Keys of an orderedByKey group whose next event waits behind a retrying one.", (g) => g.blockedKeys);
    gauge("baton_group_oldest_pending_age_seconds", "Age of the oldest event the group has not finished (0 when none): alert on this, not on depth.", (g) => g.oldestPendingAgeS);
    counter("baton_group_deliveries_total", "Deliveries handed to members since this node started (redeliveries included).", (g) => g.delivered);
    counter("baton_group_redeliveries_total", "Deliveries after the first attempt (nack, lease expiry).", (g) => g.redelivered);
    counter("baton_group_acks_total", "Deliveries acked.", (g) => g.acked);
    counter("baton_group_lease_expiries_total", "Deliveries whose lease ended without an ack.", (g) => g.leaseExpired);
    counter("baton_group_dead_letters_total", "Events moved to the group's dead-letter topic.", (g) => g.deadLettered);
  }

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

/** What the metrics read from one consumer group. */
export interface GroupSample {
  readonly tenant: string;
  readonly group: string;
  readonly pending: number;
  readonly inFlight: number;
  readonly delayed: number;
  readonly blockedKeys: number;
  readonly oldestPendingAgeS: number;
  readonly delivered: number;
  readonly redelivered: number;
  readonly acked: number;
  readonly leaseExpired: number;
  readonly deadLettered: number;
}
