// What Espruino 2v29's `tls` module gives the meter, measured in the real interpreter (built for Linux with
// the ESP32's memory layout, ../shared/espruino/): its cost in JsVars and process memory, whether it
// authenticates the server, whether its randomness differs between boots, and the time of one handshake.
//
// Set-up, all on 127.0.0.1 and stopped at the end: two Node TLS servers, "broker" (the certificate a meter
// would pin, CN broker.veilgrid.test) and "impostor" (a different key, self-signed for another name); in
// front of each a TCP proxy that records every byte either side sends (what a LAN observer sees); a plain
// TCP echo server for the cost of a socket without TLS. Certificates are made at run time with the
// `openssl` CLI (RSA 2048: Espruino's own mbedtls configuration, libs/crypto/mbedtls/config.h, has no
// ECDHE/ECDSA key exchange, so a P-256 server is tried once, to show that it is refused).
//
// Each interpreter run is a fresh process (a fresh boot): it connects with require("tls").connect, reads
// the server's greeting, sends an MQTT CONNECT carrying a user name and password, reads the reply and
// closes. Then, as a passive observer that never had the broker's key: the premaster secret is learned from
// one run of the same interpreter against the observer's own server, and used to decrypt a recorded
// session with the broker.
//   node --import tsx bench/espruino-tls.ts
import { execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { espruinoInterpreterPath } from '../boards/espruino-linux/interpreter-path.ts';

const binary = espruinoInterpreterPath();
if (!binary) {
  console.error(
    'no Espruino interpreter: set VEILGRID_ESPRUINO_BIN or put ../shared/espruino/espruino-2v29-esp32like beside the repository',
  );
  process.exit(2);
}
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' });
} catch {
  console.error('this benchmark makes its certificates with the openssl CLI, which is not on PATH');
  process.exit(2);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-bench-tls-'));
const USER = 'meter-0001';
const PASSWORD = 'broker-pw-Zq7v3K9t';

// ---------------------------------------------------------------------------------------------------------
// Certificates

interface Identity {
  key: string;
  cert: string;
  der: Buffer;
  name: string;
}

function makeIdentity(name: string, cn: string, keyArgs: string[]): Identity {
  const keyFile = path.join(work, `${name}.key`);
  const certFile = path.join(work, `${name}.crt`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      ...keyArgs,
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-addext',
      `subjectAltName=DNS:${cn}`,
      '-batch',
    ],
    { stdio: 'ignore' },
  );
  const cert = fs.readFileSync(certFile, 'latin1');
  return {
    key: fs.readFileSync(keyFile, 'latin1'),
    cert,
    der: Buffer.from(new crypto.X509Certificate(cert).raw),
    name: cn,
  };
}

const broker = makeIdentity('broker', 'broker.veilgrid.test', ['-newkey', 'rsa:2048']);
const impostor = makeIdentity('impostor', 'impostor.attacker.invalid', ['-newkey', 'rsa:2048']);
const observer = makeIdentity('observer', 'observer.attacker.invalid', ['-newkey', 'rsa:2048']);
const p256 = makeIdentity('p256', 'broker-p256.veilgrid.test', [
  '-newkey',
  'ec',
  '-pkeyopt',
  'ec_paramgen_curve:P-256',
]);

// ---------------------------------------------------------------------------------------------------------
// Servers and recording proxies

interface Session {
  start: bigint;
  secure: boolean;
  cipher?: string;
  protocol?: string;
  sni?: string | false;
  got: Buffer[];
  keylog: string[];
  handshakeMs?: number;
  error?: string;
}
interface Recording {
  clientToServer: Buffer;
  serverToClient: Buffer;
}

const closers: (() => Promise<void>)[] = [];
const listen = (server: net.Server) =>
  new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
    closers.push(() => new Promise((done) => server.close(() => done())));
  });

/** A TLS server that greets, answers each chunk with "OK", and keeps what it saw per connection. */
async function tlsServer(identity: Identity, extra: tls.TlsOptions = {}) {
  const sessions: Session[] = [];
  const sockets = new Set<net.Socket>();
  const server = tls.createServer({ key: identity.key, cert: identity.cert, ...extra });
  server.on('connection', (raw: net.Socket) => {
    sessions.push({ start: process.hrtime.bigint(), secure: false, got: [], keylog: [] });
    sockets.add(raw);
    raw.on('close', () => sockets.delete(raw));
  });
  // Connections come one at a time (each run is one process, one connection), so the last one is this one.
  server.on('keylog', (line: Buffer) => sessions[sessions.length - 1]?.keylog.push(line.toString().trim()));
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const session = sessions[sessions.length - 1];
    session.secure = true;
    session.cipher = socket.getCipher().standardName;
    session.protocol = socket.getProtocol() ?? undefined;
    session.sni = (socket as any).servername;
    session.handshakeMs = Number(process.hrtime.bigint() - session.start) / 1e6;
    socket.write('HELLO');
    socket.on('data', (d: Buffer) => {
      session.got.push(d);
      socket.write('OK');
    });
    socket.on('error', () => {});
  });
  server.on('tlsClientError', (err: Error) => {
    const session = sessions[sessions.length - 1];
    if (session) session.error = err.message;
  });
  const port = await listen(server);
  closers.push(async () => {
    for (const s of sockets) s.destroy();
  });
  return { port, sessions };
}

