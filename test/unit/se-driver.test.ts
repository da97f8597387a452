// The firmware's ATECC608 driver (firmware/src/se/) against the emulator's ATECC608 model on an
// emulated I2C bus: CRC and packet bytes, the provisioning configuration, every command, and the
// faults the driver must survive or report (bad CRC either way, missed wake, busy chip, locks).
// Signatures made inside the model are checked with @noble/curves and node:crypto.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import { SimClock } from '../../boards/emulator/clock.ts';
import { I2CBus as EmulatedI2CBus } from '../../boards/emulator/pins.ts';
import { espruinoI2C } from '../support/espruino-i2c.ts';
import { Atecc608 } from '../../boards/emulator/devices/atecc608/atecc608.ts';
import { parseKeyConfig, parseSlotConfig, factoryConfig } from '../../boards/emulator/devices/atecc608/zones.ts';
import { atCrc16 } from '../../firmware/src/se/crc16.ts';
import {
  buildCommand,
  checkResponse,
  RESPONSE_BAD_CRC,
  RESPONSE_EMPTY,
  RESPONSE_OK,
  statusName,
  zoneAddress,
  ZONE_CONFIG,
  ZONE_DATA,
} from '../../firmware/src/se/packet.ts';
import { hasProvisioningConfig, provisioningConfig } from '../../firmware/src/protocol/se-config-zone.ts';
import {
  NONCE_TARGET_TEMPKEY,
  SecureElement,
  type SecureElementBus,
  SecureElementError,
} from '../../firmware/src/se/secure-element.ts';
import {
  DATA_SLOT,
  IDENTITY_SLOT,
  MIX_SLOT,
  nextTradingSlot,
  READING_KEY_SLOTS,
  readingSlotForRotation,
  TRADING_RING,
} from '../../firmware/src/protocol/slot-map.ts';
import { attestationMessage } from '../../firmware/src/protocol/key-attestation.ts';
import { nodeSha256 } from '../../host-tools/crypto/node-primitives.ts';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const bytes = (h: string) => new Uint8Array(Buffer.from(h.replace(/ /g, ''), 'hex'));
const sha256 = (data: string | Uint8Array) => new Uint8Array(createHash('sha256').update(data).digest());

// ---------------------------------------------------------------------------------------------
const crc = suite('se crc16');

crc('atCRC check values: wake reply, Random command, self-test status', () => {
  const vectors: [string, string][] = [
    ['04 11', '33 43'],
    ['07 1B 00 00 00', '24 CD'],
    ['04 07', '40 C2'],
  ];
  for (const [input, expected] of vectors) {
    const value = atCrc16(bytes(input), 0, bytes(input).length);
    assert.is(hex(Uint8Array.of(value & 0xff, value >> 8)), expected.replace(/ /g, '').toLowerCase(), input);
  }
});

crc.run();

// ---------------------------------------------------------------------------------------------
const packet = suite('se packet');

packet('commands are built byte for byte as CryptoAuthLib sends them', () => {
  assert.is(hex(buildCommand(0x1b, 0x00, 0x0000)), '03071b00000024cd', 'Random');
  assert.is(hex(buildCommand(0x30, 0x00, 0x0000)), '030730000000035d', 'Info (revision)');
  assert.is(hex(buildCommand(0x02, 0x80, 0x0000)), '03070280000009ad', 'Read config block 0');
  const nonce = buildCommand(0x16, 0x43, 0, new Uint8Array(32).fill(0xab));
  assert.is(nonce.length, 1 + 39);
  assert.is(hex(nonce.subarray(0, 6)), '032716430000', 'Nonce pass-through: count 39, param2 little-endian');
  assert.is(hex(nonce.subarray(6, 38)), 'ab'.repeat(32));
  assert.is(checkResponse(nonce.subarray(1)), RESPONSE_OK, 'its CRC checks like a response');
  assert.is(hex(buildCommand(0x40, 0x04, 0xffff).subarray(4, 6)), 'ffff', 'GenKey TempKey key id');
});

