/**
 * @module edge/http/router
 * A small method + path table. Paths are literal segments or `:param` segments; params are
 * URL-decoded. Unknown paths answer NOT_FOUND, known paths with another method
 * METHOD_NOT_ALLOWED (with an Allow header).
 */
import type { IncomingMessage, ServerResponse } from "node:http";

export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** Decoded query parameters. */
  readonly query: URLSearchParams;
  readonly params: Readonly<Record<string, string>>;
  /** Route pattern, for metrics labels. */
  readonly route: string;
}

export type Handler = (ctx: RequestContext) => Promise<void> | void;

interface Route {
  readonly pattern: string;
  readonly segments: readonly string[];
  readonly handlers: Map<string, Handler>;
}

export type Match =
  | { kind: "found"; handler: Handler; params: Record<string, string>; route: string }
  | { kind: "method-not-allowed"; allow: string[]; route: string }
  | { kind: "not-found" };

export class Router {
  private readonly routes: Route[] = [];

  on(method: string, pattern: string, handler: Handler): this {
    let route = this.routes.find((r) => r.pattern === pattern);
    if (route === undefined) {
      route = { pattern, segments: pattern.split("/").filter(Boolean), handlers: new Map() };
      this.routes.push(route);
    }
    route.handlers.set(method, handler);
    return this;
  }

  match(method: string, pathname: string): Match {
    const parts = pathname.split("/").filter(Boolean);
    for (const route of this.routes) {
      const params = matchSegments(route.segments, parts);
      if (params === undefined) continue;
      const handler = route.handlers.get(method) ?? (method === "HEAD" ? route.handlers.get("GET") : undefined);
      if (handler === undefined) return { kind: "method-not-allowed", allow: [...route.handlers.keys()], route: route.pattern };
      return { kind: "found", handler, params, route: route.pattern };
    }
    return { kind: "not-found" };
  }
}

function matchSegments(segments: readonly string[], parts: readonly string[]): Record<string, string> | undefined {
  if (segments.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const part = parts[i]!;
    if (seg.startsWith(":")) {
      try {
        params[seg.slice(1)] = decodeURIComponent(part);
      } catch {
        return undefined;
      }
    } else if (seg !== part) return undefined;
  }
  return params;
}
