/**
 * @module @baton/client
 * Baton's client SDK for browsers and Node: `new BatonClient(url, {token})`.
 */
export { BatonClient, BatonClientError, TopicSubscription } from "./baton-client.ts";
export type { BatonClientOptions, ClientEvents, PublishOptions, PublishResult, TopicEvents, TopicOptions } from "./baton-client.ts";
export type { BatonEvent, Position, SubscribedInfo } from "./events.ts";
