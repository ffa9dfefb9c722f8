/**
 * @module edge/http/http-api
 * The HTTP request listener: routes, authentication happens in handlers, and every error is
 * answered here through the one error model.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { BatonError } from "../../errors/baton-error.ts";
import { createTopic, deleteTopic, describeTopic, listTopics } from "./handlers/topics.ts";
import { publishEvents, readEvents, sendSessionMessage } from "./handlers/events.ts";
import { drainNode, healthz, metrics, readyz } from "./handlers/health.ts";
import { serveAsset } from "./handlers/demo.ts";
import { coordinationOperation, EFFECT_OPS, getEffect, listSlots, SLOT_OPS } from "./handlers/coordination.ts";
import { createGroup, deleteGroup, describeGroup, groupOperation, listDeadLetters, listGroups, purgeDeadLetters, showDeadLetter } from "./handlers/groups.ts";
import { requestTenant } from "./auth.ts";
import { sendError, toBatonError } from "./respond.ts";
import { Router, type RequestContext } from "./router.ts";
import type { HttpServices } from "./services.ts";

const EMPTY_QUERY = new URLSearchParams();

export function createHttpApi(s: HttpServices): (req: IncomingMessage, res: ServerResponse) => void {
  const router = new Router()
    .on("GET", "/healthz", healthz)
    .on("GET", "/readyz", (ctx) => readyz(ctx, s))
    .on("GET", "/metrics", (ctx) => metrics(ctx, s))
    .on("POST", "/admin/drain", (ctx) => drainNode(ctx, s))
    .on("GET", "/demo", serveAsset)
    .on("GET", "/sdk/:file", serveAsset)
    .on("POST", "/v1/topics/:topic/events", (ctx) => publishEvents(ctx, s))
    .on("GET", "/v1/topics/:topic/events", (ctx) => readEvents(ctx, s))
    .on("POST", "/v1/users/:user/events", (ctx) => publishEvents(ctx, s))
    .on("GET", "/v1/users/:user/events", (ctx) => readEvents(ctx, s))
    .on("POST", "/v1/sessions/:session/messages", (ctx) => sendSessionMessage(ctx, s))
    .on("GET", "/v1/topics", (ctx) => listTopics(ctx, s))
    .on("POST", "/v1/topics", (ctx) => createTopic(ctx, s))
    .on("GET", "/v1/topics/:topic", (ctx) => describeTopic(ctx, s))
    .on("DELETE", "/v1/topics/:topic", (ctx) => deleteTopic(ctx, s))
    .on("GET", "/v1/groups", (ctx) => listGroups(ctx, s))
    .on("POST", "/v1/groups", (ctx) => createGroup(ctx, s))
    .on("GET", "/v1/groups/:group", (ctx) => describeGroup(ctx, s))
    .on("DELETE", "/v1/groups/:group", (ctx) => deleteGroup(ctx, s));
  for (const op of ["reset", "pull", "ack", "nack", "term", "extend"] as const) {
    const handler = groupOperation(op);
    router.on("POST", `/v1/groups/:group/${op}`, (ctx) => handler(ctx, s));
  }
  const redrive = groupOperation("redrive");
  router
    .on("POST", "/v1/groups/:group/dead-letters/redrive", (ctx) => redrive(ctx, s))
    .on("GET", "/v1/groups/:group/dead-letters", (ctx) => listDeadLetters(ctx, s))
    .on("DELETE", "/v1/groups/:group/dead-letters", (ctx) => purgeDeadLetters(ctx, s))
    .on("GET", "/v1/groups/:group/dead-letters/:seq", (ctx) => showDeadLetter(ctx, s))
    .on("GET", "/v1/slots/:resource", (ctx) => listSlots(ctx, s))
    .on("GET", "/v1/effects/:key", (ctx) => getEffect(ctx, s));
  for (const [name, op] of Object.entries(SLOT_OPS)) {
    const handler = coordinationOperation(op, "resource");
    router.on("POST", `/v1/slots/:resource/${name}`, (ctx) => handler(ctx, s));
  }
  for (const [name, op] of Object.entries(EFFECT_OPS)) {
    const handler = coordinationOperation(op, "key");
    router.on("POST", `/v1/effects/:key/${name}`, (ctx) => handler(ctx, s));
  }

  // prom-client hashes the label set on every inc(); children per (route, status) avoid that.
  const counters = new Map<string, { inc(): void }>();
  const countRequest = (route: string, status: number): void => {
    const key = `${route} ${status}`;
    let child = counters.get(key);
    if (child === undefined) {
      child = s.metrics.httpRequests.labels(route, String(status));
      counters.set(key, child);
    }
    child.inc();
  };

  return (req, res) => {
    // While draining, every answer closes its connection so keep-alive clients move elsewhere.
    if (!s.isReady()) res.setHeader("connection", "close");
    // Split by hand: `new URL()` per request is measurable on the publish path.
    const target = req.url ?? "/";
    const q = target.indexOf("?");
    const pathname = q === -1 ? target : target.slice(0, q);
    const match = router.match(req.method ?? "GET", pathname);
    if (match.kind === "not-found") {
      const message =
        pathname === "/connection/websocket"
          ? "/connection/websocket is the WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket), e.g. the centrifuge SDK (docs/protocol.md)"
          : `no route for ${req.method} ${pathname.slice(0, 200)}`;
      answerError(res, "", new BatonError("NOT_FOUND", message));
      return;
    }
    if (match.kind === "method-not-allowed") {
      answerError(res, match.route, new BatonError("METHOD_NOT_ALLOWED", `${req.method} is not allowed on ${match.route}`), { allow: match.allow.join(", ") });
      return;
    }
    const query = q === -1 ? EMPTY_QUERY : new URLSearchParams(target.slice(q + 1));
    const ctx: RequestContext = { req, res, query, params: match.params, route: match.route };
    res.once("finish", () => countRequest(match.route, res.statusCode));
    let result: Promise<void> | void;
    try {
      result = match.handler(ctx);
    } catch (err) {
      answerError(res, match.route, toBatonError(err), {}, req);
      return;
    }
    if (result instanceof Promise) result.catch((err: unknown) => answerError(res, match.route, toBatonError(err), {}, req));
  };

  function answerError(res: ServerResponse, route: string, error: BatonError, headers: Record<string, string> = {}, req?: IncomingMessage): void {
    if (error.code === "INTERNAL") s.logger.error({ err: error.cause, route }, "internal error");
    s.metrics.httpErrors.inc({ tenant: req === undefined ? "" : requestTenant(req), code: error.code });
    // After a refused body the rest of it may still be arriving: do not reuse the connection.
    const close: Record<string, string> = error.code === "PAYLOAD_TOO_LARGE" ? { connection: "close" } : {};
    if (route === "") countRequest("unmatched", error.status);
    sendError(res, error, { ...headers, ...close });
  }
}
