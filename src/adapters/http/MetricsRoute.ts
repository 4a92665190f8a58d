import { Effect, Layer } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { ServerConfig } from "../Config.ts"
import * as Metrics from "../metrics/Metrics.ts"
import { CONTENT_TYPE } from "../metrics/Prometheus.ts"

/**
 * `GET /metrics`: the server's metrics in the Prometheus text format, on both ports, without
 * authentication (README: keep it private with PINLEDGER_METRICS=off or at the proxy/firewall).
 * It says how busy the server is, never whose data it holds: no account, address or token.
 */
export const MetricsRoute = Layer.merge(
  HttpRouter.add(
    "GET",
    "/metrics",
    Effect.map(Metrics.exposition, (text) => HttpServerResponse.text(text, { contentType: CONTENT_TYPE }))
  ),
  Metrics.layer
)

/** `MetricsRoute` when `enabled` (PINLEDGER_METRICS=on), else nothing: `/metrics` answers 404. */
export const metricsRouteIf = (enabled: boolean) => (enabled ? MetricsRoute : Layer.empty)

/** `metricsRouteIf` as PINLEDGER_METRICS says. */
export const MetricsRouteFromConfig = Layer.unwrap(Effect.map(ServerConfig, (config) => metricsRouteIf(config.metrics === "on")))