/** A TCP proxy to 127.0.0.1:target that records what each side sends (one recording per connection). */
async function recordingProxy(target: number) {
  const recordings: Recording[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const c2s: Buffer[] = [];
    const s2c: Buffer[] = [];
    const recording = {
      get clientToServer() {
        return Buffer.concat(c2s);
      },
      get serverToClient() {
        return Buffer.concat(s2c);
      },
    };
    recordings.push(recording);
    const upstream = net.connect(target, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (d) => {
      c2s.push(d);
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      s2c.push(d);
      client.write(d);
    });
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
  });
  const port = await listen(server);
  closers.push(async () => {
    for (const s of sockets) s.destroy();
  });
  return { port, recordings };
}

/** Plain TCP: greets, answers "OK" (the cost of a socket without TLS). */
async function plainServer() {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.write('HELLO');
    s.on('data', () => s.write('OK'));
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  closers.push(async () => {
    for (const s of sockets) s.destroy();
  });
  return { port };
}

// ---------------------------------------------------------------------------------------------------------
// The MQTT CONNECT the meter sends (MQTT 3.1.1, clean session, keep-alive 60 s)

function mqttConnect(clientId: string, user: string, password: string): Buffer {
  const str = (s: string) => {
    const b = Buffer.from(s, 'latin1');
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 255]), b]);
  };
  const variable = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2, 0, 60])]);
  const payload = Buffer.concat([str(clientId), str(user), str(password)]);
  const rest = Buffer.concat([variable, payload]);
  return Buffer.concat([Buffer.from([0x10, rest.length]), rest]);
}
const CONNECT = mqttConnect(USER, USER, PASSWORD);

// ---------------------------------------------------------------------------------------------------------
// The interpreter

interface RunOptions {
  port: number;
  tls?: boolean; // default true
  ca?: Buffer; // DER, passed as options.ca
  srand?: number; // E.srand(v) before connecting
  sample?: boolean; // a 1 ms timer samples process.memory(false).usage
  ballastFree?: number; // hold ballast until at most this many JsVars are free
  marks?: boolean; // pause 300 ms at each mark so the Node side can read /proc/<pid>/status
  connections?: number; // connect, exchange and close this many times one after the other (default 1)
}
interface ProcStatus {
  VmRSS: number;
  VmHWM: number;
  VmData: number;
}
interface RunResult {
  values: Record<string, string>;
  status: Record<string, ProcStatus>;
  output: string;
  exitCode: number | null;
}

function interpreterScript(o: RunOptions): string {
  const b64 = (b: Buffer) => b.toString('base64');
  return `
function out(k,v){print("VG "+k+" "+v);}
${o.srand !== undefined ? `E.srand(${o.srand});` : ''}
var B=[];
${o.ballastFree !== undefined ? `while(process.memory(false).free>${o.ballastFree}){for(var j=0;j<20;j++)B.push(j);}` : ''}
var pause=${o.marks ? 300 : 0};
function mark(name,next){out("mark",name);setTimeout(next,pause);}
out("usage0",process.memory().usage);out("free0",process.memory().free);
function connection(k){
  var opts={host:"127.0.0.1",port:${o.port}};
  ${o.ca ? `opts.ca=atob("${b64(o.ca)}");` : ''}
  var peak=process.memory(false).usage, sampler;
  ${o.sample ? 'sampler=setInterval(function(){var u=process.memory(false).usage;if(u>peak)peak=u;},1);' : ''}
  var t0=getTime(), n=0;
  var s=require("${o.tls === false ? 'net' : 'tls'}").connect(opts,function(){out("connect_cb_ms",(getTime()-t0)*1000);});
  s.on("data",function(d){
    n++;
    if(n==1){
      out("greeting_ms",(getTime()-t0)*1000);
      out("greeting",JSON.stringify(d));
      out("open_usage_nogc",process.memory(false).usage);
      out("open_usage",process.memory().usage);
      mark("open",function(){s.write(atob("${b64(CONNECT)}"));});
    } else {
      out("reply",JSON.stringify(d));
      s.end();
    }
  });
  s.on("error",function(e){out("error",JSON.stringify(e&&e.message?e.message:e));});
  s.on("close",function(){
    if(sampler)clearInterval(sampler);
    out("sampled_peak",peak);
    out("closed",k);
    setTimeout(function(){
      out("after_usage",process.memory().usage);
      if(k+1<${o.connections ?? 1}) connection(k+1);
      else mark("after",function(){out("errorflags",JSON.stringify(E.getErrorFlags()));print("VG done 1");});
    },50);
  });
}
mark("before",function(){connection(0);});
`;
}