packet('addresses: config/OTP block<<3|word, data block<<8|slot<<3|word', () => {
  assert.is(zoneAddress(ZONE_CONFIG, 0, 2, 5), 0x15, 'config bytes 84..87');
  assert.is(zoneAddress(ZONE_DATA, 8, 2, 0), 0x0240, 'slot 8 block 2');
  assert.is(zoneAddress(ZONE_DATA, 15, 0, 3), 0x007b);
});

packet('responses: a packet, nothing (NACK, 0x00 or 0xFF bytes), or a bad CRC', () => {
  assert.is(checkResponse(bytes('04 11 33 43')), RESPONSE_OK);
  assert.is(checkResponse(new Uint8Array(7)), RESPONSE_EMPTY);
  assert.is(checkResponse(new Uint8Array(7).fill(0xff)), RESPONSE_EMPTY);
  assert.is(checkResponse(bytes('04 11 33 42')), RESPONSE_BAD_CRC);
  assert.is(checkResponse(bytes('23 00')), RESPONSE_EMPTY, 'a count longer than what was read is no packet');
  assert.match(statusName(0x0f), 'execution error');
  assert.match(statusName(0xff), 'CRC');
  assert.match(statusName(0x42), 'unknown status 0x42');
});

packet.run();

// ---------------------------------------------------------------------------------------------
const config = suite('se config zone + slot map');

config('slot permissions read back as the model (and the datasheet) understand them', () => {
  const c = provisioningConfig(factoryConfig(bytes('0123 aabbccddeeff ee')));
  const slotConfig = (slot: number) => parseSlotConfig(c[20 + 2 * slot] | (c[21 + 2 * slot] << 8));
  const keyConfig = (slot: number) => parseKeyConfig(c[96 + 2 * slot] | (c[97 + 2 * slot] << 8));
  const identity = slotConfig(IDENTITY_SLOT);
  assert.ok(
    identity.isSecret &&
      !identity.externalSignatures &&
      identity.internalSignatures &&
      !identity.ecdhPermitted &&
      identity.genKeyAllowed,
    'identity slot signs internal messages (attestations) only',
  );
  assert.is(identity.writeAccess, 'never');
  for (const slot of [IDENTITY_SLOT, ...READING_KEY_SLOTS, ...TRADING_RING]) {
    const s = slotConfig(slot);
    if (slot !== IDENTITY_SLOT)
      assert.ok(
        s.isSecret && s.externalSignatures && !s.internalSignatures && !s.ecdhPermitted && s.genKeyAllowed,
        `slot ${slot} signs external messages only`,
      );
    assert.is(s.writeAccess, 'never', `slot ${slot}: no Write of a key`);
    const k = keyConfig(slot);
    assert.ok(k.private && k.pubInfo && k.keyType === 4 && !k.lockable, `slot ${slot} holds a P-256 private key`);
  }
  const mix = slotConfig(MIX_SLOT);
  assert.ok(
    mix.isSecret && mix.ecdhPermitted && !mix.ecdhToNextSlot && !mix.externalSignatures && mix.genKeyAllowed,
    'mix key: ECDH in the clear only',
  );
  assert.ok(keyConfig(MIX_SLOT).private);
  const data = slotConfig(DATA_SLOT);
  assert.ok(
    !data.isSecret &&
      data.writeAccess === 'always' &&
      !keyConfig(DATA_SLOT).private &&
      keyConfig(DATA_SLOT).keyType === 7,
    'data slot: clear',
  );
  assert.is(
    hex(c.subarray(0, 16)),
    hex(factoryConfig(bytes('0123 aabbccddeeff ee')).subarray(0, 16)),
    'serial and revision kept',
  );
  assert.is(hex(c.subarray(84, 88)), '00005555', 'UserExtra, Selector and lock bytes kept');
  assert.is(c[16], 0xc0, 'I2C address 0x60');
  assert.is(c[19], 0x00, 'ChipMode: 1.3 s watchdog, M0');
  assert.is(hex(c.subarray(52, 68)), 'ffffffff00000000'.repeat(2), 'counters at 0');
  assert.is(hex(c.subarray(90, 92)), '0000', 'ChipOptions: ECDH output may be clear');
});

