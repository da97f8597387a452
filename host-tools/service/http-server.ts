// A service's HTTP endpoint for operations (the DSO's, the ledger bridge's): GET /metrics (Prometheus text
// format) and GET /healthz. Listens on 127.0.0.1 by default; it exposes counts, not readings or offers, but is
// still not meant for the internet.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PROMETHEUS_CONTENT_TYPE, type MetricsRegistry } from './metrics.ts';

export interface Health {
  ok: boolean;
  /** Shown in the /healthz body, e.g. why it is not ok. */
  detail?: string;
}

export interface ServiceHttpServerOptions {
  /** The service's name in messages, e.g. "DSO" or "bridge". */
  name: string;
  metrics: MetricsRegistry;
  /** Default 0: a free port (read the real one from the result). */
  port?: number;
  host?: string;
  /** /healthz answers 200 when this says ok, 503 otherwise. Default: always ok. */
  health?: () => Health;
}

export interface ServiceHttpServer {
  port: number;
  /** e.g. http://127.0.0.1:9464 */
  url: string;
  /** Stops listening and ends open connections (keep-alive ones included); resolves when closed. */
  close(): Promise<void>;
}

export async function startServiceHttpServer(options: ServiceHttpServerOptions): Promise<ServiceHttpServer> {
  const host = options.host ?? '127.0.0.1';
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('only GET and HEAD are supported\n');
      return;
    }
    if (path === '/metrics') {
      let body: string;
      try {
        body = options.metrics.render();
      } catch (err) {
        res
          .writeHead(500, { 'content-type': 'text/plain' })
          .end(`metrics could not be collected: ${(err as Error).message}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (path === '/healthz') {
      const health = options.health?.() ?? { ok: true };
      res.writeHead(health.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(health) + '\n');
      return;
    }
    res
      .writeHead(404, { 'content-type': 'text/plain' })
      .end(`not found: the ${options.name} serves /metrics and /healthz\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new Error(`${options.name} HTTP server cannot listen on ${host}:${options.port ?? 0}: ${err.message}`)),
    );
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
