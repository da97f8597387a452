// A mosquitto broker as a child process, listening on 127.0.0.1 only: what CI and operators who
// prefer a separate broker run. Configuration goes to a file in `dir`; extra lines (password file,
// ACL file) are appended as given. max_packet_size makes mosquitto close a connection whose packet
// is larger than a reading could be, before it buffers the packet. max_queued_messages is raised from
// mosquitto's 1,000: past it mosquitto drops QoS 1 messages for a client silently, so the DSO's
// session would lose readings while the DSO is down for a minute with 1,000 meters, or while one meter
// floods (MAX_QUEUED_MESSAGES readings at the packet cap hold at most ~200 MB).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { MAX_MQTT_PACKET_BYTES } from './max-packet-size.ts';

export interface MosquittoBroker {
  readonly port: number;
  readonly url: string;
  /** Re-reads the password and ACL files (SIGHUP), as after provisioning; resolves once mosquitto says so. */
  reload(): Promise<void>;
  /** Stops the broker: SIGTERM for a clean stop, SIGKILL for a crash. Resolves once it exited. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
}

/** Messages mosquitto queues for one client (the DSO's session) before it drops any. */
export const MAX_QUEUED_MESSAGES = 100_000;

/** Broker log kept for error messages (it logs every connection, so it is capped). */
const MAX_LOG_CHARS = 16_384;

export const MOSQUITTO_MISSING = 'mosquitto is not installed (apt-get install mosquitto)';

/** The mosquitto binary, or undefined. Debian installs it in /usr/sbin, which a non-login PATH may lack. */
export function findMosquitto(): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' }).stdout?.trim();
  if (found) return found;
  return ['/usr/sbin/mosquitto', '/usr/local/sbin/mosquitto'].find((p) => fs.existsSync(p));
}

/** A TCP port on 127.0.0.1 that was free a moment ago (mosquitto cannot listen on port 0). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts mosquitto and resolves once it listens; rejects with its log if it exits first. */
export async function startMosquitto(options: {
  dir: string;
  port?: number;
  configLines?: string[];
}): Promise<MosquittoBroker> {
  const binary = findMosquitto();
  if (!binary) throw new Error(MOSQUITTO_MISSING);
  const port = options.port ?? (await freePort());
  const config = path.join(options.dir, `mosquitto-${port}.conf`);
  const anonymous = options.configLines?.some((l) => l.startsWith('password_file')) ? [] : ['allow_anonymous true'];
  // Started by root, mosquitto drops to its own user, which cannot read the 0600 password file this
  // process wrote; it stays the user that started it instead (a broker that runs as a service gets its
  // own user and files readable by it).
  const sameUser = process.getuid?.() === 0 ? ['user root'] : [];
  fs.writeFileSync(
    config,
    [
      `listener ${port} 127.0.0.1`,
      ...anonymous,
      ...sameUser,
      'persistence false',
      `max_packet_size ${MAX_MQTT_PACKET_BYTES}`,
      `max_queued_messages ${MAX_QUEUED_MESSAGES}`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      'log_type notice',
      'log_type information',
      ...(options.configLines ?? []),
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(binary, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mosquitto did not report listening on port ${port} within 10 s:\n${output}`));
    }, 10_000);
    child.stderr!.on('data', (chunk) => {
      output = (output + chunk).slice(-MAX_LOG_CHARS);
      // "Opening … listen socket" comes before the bind; "running" only once it listens.
      if (/mosquitto version \S+ running/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('error', reject);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`mosquitto exited with code ${child.exitCode} before listening:\n${output}`));
    });
  });
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    reload() {
      let seen = '';
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          child.stderr!.off('data', onData);
          reject(new Error(`mosquitto did not report reloading its configuration within 10 s:\n${seen}`));
        }, 10_000);
        const onData = (chunk: Buffer) => {
          seen += chunk;
          // Logged as the reload starts; the files are applied in the same pass of its loop, before it reads any socket.
          if (!seen.includes('Reloading config.')) return;
          clearTimeout(timer);
          child.stderr!.off('data', onData);
          resolve();
        };
        child.stderr!.on('data', onData);
        child.kill('SIGHUP');
      });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