config('our configuration is told apart from a foreign one, whatever the counters say', () => {
  const ours = provisioningConfig(factoryConfig(bytes('0123 010203040506 ee')));
  assert.ok(hasProvisioningConfig(ours));
  const counted = ours.slice();
  counted.set(bytes('7fffffff00000000'), 52);
  counted[87] = 0x00;
  assert.ok(hasProvisioningConfig(counted), 'counter values and lock bytes are not policy');
  const foreign = ours.slice();
  foreign[20] = 0x87; // identity key would also sign internal messages and do ECDH
  assert.not.ok(hasProvisioningConfig(foreign));
  assert.not.ok(hasProvisioningConfig(factoryConfig(bytes('0123 010203040506 ee'))));
});

config('slot map: every slot has one role; reading keys alternate; the trading ring wraps past slot 8', () => {
  const roles = [IDENTITY_SLOT, ...READING_KEY_SLOTS, MIX_SLOT, DATA_SLOT, ...TRADING_RING].sort((a, b) => a - b);
  assert.equal(
    roles,
    Array.from({ length: 16 }, (_, i) => i),
  );
  assert.equal([0, 1, 2, 3].map(readingSlotForRotation), [1, 2, 1, 2]);
  assert.is(nextTradingSlot(4), 5);
  assert.is(nextTradingSlot(7), 9);
  assert.is(nextTradingSlot(15), 4);
  assert.throws(() => nextTradingSlot(8), /not in the trading ring/);
  assert.throws(() => readingSlotForRotation(-1), /whole number/);
});

config.run();

// ---------------------------------------------------------------------------------------------
// The driver against the model, over test/support/espruino-i2c.ts (software I2C as the firmware sets it up).

/** Flips one bit in chosen transfers: the fault is on the wires, between driver and chip. */
class NoisyI2C implements SecureElementBus {
  /** Commands (writes starting with word address 0x03) to corrupt, counted from now. */
  corruptCommands = 0;
  /** Responses (reads of a response's rest longer than the 4-byte wake reply) to corrupt. */
  corruptResponses = 0;
  constructor(private readonly inner: SecureElementBus) {}
  wake(): void {
    this.inner.wake();
  }
  writeTo(address: number, data: Uint8Array | number[]): void {
    const payload = Uint8Array.from(data);
    if (payload[0] === 0x03 && payload.length > 4 && this.corruptCommands > 0) {
      this.corruptCommands--;
      payload[4] ^= 0x10;
    }
    this.inner.writeTo(address, payload);
  }
  readFrom(address: number, n: number): Uint8Array {
    const got = this.inner.readFrom(address, n);
    // The driver reads a response's count byte, then the rest: corrupt the rest's first byte.
    if (n > 4 && this.corruptResponses > 0) {
      this.corruptResponses--;
      got[0] ^= 0x01;
    }
    return got;
  }
}

interface Rig {
  clock: SimClock;
  chip: Atecc608;
  bus: EmulatedI2CBus;
  noisy: NoisyI2C;
  se: SecureElement;
  close(): void;
}

function rig(chip?: (clock: SimClock) => Atecc608, speed = 1): Rig {
  const clock = new SimClock({ speed });
  const bus = new EmulatedI2CBus(() => clock.now());
  const device = chip ? chip(clock) : new Atecc608({ clock });
  bus.attach(0x60, device);
  const noisy = new NoisyI2C(espruinoI2C(bus));
  return { clock, chip: device, bus, noisy, se: new SecureElement(noisy), close: () => clock.close() };
}

function expectError(fn: () => unknown, command: string, status: number, message?: RegExp): SecureElementError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, SecureElementError);
    const err = e as SecureElementError;
    assert.is(err.command, command, err.message);
    assert.is(err.status, status, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
  throw new Error(`expected a SecureElementError from ${command}`);
}

