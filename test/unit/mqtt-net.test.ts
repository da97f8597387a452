// The emulator's Espruino `net` module (what the MQTT client runs on): 8-bit strings over real TCP,
// Espruino's event order and error codes, and the power cut.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as nodeNet from 'node:net';
import { createNetModule, SOCKET_ERROR, socketError, type EmulatedSocket } from '../../boards/emulator/net.ts';

const HOST = '127.0.0.1';

async function nodeServer(onSocket: (s: nodeNet.Socket) => void) {
  const sockets = new Set<nodeNet.Socket>();
  const server = nodeNet.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  return {
    port: (server.address() as nodeNet.AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(r));
    },
  };
}

function record(socket: EmulatedSocket) {
  const events: string[] = [];
  let data = '';
  socket.on('connect', () => events.push('connect'));
  socket.on('data', (d: string) => (data += d));
  socket.on('error', (e: { code: number; message: string }) => events.push(`error ${e.code} ${e.message}`));
  socket.on('end', () => events.push('end'));
  socket.on('close', (hadError: boolean) => events.push(`close ${hadError}`));
  return { events, data: () => data };
}

const until = async (cond: () => boolean, what: string) => {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > 5000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

test('every byte value goes out and comes back as one char of an 8-bit string', async () => {
  const echo = await nodeServer((s) => s.pipe(s));
  const net = createNetModule();
  try {
    const all = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join('');
    let connectArg: unknown;
    const socket = net.connect({ host: HOST, port: echo.port }, (s) => {
      connectArg = s;
      s.write(all);
    });
    const r = record(socket);
    await until(() => r.data().length === 256, 'the echo');
    assert.is(r.data(), all);
    assert.is(connectArg, socket, 'the connect callback gets the socket');
    assert.is(socket.write('x'), false, 'write returns false, as on Espruino');
  } finally {
    net.closeAll();
    await echo.close();
  }
});

test('write refuses chars above 255 and sends non-strings the way Espruino converts them', async () => {
  const received: Buffer[] = [];
  const server = await nodeServer((s) => s.on('data', (d) => received.push(d)));
  const net = createNetModule();
  try {
    const socket = net.connect({ host: HOST, port: server.port }, () => {});
    assert.throws(() => socket.write('price \u20ac'), /character code 8364 \(0x20ac\) at index 6.*8-bit/);
    await new Promise<void>((r) => socket.on('connect', () => r()));
    socket.write(new Uint8Array([1, 2, 3]) as unknown as string);
    await until(() => Buffer.concat(received).length === 5, 'the data');
    assert.is(Buffer.concat(received).toString('latin1'), '1,2,3');
  } finally {
    net.closeAll();
    await server.close();
  }
});

test('a refused connection: error -9 "connection reset", then end, then close(true); never connect', async () => {
  const server = await nodeServer(() => {});
  const port = server.port;
  await server.close();
  const net = createNetModule();
  const r = record(net.connect({ host: HOST, port }, () => {}));
  await until(() => r.events.length === 3, 'the events');
  assert.equal(r.events, ['error -9 connection reset', 'end', 'close true']);
  assert.equal(socketError(SOCKET_ERROR.UNSENT_DATA), { code: -8, message: 'unsent data' });
});

test('the peer closing is not an error on ESP32: end, close(false)', async () => {
  const server = await nodeServer((s) => s.end('bye'));
  const net = createNetModule();
  try {
    const r = record(net.connect({ host: HOST, port: server.port }, () => {}));
    await until(() => r.events.length === 3, 'the events');
    assert.equal(r.events, ['connect', 'end', 'close false']);
    assert.is(r.data(), 'bye');
  } finally {
    await server.close();
  }
});

test('end() sends what was written, then closes without waiting for the peer', async () => {
  const received: Buffer[] = [];
  const server = await nodeServer((s) => s.on('data', (d) => received.push(d))); // never ends its side
  const net = createNetModule();
  try {
    const socket = net.connect({ host: HOST, port: server.port }, (s) => {
      s.write('last words');
      s.end();
    });
    const r = record(socket);
    await until(() => r.events.includes('close false'), 'the close');
    assert.equal(r.events, ['connect', 'end', 'close false']);
    assert.is(Buffer.concat(received).toString(), 'last words');
  } finally {
    await server.close();
  }
});

test('createServer accepts connections; closeAll (power cut) kills everything silently', async () => {
  const net = createNetModule();
  const accepted: string[] = [];
  const server = net.createServer((socket) => socket.on('data', (d: string) => accepted.push(d)));
  server.listen(0);
  const { port } = await server.ready();
  const peer = nodeNet.connect(port, HOST);
  const peerClosed = new Promise((r) => peer.on('close', r));
  peer.on('error', () => {});
  peer.write(Buffer.from('\x00\xff hi', 'latin1'));
  await until(() => accepted.join('') === '\x00\xff hi', 'the accepted data');

  const out = createNetModule();
  const outbound = record(out.connect({ host: HOST, port }, () => {}));
  await until(() => outbound.events.includes('connect'), 'the outbound connection');
  out.closeAll();
  net.closeAll();
  await peerClosed;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(outbound.events, ['connect'], 'a dead board hears nothing more');
});

test.run();
