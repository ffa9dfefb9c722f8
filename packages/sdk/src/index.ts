/**
 * @module @baton/client
 * Baton's client SDK for browsers and Node: `new BatonClient(url, {token})`, and the worker SDK
 * for backend agents: `new BatonWorker(url, {token}).consume(group, handler)`.
 */
export { BatonClient, BatonClientError, TopicSubscription } from "./baton-client.ts";
export type { BatonClientOptions, ClientEvents, PublishOptions, PublishResult, TopicEvents, TopicOptions } from "./baton-client.ts";
export type { BatonEvent, Position, SubscribedInfo } from "./events.ts";
export { BatonCallError, BatonWorker, Consumer, Reservation, RetryAfter, Terminate } from "./worker.ts";
export type { ConsumeOptions, Delivery, EffectOptions, Failure, Handler, HandlerContext, ReserveOptions, WorkerOptions } from "./worker.ts";