/** Provisions like the field tool will: config, config lock, keys, data lock. */
function provision(se: SecureElement): { identity: Uint8Array; mix: Uint8Array } {
  se.writeConfigZone(provisioningConfig(se.readConfigZone()));
  se.lockConfig(provisioningConfig(se.readConfigZone()));
  const identity = se.genKey(IDENTITY_SLOT);
  const mix = se.genKey(MIX_SLOT);
  for (const slot of READING_KEY_SLOTS) se.genKey(slot);
  se.lockData();
  return { identity, mix };
}

function nodeVerifies(pub64: Uint8Array, message: string, signature: Uint8Array): boolean {
  const key = createPublicKey({
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: Buffer.from(pub64.subarray(0, 32)).toString('base64url'),
      y: Buffer.from(pub64.subarray(32)).toString('base64url'),
    },
    format: 'jwk',
  });
  return nodeVerify('sha256', Buffer.from(message), { key, dsaEncoding: 'ieee-p1363' }, signature);
}

const uncompressed = (pub64: Uint8Array) => Uint8Array.of(4, ...pub64);

const driver = suite('se driver vs ATECC608 model');

driver('factory-new chip: info, random, config zone, lock state', () => {
  const r = rig();
  assert.is(hex(r.se.info()), '00006003', 'ATECC608B revision');
  assert.is(
    hex(r.se.random()),
    'ffff0000'.repeat(8),
    'an unconfigured chip returns its fixed test pattern, not random bytes',
  );
  const cfg = r.se.readConfigZone();
  assert.is(hex(cfg.subarray(0, 2)), '0123', 'serial number starts 01 23');
  assert.is(cfg[12], 0xee);
  assert.equal(r.se.lockState(), { config: false, data: false });
  assert.not.ok(hasProvisioningConfig(cfg));
  r.close();
});

driver(
  'provisioning: write and lock the config, generate keys, lock data; locked zones refuse writes with 0x0F',
  () => {
    const r = rig();
    const wanted = provisioningConfig(r.se.readConfigZone());
    r.se.writeConfigZone(wanted);
    assert.is(hex(r.se.readConfigZone()), hex(wanted), 'config reads back as written');
    const wrong = wanted.slice();
    wrong[19] = 0x04;
    expectError(() => r.se.lockConfig(wrong), 'lock config', 0x0f, /execution error/);
    assert.equal(
      r.se.lockState(),
      { config: false, data: false },
      'a config that differs from the expected one is not locked',
    );
    r.se.lockConfig(wanted);
    assert.equal(r.se.lockState(), { config: true, data: false });
    assert.ok(hasProvisioningConfig(r.se.readConfigZone()));
    const a = r.se.random();
    assert.is(a.length, 32);
    assert.is.not(hex(a), hex(r.se.random()), 'random once the config is locked');
    expectError(() => r.se.writeConfigZone(wanted), 'write', 0x0f, /refused/);
    expectError(() => r.se.lockConfig(wanted), 'lock config', 0x0f);
    const identity = r.se.genKey(IDENTITY_SLOT);
    assert.is(hex(r.se.publicKey(IDENTITY_SLOT)), hex(identity), 'public key recomputed from the slot');
    r.se.genKey(MIX_SLOT);
    r.se.write(ZONE_DATA, DATA_SLOT, 0, 0, new Uint8Array(32).fill(7));
    r.se.lockData();
    assert.equal(r.se.lockState(), { config: true, data: true });
    expectError(() => r.se.lockData(), 'lock data', 0x0f);
    expectError(() => r.se.write(ZONE_DATA, IDENTITY_SLOT, 0, 0, new Uint8Array(32)), 'write', 0x0f, /status 0x0f/);
    expectError(() => r.se.read(ZONE_DATA, IDENTITY_SLOT, 0, 0, 32), 'read', 0x0f, /execution error/);
    assert.is(hex(r.se.read(ZONE_DATA, DATA_SLOT, 0, 0, 32)), '07'.repeat(32), 'data slot written before the lock');
    r.se.write(ZONE_DATA, DATA_SLOT, 12, 1, bytes('cafef00d'));
    assert.is(
      hex(r.se.read(ZONE_DATA, DATA_SLOT, 12, 1, 4)),
      'cafef00d',
      '4-byte write and read in the data slot after the lock',
    );
    assert.is(
      hex(r.se.read(ZONE_DATA, DATA_SLOT, 12, 0, 32).subarray(0, 12)),
      '00000000cafef00d00000000',
      'last block of the 416-byte slot',
    );
    r.close();
  },
);