function procStatus(pid: number): ProcStatus | undefined {
  try {
    const text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number((new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text) ?? [])[1]);
    return { VmRSS: kb('VmRSS'), VmHWM: kb('VmHWM'), VmData: kb('VmData') };
  } catch {
    return undefined;
  }
}

/** Runs the connection script in a fresh interpreter process; stopped with SIGKILL at the end or after 30 s. */
function runInterpreter(o: RunOptions): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(work, 'run-'));
  const script = path.join(dir, 'tls.js');
  fs.writeFileSync(script, interpreterScript(o), 'latin1');
  const child = spawn(binary!, [script], { cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
  const values: Record<string, string> = {};
  const status: Record<string, ProcStatus> = {};
  let output = '';
  let buffered = '';
  return new Promise<RunResult>((resolve) => {
    let finished = false;
    const finish = (exitCode: number | null) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve({ values, status, output, exitCode });
    };
    const timer = setTimeout(() => {
      values.timeout = '30 s';
      finish(null);
    }, 30_000);
    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk: string) => {
      output += chunk;
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        // The console's prompt, a carriage return and clear-to-end-of-screen can precede a printed line.
        const line = buffered
          .slice(0, nl)
          .replace(/\r/g, '')
          .replace(/^(?:>|\x1b\[J)+/, '');
        buffered = buffered.slice(nl + 1);
        const m = /^VG (\S+) (.*)$/.exec(line);
        if (!m) continue;
        if (m[1] === 'mark') {
          const s = procStatus(child.pid!);
          if (s) status[m[2]] = s;
        } else if (m[1] === 'done') {
          const s = procStatus(child.pid!);
          if (s) status.end = s;
          finish(null);
        } else values[m[1]] = m[2];
      }
    });
    child.on('exit', (code) => finish(code));
  });
}

// ---------------------------------------------------------------------------------------------------------
// TLS 1.2 record parsing and the passive decryption

interface TlsRecord {
  type: number;
  version: number;
  fragment: Buffer;
}
function records(stream: Buffer): TlsRecord[] {
  const list: TlsRecord[] = [];
  for (let i = 0; i + 5 <= stream.length; ) {
    const length = stream.readUInt16BE(i + 3);
    if (i + 5 + length > stream.length) break;
    list.push({
      type: stream[i],
      version: stream.readUInt16BE(i + 1),
      fragment: stream.subarray(i + 5, i + 5 + length),
    });
    i += 5 + length;
  }
  return list;
}
/** Handshake messages in the records before ChangeCipherSpec (the plaintext part). */
function handshakes(stream: Buffer): { type: number; body: Buffer }[] {
  const list: { type: number; body: Buffer }[] = [];
  let pending = Buffer.alloc(0);
  for (const r of records(stream)) {
    if (r.type === 20) break;
    if (r.type !== 22) continue;
    pending = Buffer.concat([pending, r.fragment]);
    while (pending.length >= 4) {
      const length = pending.readUIntBE(1, 3);
      if (pending.length < 4 + length) break;
      list.push({ type: pending[0], body: pending.subarray(4, 4 + length) });
      pending = pending.subarray(4 + length);
    }
  }
  return list;
}

