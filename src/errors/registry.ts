/**
 * @module errors/registry
 * Every error code Baton can answer with, in one place. The HTTP API, the socket protocol, the
 * SDKs and the CLI all speak these codes. A code, once published, is never reused for another
 * meaning; `docs/errors.md` lists the same codes and a test keeps the two in step.
 */

export interface ErrorSpec {
  /** HTTP status used when this error is answered over HTTP. */
  readonly status: number;
  /** Whether the same request may succeed if simply retried later. */
  readonly retryable: boolean;
  /** One line that tells the caller what to change. */
  readonly fix: string;
}

export const ErrorCodes = {
  INVALID_JSON: { status: 400, retryable: false, fix: "Send a syntactically valid JSON body." },
  VALIDATION_FAILED: {
    status: 400,
    retryable: false,
    fix: "Correct the field named in the message; see docs/events.md for the event shape.",
  },
  INVALID_TOPIC_NAME: {
    status: 400,
    retryable: false,
    fix: "Use 1-200 characters from [A-Za-z0-9_-:@=+] in dot-separated tokens (see docs/events.md).",
  },
  INVALID_POSITION: {
    status: 400,
    retryable: false,
    fix: "Give `from` as a non-negative integer sequence or `since` as an ISO-8601 time, not both.",
  },
  PAYLOAD_TOO_LARGE: {
    status: 413,
    retryable: false,
    fix: "Send a smaller body or raise BATON_MAX_BODY_BYTES.",
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    retryable: false,
    fix: "Send application/json, application/cloudevents+json, application/cloudevents-batch+json, or a CloudEvent in binary mode (ce-* headers).",
  },
  UNAUTHENTICATED: {
    status: 401,
    retryable: false,
    fix: "Send `Authorization: Bearer <JWT>` (mint one with `baton token create`).",
  },
  TOKEN_INVALID: {
    status: 401,
    retryable: false,
    fix: "Use a token signed with this server's secret or JWKS, with `tenant` and `sub` claims.",
  },
  TOKEN_EXPIRED: { status: 401, retryable: false, fix: "Obtain a fresh token; this one is past its `exp`." },
  FORBIDDEN: {
    status: 403,
    retryable: false,
    fix: "Use a token whose publish/subscribe patterns (or admin claim) cover this topic and action, or whose coordinate patterns cover this slot resource or effect key.",
  },
  TOPIC_NOT_FOUND: {
    status: 404,
    retryable: false,
    fix: "Create the topic first (POST /v1/topics) or enable auto-creation (BATON_AUTO_CREATE_TOPICS=true).",
  },
  TOPIC_EXISTS: { status: 409, retryable: false, fix: "Pick another name or use the existing topic." },
  NOT_FOUND: { status: 404, retryable: false, fix: "Check the path; the HTTP API is described in docs/http-api.md." },
  METHOD_NOT_ALLOWED: { status: 405, retryable: false, fix: "Use one of the methods listed in the Allow header." },
  OVERLOADED: {
    status: 503,
    retryable: true,
    fix: "Back off and retry after the delay given in Retry-After; the write queue is full.",
  },
  UNAVAILABLE: {
    status: 503,
    retryable: true,
    fix: "The node is starting or draining; retry, possibly against another node.",
  },
  CONFLICT: {
    status: 409,
    retryable: true,
    fix: "Someone else changed this first; read the current state and try again.",
  },
  GROUP_NOT_FOUND: { status: 404, retryable: false, fix: "Create the consumer group first (POST /v1/groups) or check its name." },
  DEAD_LETTER_NOT_FOUND: { status: 404, retryable: false, fix: "List the group's dead letters (GET /v1/groups/{group}/dead-letters) for the sequences that exist." },
  EFFECT_NOT_FOUND: { status: 404, retryable: false, fix: "The effect was never run, was abandoned, or its outcome passed its ttl; begin it to run it." },
  GROUP_EXISTS: { status: 409, retryable: false, fix: "Pick another group name or use the existing group." },
  DELIVERY_NOT_HELD: {
    status: 409,
    retryable: false,
    fix: "This delivery token is no longer in flight (already acked, lease expired and redelivered, or never issued); do not act on it again.",
  },
  SLOT_UNAVAILABLE: {
    status: 409,
    retryable: true,
    fix: "Every slot of this resource is held; wait (the `wait` field) or retry after Retry-After.",
  },
  RESERVATION_NOT_HELD: {
    status: 409,
    retryable: false,
    fix: "This reservation or effect claim expired or was released; reserve or claim again.",
  },
  EFFECT_IN_PROGRESS: {
    status: 409,
    retryable: true,
    fix: "Another worker holds the claim on this effect key; retry after its lease (Retry-After) or wait for its outcome.",
  },
  REQUEST_ABORTED: {
    status: 400,
    retryable: true,
    fix: "The client closed the connection before its request was read; nothing was done. Send it again.",
  },
  INTERNAL: {
    status: 500,
    retryable: true,
    fix: "Retry; if it persists, report it with the trace id from the server log.",
  },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ErrorCodes;
