// The embedded broker's packet-size guard: it reads MQTT fixed headers as bytes pass, in any
// fragmentation, and refuses a packet whose announced size is above the cap before its body arrives.
import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MqttPacketSizeScanner, guardPacketSize } from '../../host-tools/broker/packet-size-guard.ts';

/** A PUBLISH (QoS 0) of bodyBytes body bytes: fixed header with the remaining length as MQTT encodes it. */
function publishHeader(bodyBytes: number): number[] {
  const out = [0x30];
  let n = bodyBytes;
  do {
    let digit = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) digit |= 0x80;
    out.push(digit);
  } while (n > 0);
  return out;
}

test('packets up to the cap pass in any fragmentation; the first larger one is refused at its header', () => {
  const small = [...publishHeader(100), ...new Array(100).fill(7)];
  const exact = [...publishHeader(2045), ...new Array(2045).fill(1)]; // 3 header bytes + 2045 = 2048
  const stream = new Uint8Array([...small, 0xc0, 0x00, ...exact, ...small]); // PINGREQ (no body) in between
  for (const chunkBytes of [1, 3, 64, stream.length]) {
    const scanner = new MqttPacketSizeScanner(2048);
    for (let i = 0; i < stream.length; i += chunkBytes)
      assert.is(scanner.scan(stream.subarray(i, i + chunkBytes)), undefined, `chunks of ${chunkBytes}`);
  }
  const scanner = new MqttPacketSizeScanner(2048);
  assert.is(scanner.scan(new Uint8Array(small)), undefined);
  assert.match(
    scanner.scan(new Uint8Array(publishHeader(64 * 1024 * 1024))) ?? '',
    'a packet of 67108869 bytes is larger than the 2048',
  );
  assert.match(
    new MqttPacketSizeScanner(2048).scan(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f])) ?? '',
    'more than 4 bytes',
  );
});

test('guardPacketSize watches what a reader reads and destroys the socket on an oversized packet', async () => {
  const received: Buffer[] = [];
  const refusals: string[] = [];
  const closed = new Promise<void>((resolve) => {
    const server = net.createServer((socket) => {
      // Read as aedes does: on 'readable', with read().
      socket.on('readable', () => {
        for (let chunk = socket.read(); chunk !== null; chunk = socket.read()) received.push(chunk);
      });
      guardPacketSize(socket, 2048, (reason) => refusals.push(reason));
      socket.on('close', () => {
        server.close();
        resolve();
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1', () => {
        client.write(Buffer.from([...publishHeader(3), 1, 2, 3]));
        setTimeout(() => client.write(Buffer.from(publishHeader(64 * 1024 * 1024))), 20);
      });
      client.on('error', () => {});
    });
  });
  await closed;
  assert.equal(
    [...Buffer.concat(received).subarray(0, 5)],
    [...publishHeader(3), 1, 2, 3],
    'the small packet reached the reader unchanged',
  );
  assert.ok(Buffer.concat(received).length <= 5 + 5, 'of the large one at most its header was read');
  assert.is(refusals.length, 1);
});

test.run();
