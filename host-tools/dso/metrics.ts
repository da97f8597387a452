// The DSO's metrics are the shared Prometheus registry of host-tools/service/metrics.ts (the bridge uses it too).
export * from '../service/metrics.ts';
