/**
 * @module streams/names
 * Tenant and topic names, and the topic patterns that tokens grant.
 *
 * A topic name is one or more dot-separated tokens (`room.42`, `user:alice`); a pattern may use
 * NATS-style wildcards: `*` matches exactly one token, `>` (last token only) one or more.
 * Personal channels (`#alice`) are matched by `#*`, `>` or their own name.
 */
import { BatonError } from "../errors/baton-error.ts";

const TOPIC_TOKEN = /^[A-Za-z0-9_\-:@=+]+$/;
const TENANT = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const MAX_TOPIC_LENGTH = 200;

export function isValidTopicName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_TOPIC_LENGTH) return false;
  for (const token of name.split(".")) if (!TOPIC_TOKEN.test(token)) return false;
  return true;
}

export function assertTopicName(name: string): string {
  if (!isValidTopicName(name)) {
    throw new BatonError(
      "INVALID_TOPIC_NAME",
      `invalid topic name ${JSON.stringify(name.slice(0, 240))}: use 1-${MAX_TOPIC_LENGTH} characters, dot-separated tokens of [A-Za-z0-9_-:@=+]`,
    );
  }
  return name;
}

/**
 * A user's personal channel: `#` + the token subject (`#alice`). Baton subscribes every
 * connection of a user to it server-side; it is stored like any topic under that name.
 */
const PERSONAL = /^#[A-Za-z0-9_\-:@=+.%]{1,199}$/;

/**
 * `#` + the subject, with characters outside [A-Za-z0-9_-:@=+.] percent-encoded (`auth0|5f7c`
 * becomes `#auth0%7C5f7c`). Undefined only when the result is longer than 200 characters.
 */
export function personalChannel(subject: string): string | undefined {
  const name = `#${subject.replace(/[^A-Za-z0-9_\-:@=+.]/gu, (c) => encodeURIComponent(c).replace(/[!'()*]/g, (x) => `%${x.charCodeAt(0).toString(16).toUpperCase()}`))}`;
  return PERSONAL.test(name) ? name : undefined;
}

export function isPersonalChannel(name: string): boolean {
  return PERSONAL.test(name);
}

export function isValidTenant(name: string): boolean {
  return TENANT.test(name);
}

export function isValidPattern(pattern: string): boolean {
  if (pattern === "#*" || isPersonalChannel(pattern)) return true;
  if (pattern.length === 0 || pattern.length > MAX_TOPIC_LENGTH) return false;
  const tokens = pattern.split(".");
  return tokens.every(
    (t, i) => t === "*" || (t === ">" && i === tokens.length - 1) || TOPIC_TOKEN.test(t),
  );
}

/** Whether `topic` is matched by `pattern` (`*` one token, trailing `>` one or more). */
export function matchesPattern(pattern: string, topic: string): boolean {
  if (pattern === topic) return true;
  // Personal channels are matched only by `#*` (any user), `>` or their exact name.
  if (topic.startsWith("#")) return pattern === "#*" || pattern === ">";
  return matchesTokens(pattern, topic);
}

/** Dot-token wildcard matching without the topic rules: `*` one token, trailing `>` the rest. */
export function matchesTokens(pattern: string, name: string): boolean {
  if (pattern === name) return true;
  const p = pattern.split(".");
  const t = name.split(".");
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === ">") return i === p.length - 1 && t.length > i;
    if (i >= t.length) return false;
    if (token !== "*" && token !== t[i]) return false;
  }
  return p.length === t.length;
}

export function matchesAny(patterns: readonly string[], topic: string): boolean {
  for (const p of patterns) if (matchesPattern(p, topic)) return true;
  return false;
}

/**
 * A `coordinate` claim's pattern: slot resource names and effect keys it grants, in the
 * dot-token wildcard grammar of topic patterns (`model.*`, `summarize.>`, `>`), but over any
 * characters other than control characters, since effect keys are free-form.
 */
export function isValidCoordinationPattern(pattern: string): boolean {
  if (pattern.length === 0 || pattern.length > 400) return false;
  for (let i = 0; i < pattern.length; i++) if (pattern.charCodeAt(i) < 0x20) return false;
  const tokens = pattern.split(".");
  return tokens.every((t, i) => t.length > 0 && (t !== ">" || i === tokens.length - 1));
}
