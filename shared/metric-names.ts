/**
 * Every `rt_*` metric family the gateway and the worker export, with its type: what dashboards,
 * alerts and `npm run check:deploy` may rely on. A test scrapes a real gateway and worker and fails
 * when a family is exported but not listed here, or listed but not exported, so this list and the
 * metrics defined in gateway/ and worker/ cannot drift apart.
 */
export type MetricType = 'counter' | 'gauge' | 'histogram';

export const GATEWAY_METRICS = {
  rt_gateway_connections: 'gauge',
  rt_gateway_sse_connections: 'gauge',
  rt_gateway_rooms: 'gauge',
  rt_gateway_users: 'gauge',
  rt_gateway_bus_connected: 'gauge',
  rt_gateway_draining: 'gauge',
  rt_gateway_connects_total: 'counter',
  rt_gateway_auth_failures_total: 'counter',
  rt_gateway_messages_received_total: 'counter',
  rt_gateway_messages_sent_total: 'counter',
  rt_gateway_bytes_received_total: 'counter',
  rt_gateway_bytes_sent_total: 'counter',
  rt_gateway_slow_consumers_total: 'counter',
  rt_gateway_backpressure_drops_total: 'counter',
  rt_gateway_errors_total: 'counter',
  rt_gateway_request_duration_seconds: 'histogram',
  rt_gateway_request_hedges_total: 'counter',
  rt_gateway_canary_age_seconds: 'gauge',
} as const satisfies Record<string, MetricType>;

export const WORKER_METRICS = {
  rt_worker_requests_total: 'counter',
  rt_worker_request_duration_seconds: 'histogram',
  rt_worker_sessions_expired_total: 'counter',
  rt_worker_recoveries_total: 'counter',
  rt_worker_errors_total: 'counter',
  rt_store_operation_duration_seconds: 'histogram',
} as const satisfies Record<string, MetricType>;

export const METRICS: Readonly<Record<string, MetricType>> = { ...GATEWAY_METRICS, ...WORKER_METRICS };

/**
 * The series names a query can use: a histogram `x` is scraped as `x_bucket`, `x_sum` and `x_count`,
 * never as `x` itself.
 */
export function metricSeriesNames(): string[] {
  return Object.entries(METRICS).flatMap(([name, type]) => (type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name]));
}
