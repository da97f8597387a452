// The login service mosquitto's veilgrid_login plugin asks (mosquitto-plugin/veilgrid_login.c): on
// 127.0.0.1 only, one request per connection, "<username>\t<password>\n", answered "ok\n" or
// "no <reason>\n", by MeterLogins.check. aedes needs no service: it calls MeterLogins in process.
import net from 'node:net';
import type { LoginCheck } from './meter-logins.ts';

/** A request line longer than this is refused unread (a login is about 150 bytes). */
const MAX_REQUEST_BYTES = 1100;
/** A client that sends nothing for this long is dropped (the plugin's own timeout is 2 s). */
const IDLE_MS = 3000;

export interface LoginService {
  readonly port: number;
  close(): Promise<void>;
}

export interface LoginServiceOptions {
  check(username: string, password: string): LoginCheck;
  /** 0 (default) picks a free port. */
  port?: number;
  /** One line per refused login. */
  log?: (line: string) => void;
}

export async function startLoginService(options: LoginServiceOptions): Promise<LoginService> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(IDLE_MS, () => socket.destroy());
    let request = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      request += chunk;
      const end = request.indexOf('\n');
      if (end < 0) {
        if (request.length > MAX_REQUEST_BYTES) socket.end('no request too long\n');
        return;
      }
      const fields = request.slice(0, end).split('\t');
      const result: LoginCheck =
        fields.length === 2
          ? options.check(fields[0], fields[1])
          : { ok: false, reason: 'a request is "<username>\\t<password>\\n"' };
      if (!result.ok)
        log(
          JSON.stringify({
            time: new Date().toISOString(),
            level: 'warn',
            component: 'login-service',
            event: 'login_refused',
            username: fields[0],
            reason: result.reason,
          }),
        );
      socket.end(result.ok ? 'ok\n' : `no ${result.reason.replace(/\n/g, ' ')}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