driver('sign (external digest) verifies with @noble/curves and node:crypto; verifyExternal agrees', () => {
  const r = rig();
  provision(r.se);
  const identity = r.se.publicKey(READING_KEY_SLOTS[0]);
  const message = 'veilgrid reading 42';
  const digest = sha256(message);
  const signature = r.se.sign(READING_KEY_SLOTS[0], digest);
  assert.is(signature.length, 64);
  assert.ok(p256.verify(signature, digest, uncompressed(identity), { prehash: false, lowS: false }), '@noble/curves');
  assert.ok(nodeVerifies(identity, message, signature), 'node:crypto');
  assert.ok(r.se.verifyExternal(digest, signature, identity), 'the chip verifies its own signature');
  const tampered = digest.slice();
  tampered[0] ^= 1;
  assert.not.ok(r.se.verifyExternal(tampered, signature, identity), 'miscompare is false, not an error');
  const host = p256.keygen();
  const hostSig = p256.sign(digest, host.secretKey, { prehash: false, format: 'compact' });
  assert.ok(r.se.verifyExternal(digest, hostSig, p256.getPublicKey(host.secretKey, false).slice(1)));
  const reading = r.se.sign(READING_KEY_SLOTS[1], digest);
  assert.ok(
    p256.verify(reading, digest, uncompressed(r.se.publicKey(READING_KEY_SLOTS[1])), { prehash: false, lowS: false }),
  );
  expectError(() => r.se.sign(MIX_SLOT, digest), 'sign', 0x0f, /refused/);
  expectError(() => r.se.sign(DATA_SLOT, digest), 'sign', 0x0f);
  expectError(() => r.se.sign(IDENTITY_SLOT, digest), 'sign', 0x0f, /refused/);
  r.close();
});

driver('attestKey: the identity key attests a reading key the chip holds; the host recomputes the message', () => {
  const r = rig();
  const { identity } = provision(r.se);
  const slot = READING_KEY_SLOTS[1];
  const nonce = sha256("a key certificate's Sig_structure");
  const attested = r.se.attestKey(IDENTITY_SLOT, slot, nonce);
  assert.equal(attested.publicKey, r.se.publicKey(slot), 'the public key of the key in the slot');
  const message = attestationMessage(nodeSha256, nonce, slot, uncompressed(attested.publicKey));
  assert.ok(
    p256.verify(attested.signature, sha256(message), uncompressed(identity), { prehash: false, lowS: false }),
    "signed by the identity key over the chip's message",
  );
  assert.not.ok(
    p256.verify(
      attested.signature,
      sha256(attestationMessage(nodeSha256, nonce, READING_KEY_SLOTS[0], uncompressed(attested.publicKey))),
      uncompressed(identity),
      { prehash: false, lowS: false },
    ),
    'the slot is part of what is signed',
  );
  expectError(() => r.se.attestKey(MIX_SLOT, slot, nonce), 'sign internal', 0x0f, /refused/);
  r.close();
});