interface ClientHelloFacts {
  random: Buffer;
  sessionId: Buffer;
  suites: number[];
  sni?: string;
  clientKeyExchange?: Buffer;
}
function clientFacts(c2s: Buffer): ClientHelloFacts {
  const msgs = handshakes(c2s);
  const hello = msgs.find((m) => m.type === 1);
  if (!hello) throw new Error('no ClientHello recorded');
  const b = hello.body;
  const random = b.subarray(2, 34);
  const sidLength = b[34];
  const sessionId = b.subarray(35, 35 + sidLength);
  let p = 35 + sidLength;
  const suitesLength = b.readUInt16BE(p);
  const suites: number[] = [];
  for (let i = 0; i < suitesLength; i += 2) suites.push(b.readUInt16BE(p + 2 + i));
  p += 2 + suitesLength;
  p += 1 + b[p]; // compression methods
  let sni: string | undefined;
  if (p + 2 <= b.length) {
    const end = p + 2 + b.readUInt16BE(p);
    p += 2;
    while (p + 4 <= end) {
      const type = b.readUInt16BE(p);
      const length = b.readUInt16BE(p + 2);
      if (type === 0) sni = b.subarray(p + 9, p + 4 + length).toString('latin1');
      p += 4 + length;
    }
  }
  const cke = msgs.find((m) => m.type === 16);
  return { random, sessionId, suites, sni, clientKeyExchange: cke?.body };
}
function serverFacts(s2c: Buffer): { random: Buffer; suite: number } {
  const hello = handshakes(s2c).find((m) => m.type === 2);
  if (!hello) throw new Error('no ServerHello recorded');
  const b = hello.body;
  const sidLength = b[34];
  return { random: b.subarray(2, 34), suite: b.readUInt16BE(35 + sidLength) };
}

/** TLS 1.2 PRF (RFC 5246 section 5) with the given hash. */
function prf(hash: string, secret: Buffer, label: string, seed: Buffer, length: number): Buffer {
  const labelSeed = Buffer.concat([Buffer.from(label, 'latin1'), seed]);
  const out: Buffer[] = [];
  let a = labelSeed;
  let total = 0;
  while (total < length) {
    a = crypto.createHmac(hash, secret).update(a).digest();
    const block = crypto
      .createHmac(hash, secret)
      .update(Buffer.concat([a, labelSeed]))
      .digest();
    out.push(block);
    total += block.length;
  }
  return Buffer.concat(out).subarray(0, length);
}

const SUITE_NAMES: Record<number, string> = {
  0x009f: 'DHE-RSA-AES256-GCM-SHA384',
  0x006b: 'DHE-RSA-AES256-SHA256',
  0x0039: 'DHE-RSA-AES256-SHA',
  0x009e: 'DHE-RSA-AES128-GCM-SHA256',
  0x0067: 'DHE-RSA-AES128-SHA256',
  0x0033: 'DHE-RSA-AES128-SHA',
  0x009d: 'RSA-AES256-GCM-SHA384',
  0x003d: 'RSA-AES256-SHA256',
  0x0035: 'RSA-AES256-SHA',
  0x009c: 'RSA-AES128-GCM-SHA256',
  0x003c: 'RSA-AES128-SHA256',
  0x002f: 'RSA-AES128-SHA',
  0x00ff: 'EMPTY_RENEGOTIATION_INFO_SCSV',
};

const GCM_SUITES: Record<number, { name: string; keyLength: number; hash: string }> = {
  0x009c: { name: 'TLS_RSA_WITH_AES_128_GCM_SHA256', keyLength: 16, hash: 'sha256' },
  0x009d: { name: 'TLS_RSA_WITH_AES_256_GCM_SHA384', keyLength: 32, hash: 'sha384' },
};

/** Decrypts the client's application-data records of a recorded TLS 1.2 RSA/AES-GCM session, given the premaster secret. */
function decryptClientData(recording: Recording, premaster: Buffer): { master: Buffer; plaintext: Buffer } {
  const client = clientFacts(recording.clientToServer);
  const server = serverFacts(recording.serverToClient);
  const suite = GCM_SUITES[server.suite];
  if (!suite)
    throw new Error(`the server chose suite 0x${server.suite.toString(16)}, which this decryptor does not handle`);
  const master = prf(suite.hash, premaster, 'master secret', Buffer.concat([client.random, server.random]), 48);
  const keyBlock = prf(
    suite.hash,
    master,
    'key expansion',
    Buffer.concat([server.random, client.random]),
    2 * suite.keyLength + 8,
  );
  const key = keyBlock.subarray(0, suite.keyLength);
  const salt = keyBlock.subarray(2 * suite.keyLength, 2 * suite.keyLength + 4);
  const parts: Buffer[] = [];
  let seq = 0n;
  let encrypted = false;
  for (const r of records(recording.clientToServer)) {
    if (r.type === 20) {
      encrypted = true;
      continue;
    }
    if (!encrypted) continue;
    const explicit = r.fragment.subarray(0, 8);
    const tag = r.fragment.subarray(r.fragment.length - 16);
    const body = r.fragment.subarray(8, r.fragment.length - 16);
    const aad = Buffer.alloc(13);
    aad.writeBigUInt64BE(seq, 0);
    aad[8] = r.type;
    aad.writeUInt16BE(r.version, 9);
    aad.writeUInt16BE(body.length, 11);
    const decipher = crypto.createDecipheriv(
      suite.keyLength === 16 ? 'aes-128-gcm' : 'aes-256-gcm',
      key,
      Buffer.concat([salt, explicit]),
    );
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    const plain = Buffer.concat([decipher.update(body), decipher.final()]);
    if (r.type === 23) parts.push(plain);
    seq++;
  }
  return { master, plaintext: Buffer.concat(parts) };
}

