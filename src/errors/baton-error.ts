/**
 * @module errors/baton-error
 * The one error type that crosses layers. Anything else that reaches the edge is a bug and is
 * answered as INTERNAL.
 */
import { ErrorCodes, type ErrorCode } from "./registry.ts";

const brand = Symbol.for("baton.error");

export interface BatonErrorOptions extends ErrorOptions {
  /** Suggested wait before a retry, for retryable codes. */
  retryAfterMs?: number;
  /** Structured, safe-to-show details (e.g. the offending field). */
  details?: Record<string, unknown>;
}

export class BatonError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: BatonErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "BatonError";
    this.code = code;
    this.status = ErrorCodes[code].status;
    this.retryable = ErrorCodes[code].retryable;
    this.retryAfterMs = options.retryAfterMs;
    this.details = options.details;
    Object.defineProperty(this, brand, { value: true });
  }

  /** The JSON body the HTTP API answers with. */
  toJSON(): { error: { code: ErrorCode; message: string; details?: Record<string, unknown> } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

/** True for a BatonError from any copy of this module (bundled SDKs included). */
export function isBatonError(value: unknown): value is BatonError {
  return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[brand] === true;
}
