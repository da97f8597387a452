// The DSO's HTTP endpoint for operations: GET /metrics and GET /healthz, the shared service endpoint
// (host-tools/service/http-server.ts) under the DSO's name.
import { startServiceHttpServer, type ServiceHttpServer, type ServiceHttpServerOptions } from '../service/http-server.ts';

export type { Health } from '../service/http-server.ts';
export type DsoHttpServerOptions = Omit<ServiceHttpServerOptions, 'name'>;
export type DsoHttpServer = ServiceHttpServer;

export function startDsoHttpServer(options: DsoHttpServerOptions): Promise<DsoHttpServer> {
  return startServiceHttpServer({ ...options, name: 'DSO' });
}
