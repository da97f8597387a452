// The testbed's MQTT broker: aedes in this process, listening on 127.0.0.1 only, refusing packets
// above MAX_MQTT_PACKET_BYTES before it buffers them (packet-size-guard.ts).
import net from 'node:net';
import { Aedes, type AedesOptions } from 'aedes';
import { MAX_MQTT_PACKET_BYTES } from './max-packet-size.ts';
import { aedesAuthHooks, type BrokerLogins } from './acl.ts';
import { guardPacketSize } from './packet-size-guard.ts';

export interface EmbeddedBroker {
  readonly port: number;
  readonly url: string;
  readonly aedes: Aedes;
  /** Stops listening and drops every client connection (as a broker crash would). */
  close(): Promise<void>;
}

export interface EmbeddedBrokerOptions {
  port?: number;
  host?: string;
  aedes?: AedesOptions;
  /**
   * Enforce the broker rules of acl.ts with these users and meter logins (e.g. a BrokerCredentials folder,
   * read on every connect). Absent: anyone may connect, publish and subscribe (tests that are not about access).
   */
  auth?: BrokerLogins;
  /** Connections sending a larger packet are closed; default MAX_MQTT_PACKET_BYTES. */
  maxPacketBytes?: number;
  /** One JSON object per line for each refused CONNECT and each connection closed for its packet size. Default: stderr. */
  log?: (line: string) => void;
}

export async function startEmbeddedBroker(options: EmbeddedBrokerOptions = {}): Promise<EmbeddedBroker> {
  const host = options.host ?? '127.0.0.1';
  const auth = options.auth;
  const maxPacketBytes = options.maxPacketBytes ?? MAX_MQTT_PACKET_BYTES;
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const logEvent = (event: string, fields: Record<string, unknown>) =>
    log(JSON.stringify({ time: new Date().toISOString(), level: 'warn', component: 'broker', event, ...fields }));
  const hooks = auth ? aedesAuthHooks(auth, (refusal) => logEvent('connection_refused', refusal)) : {};
  const aedes = await Aedes.createBroker({ ...options.aedes, ...hooks });
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const client = aedes.handle(socket);
    guardPacketSize(socket, maxPacketBytes, (reason) => {
      logEvent('connection_closed', { clientId: client.id ?? null, remote: socket.remoteAddress, reason });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: `mqtt://${host}:${port}`,
    aedes,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}