/** The premaster secret the client sent, decrypted with the server's RSA key (what the server itself does). */
function premasterFrom(recording: Recording, identity: Identity): Buffer {
  const cke = clientFacts(recording.clientToServer).clientKeyExchange;
  if (!cke) throw new Error('no ClientKeyExchange recorded');
  // Node 20 refuses PKCS#1 v1.5 private decryption (CVE-2023-46809), so: raw RSA, then strip the padding
  // 00 02 <nonzero bytes> 00 by hand (no secret is at stake in a benchmark).
  const block = crypto.privateDecrypt({ key: identity.key, padding: crypto.constants.RSA_NO_PADDING }, cke.subarray(2));
  const zero = block.indexOf(0, 2);
  if (block[0] !== 0 || block[1] !== 2 || zero < 10) throw new Error('ClientKeyExchange is not PKCS#1 v1.5 encryption');
  return block.subarray(zero + 1);
}

// ---------------------------------------------------------------------------------------------------------
// The runs

const assertLine = (text: string) => /ASSERT\([^\n]*/.exec(text)?.[0].trim();
const lastLines = (text: string) =>
  text
    .replace(/\x1b\[J|\r/g, '')
    .split('\n')
    .filter((l) => l.trim() && l.trim() !== '>')
    .slice(-3)
    .join(' / ');
const firstLine = (text: string) => text.split('\n')[0].replace(/^[0-9A-F]+:error:[0-9A-F]+:/, '');
const hex = (b?: Buffer) => (b ? b.toString('hex') : '—');
const short = (b?: Buffer) => (b ? `${b.subarray(0, 8).toString('hex')}…` : '—');
const num = (v: string | undefined, digits = 0) => (v === undefined ? '—' : Number(v).toFixed(digits));
const kb = (n: number) => `${n.toLocaleString('en')} kB`;

try {
  const brokerServer = await tlsServer(broker);
  const impostorServer = await tlsServer(impostor);
  const observerServer = await tlsServer(observer);
  const p256Server = await tlsServer(p256);
  // The client's first choice, DHE-RSA-AES256-GCM-SHA384 (RFC 7919's 2048-bit group): what a broker with DH
  // parameters would pick. Without them Node's OpenSSL picks RSA key exchange.
  const dheServer = await tlsServer(broker, { dhparam: 'auto', ciphers: 'DHE-RSA-AES256-GCM-SHA384' });
  const dheProxy = await recordingProxy(dheServer.port);
  const brokerProxy = await recordingProxy(brokerServer.port);
  const impostorProxy = await recordingProxy(impostorServer.port);
  const observerProxy = await recordingProxy(observerServer.port);
  const plain = await plainServer();

  console.log(`Espruino interpreter: ${binary}`);
  console.log(
    `Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}, load average ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}\n`,
  );

  // 1. RAM ------------------------------------------------------------------------------------------------
  console.log(
    '## 1. Memory: one TLS connection to the broker (1 ms usage sampler; 300 ms pauses at each mark for /proc)',
  );
  const memRun = await runInterpreter({ port: brokerProxy.port, sample: true, marks: true });
  const plainRun = await runInterpreter({ port: plain.port, tls: false, sample: true, marks: true });
  const v = memRun.values;
  const pv = plainRun.values;
  if (!v.reply) throw new Error(`the TLS memory run did not complete:\n${memRun.output}`);
  const brokerSession = brokerServer.sessions[brokerServer.sessions.length - 1];
  console.log(
    `negotiated: ${brokerSession.protocol} ${brokerSession.cipher}; SNI the client sent: ${JSON.stringify(brokerSession.sni)}`,
  );
  console.log('| figure | TLS | plain TCP (net) |');
  console.log('|---|---|---|');
  console.log(`| JsVars in use before connect (after GC) | ${v.usage0} | ${pv.usage0} |`);
  console.log(
    `| JsVars in use, connection open, handshake done (no GC / after GC) | ${v.open_usage_nogc} / ${v.open_usage} | ${pv.open_usage_nogc} / ${pv.open_usage} |`,
  );
  console.log(`| sampled peak (1 ms timer, between tasks) | ${v.sampled_peak} | ${pv.sampled_peak} |`);
  console.log(`| JsVars in use after close (after GC) | ${v.after_usage} | ${pv.after_usage} |`);
  console.log(
    `| open connection, over before (JsVars × 14 B) | ${Number(v.open_usage) - Number(v.usage0)} (${((Number(v.open_usage) - Number(v.usage0)) * 14).toLocaleString('en')} B) | ${Number(pv.open_usage) - Number(pv.usage0)} |`,
  );
  console.log(`| E.getErrorFlags() at the end | ${v.errorflags} | ${pv.errorflags} |`);
  const st = memRun.status;
  if (st.before && st.open && st.after) {
    console.log('\nThe interpreter process (/proc/<pid>/status, TLS run):');
    console.log('| mark | VmRSS | VmHWM (peak RSS) | VmData |');
    console.log('|---|---|---|---|');
    for (const m of ['before', 'open', 'after', 'end'] as const)
      if (st[m]) console.log(`| ${m} | ${kb(st[m].VmRSS)} | ${kb(st[m].VmHWM)} | ${kb(st[m].VmData)} |`);
    const ps = plainRun.status;
    if (ps.before && ps.end)
      console.log(
        `(plain TCP run: VmRSS ${kb(ps.before.VmRSS)} → ${kb(ps.end.VmRSS)}, VmData ${kb(ps.before.VmData)} → ${kb(ps.end.VmData)})`,
      );
  }

  // Least free JsVars with which the whole exchange still works: ballast (small JsVars, so the free space
  // left is at the top of the store, contiguous) leaves at most F free; binary search on F.
  const leastFree = async (port: number, tlsOn = true) => {
    const works = async (free: number) => {
      const r = await runInterpreter({ port, ballastFree: free, tls: tlsOn });
      return { ok: r.values.reply !== undefined && r.values.error === undefined, r };
    };
    let lo = 0;
    let hi = 6000;
    const hiRun = await works(hi);
    if (!hiRun.ok) throw new Error(`the exchange failed even with ${hi} JsVars free:\n${hiRun.r.output}`);
    let failure = '';
    while (hi - lo > 10) {
      const mid = Math.floor((lo + hi) / 2);
      const { ok, r } = await works(mid);
      if (ok) hi = mid;
      else {
        lo = mid;
        failure =
          r.values.error ?? r.values.timeout ?? `exit ${r.exitCode}: ${assertLine(r.output) ?? lastLines(r.output)}`;
      }
    }
    return { hi, lo, failure };
  };
  const least = await leastFree(brokerProxy.port);
  const leastPlain = await leastFree(plain.port, false);
  console.log(
    `\nLeast free JsVars (ballast of small JsVars first, so the free ones are one contiguous area) with which handshake, CONNECT and reply work:`,
  );
  console.log(
    `  TLS (RSA key exchange): ${least.hi} (${(least.hi * 14).toLocaleString('en')} B); with ${least.lo} free: ${least.failure}`,
  );
  console.log(`  plain TCP, same script: ${leastPlain.hi}`);

  // 2. Server authentication -----------------------------------------------------------------------------
  console.log('\n## 2. Server authentication');
  const auth: [string, RunResult, Session | undefined][] = [];
  const authCase = async (what: string, port: number, sessions: Session[], ca?: Buffer) => {
    const before = sessions.length;
    const r = await runInterpreter({ port, ca });
    auth.push([what, r, sessions.length > before ? sessions[sessions.length - 1] : undefined]);
  };
  await authCase(
    'impostor (self-signed, CN impostor.attacker.invalid, another key), no `ca`',
    impostorProxy.port,
    impostorServer.sessions,
  );
  await authCase(
    'impostor, `ca` = the broker\'s certificate (DER), i.e. the broker "pinned"',
    impostorProxy.port,
    impostorServer.sessions,
    broker.der,
  );
  await authCase(
    "impostor, `ca` = the broker's certificate, the impostor's CN differs too",
    impostorProxy.port,
    impostorServer.sessions,
    broker.der,
  );
  await authCase(
    "the genuine broker, `ca` = the broker's certificate",
    brokerProxy.port,
    brokerServer.sessions,
    broker.der,
  );
  await authCase('broker with a P-256 (ECDSA) certificate, no `ca`', p256Server.port, p256Server.sessions);
  console.log('| server | handshake | server received the CONNECT (user + password) | client saw |');
  console.log('|---|---|---|---|');
  for (const [what, r, session] of auth) {
    const received = session ? Buffer.concat(session.got) : Buffer.alloc(0);
    const hasPassword = received.includes(Buffer.from(PASSWORD));
    console.log(
      `| ${what} | ${session?.secure ? `done (${session.cipher})` : `failed${session?.error ? `: ${firstLine(session.error)}` : ''}`} | ${hasPassword ? 'yes, password included' : 'no'} | ${r.values.error ? `error ${r.values.error}` : r.values.reply ? `greeting ${r.values.greeting}, reply ${r.values.reply}` : r.values.closed !== undefined ? 'socket closed, no error event, no data' : r.values.timeout ? `nothing in 30 s: ${lastLines(r.output)}` : `exit ${r.exitCode}: ${lastLines(r.output)}`} |`,
    );
  }

  // 3. Randomness ----------------------------------------------------------------------------------------
  console.log('\n## 3. Randomness across boots (each run a fresh interpreter process, first connection after boot)');
  const randomRuns: [string, RunResult, Recording, Session][] = [];
  const randomCase = async (what: string, srand?: number) => {
    const r = await runInterpreter({ port: brokerProxy.port, srand });
    randomRuns.push([
      what,
      r,
      brokerProxy.recordings[brokerProxy.recordings.length - 1],
      brokerServer.sessions[brokerServer.sessions.length - 1],
    ]);
  };
  await randomCase('boot A');
  await randomCase('boot B');
  await randomCase('boot C, E.srand(0x5eed1234)', 0x5eed1234);
  await randomCase('boot D, E.srand(0x5eed1234)', 0x5eed1234);
  await randomCase('boot E, E.srand(0x5eed1235)', 0x5eed1235);
  console.log(
    '| boot | ClientHello random | premaster secret (decrypted by the broker) | ClientKeyExchange (RSA-encrypted premaster) | session id length |',
  );
  console.log('|---|---|---|---|---|');
  const premasters: Buffer[] = [];
  for (const [what, r, rec] of randomRuns) {
    if (!r.values.reply) console.log(`(${what} did not complete: ${r.values.error ?? r.values.timeout ?? r.exitCode})`);
    const f = clientFacts(rec.clientToServer);
    const pm = premasterFrom(rec, broker);
    premasters.push(pm);
    console.log(
      `| ${what} | \`${hex(f.random)}\` | \`${short(pm)}\` | \`${short(f.clientKeyExchange?.subarray(2))}\` | ${f.sessionId.length} |`,
    );
  }
  const same = (i: number, j: number) => {
    const a = clientFacts(randomRuns[i][2].clientToServer);
    const b = clientFacts(randomRuns[j][2].clientToServer);
    return (
      a.random.equals(b.random) &&
      premasters[i].equals(premasters[j]) &&
      !!a.clientKeyExchange &&
      a.clientKeyExchange.equals(b.clientKeyExchange!)
    );
  };
  console.log(
    `A and B identical (random, premaster, encrypted premaster): ${same(0, 1)}; C and D identical: ${same(2, 3)}; A and C identical: ${same(0, 2)}; C and E identical: ${same(2, 4)}`,
  );
  const facts = clientFacts(randomRuns[0][2].clientToServer);
  const serverSuite = serverFacts(randomRuns[0][2].serverToClient).suite;
  console.log(
    `Suites the client offers (${facts.suites.length}): ${facts.suites.map((s) => SUITE_NAMES[s] ?? '0x' + s.toString(16).padStart(4, '0')).join(', ')}; the server chose 0x${serverSuite.toString(16).padStart(4, '0')} (${GCM_SUITES[serverSuite]?.name ?? '?'}). SNI: ${JSON.stringify(facts.sni)}`,
  );

  // Later connections in one boot: the generator's state only moves on, so the n-th connection after boot
  // is the same in every boot too.
  const laterRuns: Recording[][] = [];
  for (let k = 0; k < 2; k++) {
    await runInterpreter({ port: brokerProxy.port, connections: 3 });
    laterRuns.push(brokerProxy.recordings.slice(-3));
  }
  const randomOf = (rec: Recording) => clientFacts(rec.clientToServer).random;
  console.log('Three connections one after the other in one boot, two boots (ClientHello random):');
  for (let i = 0; i < 3; i++)
    console.log(
      `  connection ${i + 1}: boot F ${short(randomOf(laterRuns[0][i]))}, boot G ${short(randomOf(laterRuns[1][i]))}, ${randomOf(laterRuns[0][i]).equals(randomOf(laterRuns[1][i])) ? 'identical' : 'different'}${i === 0 ? `; same as boot A's: ${randomOf(laterRuns[0][0]).equals(randomOf(randomRuns[0][2]))}` : ''}`,
    );

  // Passive decryption: the observer learns the premaster of a fresh boot's first connection by running the
  // same interpreter against its own server (its own RSA key), then decrypts a recorded broker session.
  console.log('\n## 3b. A passive observer reads the password');
  const oracle = await runInterpreter({ port: observerProxy.port });
  if (!oracle.values.reply) throw new Error(`the observer's own run did not complete:\n${oracle.output}`);
  const learned = premasterFrom(observerProxy.recordings[observerProxy.recordings.length - 1], observer);
  const victimRecording = randomRuns[1][2]; // boot B: a session with the genuine broker, recorded on the wire
  const { master, plaintext } = decryptClientData(victimRecording, learned);
  const victimSession = randomRuns[1][3];
  const keylogMaster = victimSession.keylog.map((l) => l.split(' ')).find((p) => p[0] === 'CLIENT_RANDOM')?.[2];
  console.log(`premaster learned from the observer's own run: ${short(learned)} (48 B)`);
  console.log(
    `master secret derived for the recorded broker session: ${short(master)}; the broker's own key log says ${keylogMaster ? keylogMaster.slice(0, 16) + '…' : '—'} (${keylogMaster === hex(master) ? 'same' : 'DIFFERENT'})`,
  );
  const pwAt = plaintext.indexOf(Buffer.from(PASSWORD));
  console.log(
    `decrypted client application data: ${plaintext.length} B, starts ${JSON.stringify(plaintext.subarray(0, 12).toString('latin1'))}; password ${pwAt >= 0 ? `found at byte ${pwAt}: ${JSON.stringify(PASSWORD)}` : 'NOT found'}`,
  );

  // 3c. DHE ---------------------------------------------------------------------------------------------
  console.log("\n## 3c. DHE key exchange (the client's first choice)");
  const dheRuns: RunResult[] = [];
  for (let i = 0; i < 3; i++) dheRuns.push(await runInterpreter({ port: dheProxy.port }));
  const dheMem = await runInterpreter({ port: dheProxy.port, sample: true });
  const dheLeast = await leastFree(dheProxy.port);
  const dheSession = dheServer.sessions[0];
  const yc = dheProxy.recordings.slice(0, 2).map((rec) => clientFacts(rec.clientToServer).clientKeyExchange);
  const dheTimes = dheRuns.map((r) => Number(r.values.greeting_ms)).sort((a, b) => a - b);
  console.log(
    `negotiated: ${dheSession?.protocol} ${dheSession?.cipher}; completed ${dheRuns.filter((r) => r.values.reply).length} of ${dheRuns.length}`,
  );
  console.log(
    `client's DH public value (ClientKeyExchange, ${yc[0] ? yc[0].length - 2 : '?'} B): boot 1 ${short(yc[0]?.subarray(2))}, boot 2 ${short(yc[1]?.subarray(2))}: ${yc[0] && yc[1] && yc[0].equals(yc[1]) ? 'identical' : 'different'} (the server's group is fixed, its own key share is new each time)`,
  );
  console.log(
    `JsVars: before ${dheMem.values.usage0}, open ${dheMem.values.open_usage}, sampled peak ${dheMem.values.sampled_peak}, after close ${dheMem.values.after_usage}; least free that works: ${dheLeast.hi} (with ${dheLeast.lo}: ${dheLeast.failure})`,
  );
  console.log(`handshake (connect() to greeting), 3 runs: ${dheTimes.map((t) => t.toFixed(1)).join(' / ')} ms`);

  // 4. Time ----------------------------------------------------------------------------------------------
  console.log(
    "\n## 4. Handshake time (connect() to the server's greeting, in the interpreter; TCP accept to secureConnection, in Node)",
  );
  const times = randomRuns
    .map(([, r]) => Number(r.values.greeting_ms))
    .filter((t) => Number.isFinite(t))
    .sort((a, b) => a - b);
  const serverTimes = brokerServer.sessions
    .slice(-randomRuns.length)
    .map((s) => s.handshakeMs ?? NaN)
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  console.log(
    `interpreter, ${times.length} runs: min ${times[0]?.toFixed(1)} / median ${times[Math.floor(times.length / 2)]?.toFixed(1)} / max ${times[times.length - 1]?.toFixed(1)} ms; connect callback after ${num(randomRuns[0][1].values.connect_cb_ms, 2)} ms`,
  );
  console.log(
    `server side, ${serverTimes.length} runs: min ${serverTimes[0]?.toFixed(1)} / median ${serverTimes[Math.floor(serverTimes.length / 2)]?.toFixed(1)} / max ${serverTimes[serverTimes.length - 1]?.toFixed(1)} ms`,
  );
} finally {
  for (const close of closers.reverse()) await close();
  fs.rmSync(work, { recursive: true, force: true });
}