driver('ECDH: mix slot and TempKey give the shared x in the clear; identity slot refuses', () => {
  const r = rig();
  const { mix } = provision(r.se);
  const peer = p256.keygen();
  const peerPub = p256.getPublicKey(peer.secretKey, false).slice(1);
  const expectedMix = p256.getSharedSecret(peer.secretKey, uncompressed(mix)).slice(1, 33);
  assert.is(hex(r.se.ecdh(MIX_SLOT, peerPub)), hex(expectedMix));
  expectError(() => r.se.ecdh(IDENTITY_SLOT, peerPub), 'ecdh', 0x0f);
  const ephemeral = r.se.genTempKey();
  // A signature in between uses the message digest buffer and leaves TempKey's key alone.
  r.se.sign(READING_KEY_SLOTS[0], sha256('in between'));
  const shared = r.se.ecdh('tempkey', peerPub);
  assert.is(hex(shared), hex(p256.getSharedSecret(peer.secretKey, uncompressed(ephemeral)).slice(1, 33)));
  r.se.sleep();
  // The driver knows the chip slept (it put it to sleep), so it does not send a command the chip would refuse.
  expectError(() => r.se.ecdh('tempkey', peerPub), 'ecdh tempkey', -1, /TempKey was lost/);
  r.close();
});

driver('Nonce pass-through into TempKey is accepted; bad lengths are refused before the bus', () => {
  const r = rig();
  provision(r.se);
  r.se.nonce(NONCE_TARGET_TEMPKEY, sha256('x'));
  const before = r.se.stats.commands;
  expectError(() => r.se.nonce(NONCE_TARGET_TEMPKEY, new Uint8Array(31)), 'nonce', -1, /32 bytes/);
  expectError(() => r.se.sign(16, sha256('x')), 'sign', -1, /slot must be 0..15/);
  assert.is(r.se.stats.commands, before);
  r.close();
});

driver('monotonic counters: read, increment, independent, kept across a power cycle of the chip', () => {
  let saved: unknown;
  const r = rig();
  assert.is(r.se.counter(0, false), 0);
  assert.is(r.se.counter(0, true), 1);
  assert.is(r.se.counter(0, true), 2);
  assert.is(r.se.counter(1, false), 0);
  assert.is(r.se.counter(1, true), 1);
  assert.is(r.se.counter(0, false), 2);
  saved = r.chip.toJSON();
  r.close();
  const again = rig((clock) => Atecc608.fromJSON(saved, { clock }));
  assert.is(again.se.counter(0, false), 2);
  assert.is(again.se.counter(1, false), 1);
  again.close();
});

driver('busy chip: the driver polls the count byte through the execution time (GenKey 115 ms, 0.16 ms a poll)', () => {
  const r = rig();
  r.se.writeConfigZone(provisioningConfig(r.se.readConfigZone()));
  r.se.lockConfig(provisioningConfig(r.se.readConfigZone()));
  const before = r.se.stats.busyPolls;
  r.se.genKey(IDENTITY_SLOT);
  const polls = r.se.stats.busyPolls - before;
  // One byte read by software I2C at 100 kHz: 20 bits (start, address, data, stop) of four 2 us steps.
  assert.ok(polls > 115 / 0.17 && polls < 115 / 0.15, `GenKey polled ${polls} times`);
  r.close();
});

driver('bad CRC on a command: the chip answers 0xFF, the driver sends it again; persistent noise is reported', () => {
  const r = rig();
  r.noisy.corruptCommands = 1;
  assert.is(r.se.random().length, 32);
  assert.is(r.se.stats.resends, 1);
  r.noisy.corruptCommands = 100;
  expectError(() => r.se.random(), 'random', 0xff, /after 3 attempts.*CRC or communication error/);
  r.close();
});

driver('bad CRC on a response: read again from the start of the output buffer, never re-executed', () => {
  const r = rig();
  r.noisy.corruptResponses = 1;
  assert.is(r.se.counter(0, true), 1);
  assert.is(r.se.stats.rereads, 1);
  assert.is(r.se.counter(0, false), 1, 'the increment ran once');
  r.noisy.corruptResponses = 100;
  expectError(() => r.se.counter(0, true), 'counter increment', -1, /CRC did not match 3 times/);
  r.noisy.corruptResponses = 0;
  assert.is(r.se.counter(0, false), 2, 'the failed increment ran exactly once');
  r.chip.injectFault('response-crc'); // corrupted in the chip's own output buffer: every read sees it
  expectError(() => r.se.counter(0, true), 'counter increment', -1, /not repeated/);
  assert.is(r.se.counter(0, false), 3);
  r.close();
});

