/**
 * @module streams/groups/retry-policy
 * When a failed delivery is tried again. Exponential backoff with full jitter (a uniformly random
 * delay between 0 and the capped exponential step), so that a burst of failures - a model
 * provider's 429s, a deploy - spreads its retries out instead of returning as a synchronized
 * storm. JetStream's BackOff and Temporal's retry policy have no jitter; BullMQ's is optional.
 */

export interface RetryPolicy {
  /** Deliveries in all, the first included; after the last failure the event is dead-lettered. */
  readonly maxAttempts: number;
  /** Upper bound of the first retry's delay, ms. */
  readonly initialBackoffMs: number;
  /** No retry waits longer than this, ms. */
  readonly maxBackoffMs: number;
  /** Growth of the bound per failed attempt. */
  readonly multiplier: number;
}

/**
 * The delay before the attempt after `failedAttempts` failures (1 for the first retry):
 * uniform in [0, min(maxBackoffMs, initialBackoffMs * multiplier^(failedAttempts-1))].
 * `random` is injectable so tests can pin it.
 */
export function backoffDelay(policy: RetryPolicy, failedAttempts: number, random: () => number = Math.random): number {
  const exponent = Math.max(0, failedAttempts - 1);
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** exponent);
  return Math.floor(random() * ceiling);
}

/** Whether another attempt is allowed after `deliveries` deliveries have failed. */
export function hasAttemptsLeft(policy: RetryPolicy, deliveries: number): boolean {
  return deliveries < policy.maxAttempts;
}