driver('wake failures: a missed wake is retried; self-test failure and a missing chip are reported', () => {
  const r = rig();
  r.chip.injectFault('missed-wake');
  assert.is(hex(r.se.info()), '00006003');
  assert.is(r.se.stats.wakes, 2);
  r.chip.injectFault('self-test-failure');
  expectError(() => r.se.info(), 'wake', 0x07, /self-test/);
  r.close();
  const empty = rig();
  const detached = new SecureElement(empty.noisy, { address: 0x61 });
  expectError(() => detached.random(), 'wake', -1, /no wake reply.*0x61.*wiring/);
  empty.close();
});

driver('a chip left awake, or put to sleep by its watchdog, is woken again for the next command', async () => {
  const r = rig(undefined, 1000);
  r.se.wake(); // awake, not idle: the next wake pulse is ignored and the old reply is still there
  assert.is(r.se.info().length, 4);
  r.se.wake();
  await new Promise<void>((resolve) => r.clock.setTimeout(resolve, 2000)); // 1.3 s watchdog: asleep
  assert.is(r.chip.state, 'asleep');
  assert.is(r.se.info().length, 4);
  r.close();
});

/**
 * A rig whose driver has a bus clock: waits move the firmware's time ahead of the shared clock, and the
 * bus (so the chip) sees that time, as on a board where the CPU spins on getTime().
 */
function clockedRig(): Rig & { waitMs(ms: number): void } {
  const clock = new SimClock({ speed: 1 });
  let ahead = 0;
  const bus = new EmulatedI2CBus(() => Math.max(clock.now(), ahead));
  const nowMs = () => Math.max(clock.now(), bus.time, ahead) * 1000;
  const waitMs = (ms: number) => {
    ahead = nowMs() / 1000 + ms / 1000;
  };
  const device = new Atecc608({ clock });
  bus.attach(0x60, device);
  const noisy = new NoisyI2C(espruinoI2C(bus));
  const se = new SecureElement(noisy, { clock: { nowMs, waitMs } });
  return { clock, chip: device, bus, noisy, se, waitMs, close: () => clock.close() };
}

driver(
  "with a bus clock: execution times are waited out, not polled, and a reading's five commands take one wake",
  () => {
    const r = clockedRig();
    provision(r.se);
    const readingKey = uncompressed(r.se.publicKey(READING_KEY_SLOTS[0]));
    const peer = p256.keygen();
    const peerPub = p256.getPublicKey(peer.secretKey, false).slice(1);
    r.waitMs(2000); // the watchdog has put the chip to sleep
    const before = { ...r.se.stats };
    const digest = sha256('veilgrid reading 43');
    const signature = r.se.sign(READING_KEY_SLOTS[0], digest);
    const ephemeral = r.se.genTempKey();
    const shared = r.se.ecdh('tempkey', peerPub);
    assert.ok(p256.verify(signature, digest, readingKey, { prehash: false, lowS: false }));
    assert.is(hex(shared), hex(p256.getSharedSecret(peer.secretKey, uncompressed(ephemeral)).slice(1, 33)));
    assert.is(r.se.stats.commands - before.commands, 5, 'Random, Nonce, Sign, GenKey, ECDH');
    assert.is(r.se.stats.wakes - before.wakes, 1, 'one wake for the burst');
    assert.is(r.se.stats.busyPolls - before.busyPolls, 0, 'no poll found the chip busy');
    // Long bursts wake the chip again before its watchdog could end a command (or lose TempKey).
    for (let i = 0; i < 12; i++) assert.is(r.se.sign(READING_KEY_SLOTS[0], digest).length, 64);
    assert.ok(r.se.stats.wakes - before.wakes >= 4, `${r.se.stats.wakes - before.wakes} wakes for 13 signatures`);
    assert.is(r.se.stats.resends, 0, 'no command reached a sleeping chip');
    r.close();
  },
);

driver.run();
