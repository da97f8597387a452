// The ATECC608 model driven with raw bytes on the emulated I2C bus, as a driver would drive the
// chip: wake, word addresses, command packets with CRC, polling reads while the chip is busy.

import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { p256 } from '@noble/curves/nist.js';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { Atecc608, WATCHDOG_SECONDS } from '../../boards/emulator/devices/atecc608/atecc608.ts';
import { crc16, crc16Bytes } from '../../boards/emulator/devices/atecc608/crc16.ts';
import { eepromPathFor } from '../../boards/emulator/devices/atecc608/persistence.ts';
import { COUNTER_MAX, encodeCounter } from '../../boards/emulator/devices/atecc608/zones.ts';
import { I2CBus } from '../../boards/emulator/pins.ts';

const ADDR = 0x60;
const OP = {
  READ: 0x02,
  WRITE: 0x12,
  NONCE: 0x16,
  LOCK: 0x17,
  RANDOM: 0x1b,
  COUNTER: 0x24,
  INFO: 0x30,
  GENKEY: 0x40,
  SIGN: 0x41,
  ECDH: 0x43,
  VERIFY: 0x45,
};

/** A repeatable RNG for the chip (SHA-256 in counter mode). */
function seededRandom(seed: number): (n: number) => Uint8Array {
  let counter = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 32) {
      const block = createHash('sha256').update(`seed ${seed} block ${counter++}`).digest();
      out.set(block.subarray(0, Math.min(32, n - i)), i);
    }
    return out;
  };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** A chip on a bus with a virtual time the test moves by hand. */
function rig(seed = 1) {
  const time = { t: 1000 };
  const clock = { now: () => time.t };
  const bus = new I2CBus(clock.now);
  const chip = new Atecc608({ clock, random: seededRandom(seed) });
  bus.attach(ADDR, chip);
  /** Lets virtual time pass beyond what the bus has already used up. */
  const elapse = (seconds: number) => {
    time.t = bus.time + seconds;
  };
  return { time, elapse, clock, bus, chip, ...driver(bus) };
}

function driver(bus: I2CBus) {
  /** Reads until the chip acknowledges (the way a polling driver waits). */
  function poll(n: number, maxPolls = 100000): Uint8Array {
    for (let i = 0; i < maxPolls; i++) {
      const r = bus.read(ADDR, n);
      if (r) return r;
    }
    throw new Error(`chip did not answer within ${maxPolls} polls`);
  }
  function wake(bitrate = 100000): Uint8Array {
    bus.configured = { bitrate };
    const acked = bus.write(0x00, Uint8Array.of(0x01));
    assert.is(acked, false, 'nobody acknowledges the general call');
    bus.configured = { bitrate: 400000 };
    return poll(4);
  }
  function packet(opcode: number, p1: number, p2: number, data: ArrayLike<number> = []): Uint8Array {
    const body = Uint8Array.of(7 + data.length, opcode, p1, p2 & 0xff, p2 >> 8, ...Array.from(data));
    return Uint8Array.of(0x03, ...body, ...crc16Bytes(body));
  }
  /** With the chip awake: sends a command, reads the response as CryptoAuthLib does (count byte first, then the rest), checks its CRC. */
  function transact(opcode: number, p1: number, p2: number, data: ArrayLike<number> = []): Uint8Array {
    assert.ok(bus.write(ADDR, packet(opcode, p1, p2, data)), 'command acknowledged');
    const count = poll(1)[0];
    const rest = bus.read(ADDR, count - 1)!;
    const response = Uint8Array.of(count, ...rest);
    assert.is(crc16(response.subarray(0, count - 2)), response[count - 2] | (response[count - 1] << 8), 'response CRC');
    return response.subarray(1, count - 2);
  }
  /** One command as calib_execute_command runs it: wake, send, receive, idle (so the watchdog never fires). */
  function command(opcode: number, p1: number, p2: number, data: ArrayLike<number> = []): Uint8Array {
    assert.is(hex(wake()), '04113343', 'wake reply');
    const response = transact(opcode, p1, p2, data);
    assert.ok(bus.write(ADDR, Uint8Array.of(0x02)), 'idle');
    return response;
  }
  /** The status byte of a response that has no data. */
  function statusOf(r: Uint8Array): number {
    assert.is(r.length, 1, `expected a status, got ${r.length} bytes`);
    return r[0];
  }
  function status(opcode: number, p1: number, p2: number, data: ArrayLike<number> = []): number {
    return statusOf(command(opcode, p1, p2, data));
  }
  return { poll, wake, packet, transact, command, statusOf, status };
}

type Rig = ReturnType<typeof rig>;

// SlotConfig / KeyConfig used by the provisioning tests (little-endian 16-bit values).
const PRIVATE_SIGN = 0x2081; // IsSecret, ReadKey bit 0 external signatures, WriteConfig 0b0010 GenKey allowed
const PRIVATE_ECDH = 0x2084; // IsSecret, ReadKey bit 2 ECDH (clear output), GenKey allowed
const PRIVATE_NO_GENKEY = 0x0081; // external signatures, but GenKey not allowed once data is locked
const PRIVATE_SIGN_INTERNAL = 0x2082; // IsSecret, ReadKey bit 1 internal signatures only, GenKey allowed
const DATA_OPEN = 0x0000; // readable, Write always
const DATA_SECRET = 0x0080; // IsSecret: not readable
const DATA_NEVER_WRITE = 0x2000; // readable, Write never
const KEY_P256_PRIVATE = 0x0033; // Private, PubInfo, P-256, Lockable
const KEY_DATA = 0x003c; // data, Lockable

const SLOTS: Record<number, [number, number]> = {
  0: [PRIVATE_SIGN, KEY_P256_PRIVATE],
  1: [PRIVATE_SIGN, KEY_P256_PRIVATE],
  2: [PRIVATE_SIGN_INTERNAL, KEY_P256_PRIVATE],
  3: [PRIVATE_ECDH, KEY_P256_PRIVATE],
  5: [PRIVATE_NO_GENKEY, KEY_P256_PRIVATE],
  8: [DATA_OPEN, KEY_DATA],
  9: [DATA_SECRET, KEY_DATA],
  10: [DATA_NEVER_WRITE, KEY_DATA],
};

function readConfig(r: Rig): Uint8Array {
  const out = new Uint8Array(128);
  for (let block = 0; block < 4; block++) out.set(r.command(OP.READ, 0x80, block << 3), block * 32);
  return out;
}

/** Writes SlotConfig/KeyConfig as CryptoAuthLib's write_config_zone does (words, skipping 84–87), locks config. */
function configure(r: Rig): Uint8Array {
  const config = readConfig(r);
  for (const [slot, [slotConfig, keyConfig]] of Object.entries(SLOTS)) {
    config[20 + 2 * Number(slot)] = slotConfig & 0xff;
    config[21 + 2 * Number(slot)] = slotConfig >> 8;
    config[96 + 2 * Number(slot)] = keyConfig & 0xff;
    config[97 + 2 * Number(slot)] = keyConfig >> 8;
  }
  for (let offset = 16; offset < 128; offset += 4) {
    if (offset === 84) continue;
    const address = ((offset >> 5) << 3) | ((offset & 31) >> 2);
    assert.is(r.status(OP.WRITE, 0x00, address, config.subarray(offset, offset + 4)), 0x00, `config word at ${offset}`);
  }
  assert.equal(readConfig(r), config);
  return config;
}

function lockConfig(r: Rig, config: Uint8Array): void {
  assert.is(r.status(OP.LOCK, 0x00, crc16(config) ^ 0x1), 0x0f, 'wrong summary CRC refused');
  assert.is(r.status(OP.LOCK, 0x00, crc16(config)), 0x00);
}

const SLOT8 = Uint8Array.from({ length: 32 }, (_, i) => i + 1);

/** Configured, config locked, slot 8 written, data locked (with the summary CRC). */
function provisioned(seed = 1): Rig {
  const r = rig(seed);
  lockConfig(r, configure(r));
  assert.is(r.status(OP.WRITE, 0x82, 8 << 3, SLOT8), 0x00, 'slot 8 block 0');
  // Summary: all slots that are not private keys, then OTP (all zero but slot 8's first block).
  const sizes = Array.from({ length: 16 }, (_, s) => (s < 8 ? 36 : s === 8 ? 416 : 72));
  const parts: Uint8Array[] = [];
  sizes.forEach((size, slot) => {
    if (SLOTS[slot]?.[1] === KEY_P256_PRIVATE) return;
    const bytes = new Uint8Array(size);
    if (slot === 8) bytes.set(SLOT8);
    parts.push(bytes);
  });
  parts.push(new Uint8Array(64));
  assert.is(r.status(OP.LOCK, 0x01, crc16(Buffer.concat(parts))), 0x00, 'data zone locked with summary');
  return r;
}

function nonceDigest(r: Rig, digest: Uint8Array, target = 0x00): void {
  assert.is(r.status(OP.NONCE, 0x03 | target, 0, digest), 0x00);
}

function nodeKey(pubXY: Uint8Array) {
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  return createPublicKey({
    key: { kty: 'EC', crv: 'P-256', x: b64(pubXY.subarray(0, 32)), y: b64(pubXY.subarray(32)) },
    format: 'jwk',
  });
}

const uncompressed = (xy: Uint8Array) => Uint8Array.of(0x04, ...xy);

// ---------------------------------------------------------------------------------------------

const protocol = suite('atecc608 protocol');

protocol('CRC-16 check values: 04 11 → 33 43, 07 1B 00 00 00 → 24 CD', () => {
  assert.is(hex(crc16Bytes(Uint8Array.of(0x04, 0x11))), '3343');
  assert.is(hex(crc16Bytes(Uint8Array.of(0x07, 0x1b, 0x00, 0x00, 0x00))), '24cd');
});

protocol(
  'asleep it acknowledges nothing; a general call at 100 kHz wakes it, 1.5 ms later it answers 04 11 33 43',
  () => {
    const r = rig();
    assert.is(r.bus.read(ADDR, 4), undefined);
    r.bus.configured = { bitrate: 400000 };
    r.bus.write(0x00, Uint8Array.of(0x01));
    assert.is(r.bus.read(ADDR, 4), undefined, 'a general call at 400 kHz holds SDA low for only 22.5 µs: no wake');
    r.bus.configured = { bitrate: 100000 };
    r.bus.write(0x00, Uint8Array.of(0x01));
    assert.is(r.bus.read(ADDR, 4), undefined, 'still waking (tWHI)');
    r.elapse(0.0015);
    assert.is(hex(r.bus.read(ADDR, 4)!), '04113343');
    assert.is(r.chip.state, 'awake');
  },
);

protocol('bad CRC and wrong count are answered at once with status 0xFF', () => {
  const r = rig();
  r.wake();
  const p = r.packet(OP.RANDOM, 0, 0);
  p[p.length - 1] ^= 0x01;
  assert.ok(r.bus.write(ADDR, p));
  assert.is(hex(r.bus.read(ADDR, 4)!), hex(Uint8Array.of(0x04, 0xff, ...crc16Bytes(Uint8Array.of(0x04, 0xff)))));
  const short = r.packet(OP.RANDOM, 0, 0);
  short[1] = 9; // count says 9, 7 bytes follow
  assert.ok(r.bus.write(ADDR, short));
  assert.is(r.bus.read(ADDR, 4)![1], 0xff);
});

protocol(
  'busy: reads get no data until the execution time has passed; the response can be re-read after word address 0x00',
  () => {
    const r = rig();
    r.wake();
    assert.ok(r.bus.write(ADDR, r.packet(OP.RANDOM, 0, 0)));
    assert.is(r.bus.read(ADDR, 35), undefined, 'busy');
    assert.is(r.bus.write(ADDR, Uint8Array.of(0x02)), false, 'writes are not acknowledged either');
    r.elapse(0.022);
    assert.is(r.bus.read(ADDR, 35), undefined, 'Random takes 23 ms');
    r.elapse(0.001);
    const first = r.bus.read(ADDR, 35)!;
    assert.is(first[0], 35);
    assert.ok(r.bus.write(ADDR, Uint8Array.of(0x00)));
    assert.equal(r.bus.read(ADDR, 35), first);
    assert.is(r.bus.read(ADDR, 2)![0], 0xff, 'past the end');
  },
);

protocol('polling alone lets bus time pass: a 115 ms GenKey completes after a bounded number of reads', () => {
  const r = provisioned();
  r.wake();
  assert.ok(r.bus.write(ADDR, r.packet(OP.GENKEY, 0x04, 0)));
  let polls = 0;
  while (!r.bus.read(ADDR, 1)) polls++;
  // A read the chip does not acknowledge is start + address + ACK bit + stop: 11 bit times, 27.5 µs at 400 kHz.
  assert.ok(polls > 4000 && polls < 4300, `polls ${polls}`);
});

protocol('watchdog: 1.3 s after the wake it sleeps and TempKey is gone; idle keeps TempKey', () => {
  const r = provisioned();
  r.command(OP.GENKEY, 0x04, 0);
  const digest = createHash('sha256').update('m').digest();
  r.wake();
  assert.is(r.statusOf(r.transact(OP.NONCE, 0x03, 0, digest)), 0x00);
  r.elapse(WATCHDOG_SECONDS);
  assert.is(r.bus.read(ADDR, 4), undefined, 'asleep');
  assert.is(r.chip.state, 'asleep');
  assert.is(hex(r.wake()), '04113343');
  assert.is(r.statusOf(r.transact(OP.SIGN, 0x80, 0)), 0x0f, 'TempKey cleared by the watchdog sleep');
  assert.is(r.statusOf(r.transact(OP.NONCE, 0x03, 0, digest)), 0x00);
  assert.ok(r.bus.write(ADDR, Uint8Array.of(0x02)), 'idle');
  r.elapse(5);
  assert.is(r.chip.state, 'idle');
  assert.is(hex(r.wake()), '04113343');
  assert.is(r.transact(OP.SIGN, 0x80, 0).length, 64, 'TempKey kept through idle');
  assert.ok(r.bus.write(ADDR, Uint8Array.of(0x01)), 'sleep');
  r.wake();
  assert.is(r.statusOf(r.transact(OP.SIGN, 0x80, 0)), 0x0f, 'TempKey cleared by sleep');
});

protocol('a command still executing when the watchdog fires is lost', () => {
  const r = provisioned();
  r.wake();
  r.elapse(WATCHDOG_SECONDS - 0.05);
  assert.ok(r.bus.write(ADDR, r.packet(OP.GENKEY, 0x04, 1)));
  r.elapse(0.2);
  assert.is(r.bus.read(ADDR, 1), undefined);
  assert.is(r.status(OP.GENKEY, 0x00, 1), 0x0f, 'no key was created in slot 1');
});

protocol('injected faults: missed wake, self-test failure reply, corrupted response CRC', () => {
  const r = rig();
  r.chip.injectFault('missed-wake');
  r.bus.write(0x00, Uint8Array.of(0x01));
  r.elapse(0.002);
  assert.is(r.bus.read(ADDR, 4), undefined);
  r.chip.injectFault('self-test-failure');
  assert.is(hex(r.wake()), '0407c440');
  r.chip.injectFault('response-crc');
  assert.ok(r.bus.write(ADDR, r.packet(OP.INFO, 0, 0)));
  const bad = r.poll(7);
  assert.is.not(crc16(bad.subarray(0, 5)), bad[5] | (bad[6] << 8));
  assert.ok(r.bus.write(ADDR, Uint8Array.of(0x02)), 'idle');
  assert.equal(Array.from(r.command(OP.INFO, 0, 0)), [0x00, 0x00, 0x60, 0x03], 'one-shot');
});

protocol('unknown opcode and bad parameters: parse error 0x03', () => {
  const r = rig();
  assert.is(r.status(0x47, 0x00, 0), 0x03);
  assert.is(r.status(OP.RANDOM, 0x00, 0, [1, 2, 3, 4]), 0x03);
  assert.is(r.status(OP.COUNTER, 0x00, 2), 0x03);
  assert.is(r.status(OP.READ, 0x80, 1), 0x03, '32-byte read at a word offset');
});

// ---------------------------------------------------------------------------------------------

const commands = suite('atecc608 commands');

commands('Info returns the 608B revision; config reads show the serial number 01 23 … EE', () => {
  const r = rig();
  assert.equal(Array.from(r.command(OP.INFO, 0x00, 0)), [0x00, 0x00, 0x60, 0x03]);
  const block0 = r.command(OP.READ, 0x80, 0);
  assert.equal(Array.from(block0.subarray(0, 2)), [0x01, 0x23]);
  assert.is(block0[12], 0xee);
  assert.equal(Array.from(r.command(OP.READ, 0x00, 0)), Array.from(block0.subarray(0, 4)), '4-byte read');
  assert.equal(Array.from(r.chip.serialNumber), [...block0.subarray(0, 4), ...block0.subarray(8, 13)]);
  const config = readConfig(r);
  assert.is(config[86], 0x55, 'data unlocked');
  assert.is(config[87], 0x55, 'config unlocked');
});

commands('Random: fixed FF FF 00 00 pattern until the config zone is locked, then the RNG', () => {
  const r = rig(7);
  assert.is(hex(r.command(OP.RANDOM, 0, 0)), 'ffff0000'.repeat(8));
  lockConfig(r, readConfig(r));
  const a = r.command(OP.RANDOM, 0, 0);
  const b = r.command(OP.RANDOM, 0, 0);
  assert.is(a.length, 32);
  assert.is.not(hex(a), hex(b));
  assert.is.not(hex(a), 'ffff0000'.repeat(8));
  const again = rig(7);
  lockConfig(again, readConfig(again));
  assert.is(hex(again.command(OP.RANDOM, 0, 0)), hex(a), 'seeded source is repeatable');
});

commands(
  'Write/Lock: config writes until locked, protected bytes refused, data rules before and after the data lock',
  () => {
    const r = rig();
    assert.is(r.status(OP.WRITE, 0x00, 0x00, [0, 0, 0, 0]), 0x0f, 'serial number bytes are read-only');
    assert.is(r.status(OP.WRITE, 0x00, (2 << 3) | 5, [0, 0, 0, 0]), 0x0f, 'bytes 84–87 only through UpdateExtra/Lock');
    assert.is(r.status(OP.WRITE, 0x82, 8 << 3, SLOT8), 0x0f, 'no data write before the config lock');
    assert.is(r.status(OP.GENKEY, 0x04, 0), 0x0f, 'no GenKey before the config lock');
    assert.is(r.status(OP.LOCK, 0x01, 0), 0x0f, 'data cannot lock before config');
    const config = configure(r);
    assert.is(r.status(OP.LOCK, 0x80, 0), 0x00, 'config lock without summary (0x80)');
    assert.is(r.status(OP.LOCK, 0x00, crc16(config)), 0x0f, 'locking twice');
    assert.is(r.status(OP.WRITE, 0x00, 5, [1, 2, 3, 4]), 0x0f, 'locked config zone refuses writes');
    assert.is(r.status(OP.WRITE, 0x02, 8 << 3, [1, 2, 3, 4]), 0x0f, 'only 32-byte writes before the data lock');
    assert.is(r.status(OP.WRITE, 0x82, 8 << 3, SLOT8), 0x00);
    assert.is(r.status(OP.READ, 0x82, 8 << 3), 0x0f, 'data zone unreadable before its lock');
    assert.is(r.status(OP.WRITE, 0x81, 0, new Uint8Array(32).fill(0xaa)), 0x00, 'OTP block 0');
    assert.is(r.status(OP.LOCK, 0x81, 0), 0x00, 'data lock without summary');
    assert.equal(r.command(OP.READ, 0x82, 8 << 3), SLOT8);
    assert.is(hex(r.command(OP.READ, 0x01, 0)), 'aaaaaaaa', 'OTP readable after the lock');
    assert.is(r.status(OP.WRITE, 0x81, 0, new Uint8Array(32)), 0x0f, 'OTP read-only after the lock');
    assert.is(r.status(OP.WRITE, 0x02, (8 << 3) | 1, [9, 9, 9, 9]), 0x00, 'Write always: 4-byte write');
    assert.is(hex(r.command(OP.READ, 0x02, (8 << 3) | 1)), '09090909');
    assert.is(r.status(OP.WRITE, 0x02, 10 << 3, [1, 2, 3, 4]), 0x0f, 'WriteConfig never');
    assert.is(r.status(OP.READ, 0x02, 9 << 3), 0x0f, 'secret slot not readable');
    assert.is(r.status(OP.READ, 0x02, 0 << 3), 0x0f, 'private key slot not readable');
    assert.is(r.status(OP.WRITE, 0x82, 0 << 3, new Uint8Array(32)), 0x0f, 'private key slot not writable');
    assert.is(r.status(OP.LOCK, 0x02 | (8 << 2), 0), 0x00, 'single slot lock');
    assert.is(r.status(OP.WRITE, 0x02, 8 << 3, [1, 2, 3, 4]), 0x0f, 'locked slot refuses writes');
    assert.is(r.status(OP.LOCK, 0x02 | (8 << 2), 0), 0x0f, 'slot already locked');
    assert.equal(Array.from(readConfig(r).subarray(86, 90)), [0x00, 0x00, 0xff, 0xfe]);
  },
);

commands(
  'GenKey: private key in a slot, public key recomputed, refusals for non-private and GenKey-forbidden slots',
  () => {
    const r = provisioned();
    const pub = r.command(OP.GENKEY, 0x04, 0);
    assert.is(pub.length, 64);
    assert.ok(p256.utils.isValidPublicKey(uncompressed(pub), false));
    assert.equal(r.command(OP.GENKEY, 0x00, 0), pub, 'public key recomputed from slot 0');
    assert.is.not(hex(r.command(OP.GENKEY, 0x04, 0)), hex(pub), 'a second GenKey replaces the key');
    assert.is(r.status(OP.GENKEY, 0x04, 8), 0x0f, 'slot 8 is not a private key slot');
    assert.is(r.status(OP.GENKEY, 0x04, 5), 0x0f, 'slot 5 forbids GenKey');
    assert.is(r.status(OP.GENKEY, 0x00, 1), 0x0f, 'slot 1 holds no key yet');
    assert.is(r.status(OP.GENKEY, 0x10, 0), 0x03, 'PubKey digest of a stored public key: not modelled');
  },
);

/** SHA-256 of the concatenated parts. */
function sha(...parts: Array<Uint8Array | number[]>): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(Uint8Array.from(p));
  return new Uint8Array(h.digest());
}

// The byte layouts below are written out from CryptoAuthLib (lib/host/atca_host.c atcah_gen_key_msg,
// atcah_sign_internal_msg), independently of the model and of firmware/src/protocol/key-attestation.ts.
commands("GenKey digest + Sign internal: the chip attests a key it holds, in CryptoAuthLib's message layout", () => {
  const r = provisioned();
  const config = readConfig(r);
  const sn = [...config.subarray(0, 4), ...config.subarray(8, 13)];
  const attester = r.command(OP.GENKEY, 0x04, 2);
  const pub = r.command(OP.GENKEY, 0x04, 1);
  assert.is(r.status(OP.GENKEY, 0x08, 1), 0x0f, 'digest mode needs a nonce in TempKey');
  const nonce = sha([1, 2, 3]);
  nonceDigest(r, nonce);
  assert.equal(r.command(OP.GENKEY, 0x08, 1), pub, 'digest mode returns the public key it hashed');
  // TempKey = SHA-256(nonce | 40 | mode | KeyID LE | SN[8] | SN[0:1] | 25 zeros | X || Y)
  const tempKey = sha(nonce, [0x40, 0x08, 0x01, 0x00, sn[8], sn[0], sn[1]], new Uint8Array(25), pub);
  const slot1Config = [config[22], config[23]];
  const slot1KeyConfig = [config[98], config[99]];
  const internalMessage = (mode: number, withSerial: boolean) => [
    ...tempKey,
    0x41,
    mode,
    0x02,
    0x00,
    ...slot1Config,
    ...slot1KeyConfig,
    0x01 | 0x10 | 0x40, // TempKeyFlags: KeyID 1, SourceFlag (input nonce), GenKeyData
    0x00,
    0x00,
    sn[8],
    ...(withSerial ? sn.slice(4, 8) : [0, 0, 0, 0]),
    sn[0],
    sn[1],
    ...(withSerial ? sn.slice(2, 4) : [0, 0]),
    0x01, // slot 1 not individually locked
    0x00,
    0x00,
  ];
  assert.is(internalMessage(0, false).length, 55);
  const signature = r.command(OP.SIGN, 0x00, 2);
  assert.ok(
    p256.verify(signature, sha(internalMessage(0x00, false)), uncompressed(attester), { prehash: false, lowS: false }),
    'Sign internal, serial number left out',
  );
  const withSerial = r.command(OP.SIGN, 0x40, 2);
  assert.ok(
    p256.verify(withSerial, sha(internalMessage(0x40, true)), uncompressed(attester), { prehash: false, lowS: false }),
    'Sign internal, serial number included',
  );
  // A random nonce clears SourceFlag; a public key made in the same GenKey (0x0C) is attested too.
  r.command(OP.NONCE, 0x00, 0, new Uint8Array(20));
  const fresh = r.command(OP.GENKEY, 0x0c, 1);
  assert.is.not(hex(fresh), hex(pub), '0x0C makes a new key');
  assert.equal(r.command(OP.GENKEY, 0x00, 1), fresh);

  assert.is(r.status(OP.SIGN, 0x80, 2), 0x0f, 'slot 2 does not sign external messages');
  nonceDigest(r, nonce);
  assert.is(
    r.status(OP.SIGN, 0x00, 2),
    0x0f,
    'Sign internal needs a GenKey digest in TempKey, not a pass-through nonce',
  );
  nonceDigest(r, nonce);
  r.command(OP.GENKEY, 0x08, 1);
  assert.is(r.status(OP.SIGN, 0x00, 0), 0x0f, 'slot 0 does not sign internal messages');
  assert.is(r.status(OP.SIGN, 0x01, 2), 0x03, 'Sign for Verify(Invalidate): not modelled');
});

commands('Sign external: refused without a pass-through TempKey; signatures verify with noble and node:crypto', () => {
  const r = provisioned();
  const pub = r.command(OP.GENKEY, 0x04, 0);
  assert.is(r.status(OP.SIGN, 0x80, 0), 0x0f, 'no TempKey');
  assert.is(r.command(OP.NONCE, 0x00, 0, new Uint8Array(20)).length, 32, 'random Nonce returns RandOut');
  assert.is(r.status(OP.SIGN, 0x80, 0), 0x0f, 'TempKey from a random Nonce is not an external message');
  let highS = 0;
  for (let i = 0; i < 8; i++) {
    const message = Buffer.from(`reading ${i}`);
    const digest = createHash('sha256').update(message).digest();
    nonceDigest(r, digest);
    const sig = r.command(OP.SIGN, 0x80, 0);
    assert.is(sig.length, 64);
    assert.ok(p256.verify(sig, digest, uncompressed(pub), { prehash: false, lowS: false }), 'noble');
    assert.ok(nodeVerify('sha256', message, { key: nodeKey(pub), dsaEncoding: 'ieee-p1363' }, sig), 'node:crypto');
    if (!p256.verify(sig, digest, uncompressed(pub), { prehash: false })) highS++;
  }
  assert.ok(highS > 0 && highS < 8, `S is not normalised (${highS}/8 high)`);
  const digest = createHash('sha256').update('from the message digest buffer').digest();
  nonceDigest(r, digest, 0x40);
  const sig = r.command(OP.SIGN, 0xa0, 0);
  assert.ok(p256.verify(sig, digest, uncompressed(pub), { prehash: false, lowS: false }));
  assert.is(r.status(OP.SIGN, 0x80, 3), 0x0f, 'slot 3 does not sign external messages');
  assert.is(r.status(OP.SIGN, 0x80, 8), 0x0f, 'slot 8 is not a key');
});

commands('Verify external: good 0x00, bad 0x01, public key off the curve 0x05', () => {
  const r = provisioned();
  const secret = p256.utils.randomSecretKey();
  const pubXY = p256.getPublicKey(secret, false).slice(1);
  const digest = createHash('sha256').update('verify me').digest();
  const sig = p256.sign(digest, secret, { prehash: false });
  nonceDigest(r, digest);
  assert.is(r.status(OP.VERIFY, 0x02, 0x0004, [...sig, ...pubXY]), 0x00);
  const tampered = sig.slice();
  tampered[10] ^= 1;
  assert.is(r.status(OP.VERIFY, 0x02, 0x0004, [...tampered, ...pubXY]), 0x01);
  const offCurve = pubXY.slice();
  offCurve[63] ^= 1;
  assert.is(r.status(OP.VERIFY, 0x02, 0x0004, [...sig, ...offCurve]), 0x05);
  nonceDigest(r, digest, 0x40);
  assert.is(r.status(OP.VERIFY, 0x22, 0x0004, [...sig, ...pubXY]), 0x00, 'message digest buffer');
  assert.is(r.status(OP.VERIFY, 0x02, 0x0000, [...sig, ...pubXY]), 0x03, 'key type must be P-256');
});

commands("ECDH: slot and TempKey keys give noble's shared X; refused where the slot config forbids it", () => {
  const r = provisioned();
  const mixPub = r.command(OP.GENKEY, 0x04, 3);
  const peer = p256.utils.randomSecretKey();
  const peerXY = p256.getPublicKey(peer, false).slice(1);
  const expected = p256.getSharedSecret(peer, uncompressed(mixPub), true).slice(1);
  assert.equal(r.command(OP.ECDH, 0x00, 3, peerXY), expected, 'compatibility mode, clear output');
  assert.equal(r.command(OP.ECDH, 0x0c, 3, peerXY), expected, 'output buffer');
  r.command(OP.GENKEY, 0x04, 0);
  assert.is(r.status(OP.ECDH, 0x00, 0, peerXY), 0x0f, 'slot 0 does not permit ECDH');
  assert.is(r.status(OP.ECDH, 0x00, 8, peerXY), 0x0f, 'slot 8 is not a key');
  assert.is(r.status(OP.ECDH, 0x0d, 0, peerXY), 0x0f, 'TempKey holds no private key');
  const ephemeralPub = r.command(OP.GENKEY, 0x04, 0xffff);
  const viaTempKey = r.command(OP.ECDH, 0x0d, 0, peerXY);
  assert.equal(viaTempKey, p256.getSharedSecret(peer, uncompressed(ephemeralPub), true).slice(1));
  assert.equal(r.command(OP.GENKEY, 0x00, 0xffff), ephemeralPub, 'public key of the TempKey private key');
  assert.is(r.status(OP.SIGN, 0x80, 0), 0x0f, 'a private key in TempKey is not a message');
  const offCurve = peerXY.slice();
  offCurve[0] ^= 1;
  assert.is(r.status(OP.ECDH, 0x00, 3, offCurve), 0x05);
  assert.is(r.status(OP.ECDH, 0x02, 3, peerXY), 0x0f, 'encrypted output not modelled');
});

commands('Counter: read, increment, monotonic across toJSON/fromJSON, refused past 2,097,151', () => {
  const r = provisioned();
  const read = (id: number) => Buffer.from(r.command(OP.COUNTER, 0x00, id)).readUInt32LE(0);
  assert.is(read(0), 0);
  for (let i = 1; i <= 40; i++) assert.is(Buffer.from(r.command(OP.COUNTER, 0x01, 0)).readUInt32LE(0), i);
  assert.is(read(1), 0, 'counters are independent');
  const restored = Atecc608.fromJSON(JSON.parse(JSON.stringify(r.chip.toJSON())), { clock: r.clock });
  const bus = new I2CBus(r.clock.now);
  bus.attach(ADDR, restored);
  const d = driver(bus);
  assert.is(Buffer.from(d.command(OP.COUNTER, 0x00, 0)).readUInt32LE(0), 40);
  assert.is(Buffer.from(d.command(OP.COUNTER, 0x01, 0)).readUInt32LE(0), 41);

  const nearMax = rig();
  assert.is(nearMax.status(OP.WRITE, 0x00, (1 << 3) | 5, encodeCounter(COUNTER_MAX - 1).subarray(0, 4)), 0x00);
  assert.is(nearMax.status(OP.WRITE, 0x00, (1 << 3) | 6, encodeCounter(COUNTER_MAX - 1).subarray(4, 8)), 0x00);
  assert.is(Buffer.from(nearMax.command(OP.COUNTER, 0x01, 0)).readUInt32LE(0), COUNTER_MAX);
  assert.is(nearMax.status(OP.COUNTER, 0x01, 0), 0x0f);
  assert.is(Buffer.from(nearMax.command(OP.COUNTER, 0x00, 0)).readUInt32LE(0), COUNTER_MAX);
});

commands('toJSON/fromJSON keeps keys and locks: the restored chip signs with the same identity key', () => {
  const r = provisioned();
  const pub = r.command(OP.GENKEY, 0x04, 0);
  const restored = Atecc608.fromJSON(r.chip.toJSON(), { clock: r.clock, random: seededRandom(9) });
  const bus = new I2CBus(r.clock.now);
  bus.attach(ADDR, restored);
  const d = driver(bus);
  assert.equal(d.command(OP.GENKEY, 0x00, 0), pub);
  const digest = createHash('sha256').update('after restore').digest();
  assert.is(d.status(OP.NONCE, 0x03, 0, digest), 0x00);
  assert.ok(p256.verify(d.command(OP.SIGN, 0x80, 0), digest, uncompressed(pub), { prehash: false, lowS: false }));
  assert.is(d.status(OP.READ, 0x02, 0), 0x0f, 'still a private key slot');
});

// ---------------------------------------------------------------------------------------------

const board = suite('atecc608 on the emulated board');

board('firmware wakes it with I2C1.writeTo(0, 1) at 100 kHz; counters persist in <flashPath>.atecc608.json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vg-atecc608-'));
  const clock = new SimClock({ speed: 1 });
  const flashPath = join(dir, 'meter.flash');
  const definition = loadBoardDefinition('esp32-meter');
  const hexArray = (b: Uint8Array) => `[${Array.from(b).join(',')}]`;
  const increment = driver(new I2CBus()).packet(OP.COUNTER, 0x01, 0).subarray(1);
  // A read the chip does not ACK (asleep, or busy) throws on the ESP32: it counts as "no data yet".
  const firmware = `
    function tryRead(n) {
      try { return I2C1.readFrom(0x60, n); } catch (e) { return [0]; }
    }
    function seWake() {
      I2C1.setup({ scl: D${definition.pins.i2cScl}, sda: D${definition.pins.i2cSda}, bitrate: 100000 });
      try { I2C1.writeTo(0, 1); } catch (e) {} // nobody ACKs the general call address: a NACK throws on the ESP32
      I2C1.setup({ scl: D${definition.pins.i2cScl}, sda: D${definition.pins.i2cSda}, bitrate: 400000 });
      var r = tryRead(4);
      for (var i = 0; i < 200 && r[0] !== 4; i++) r = tryRead(4);
      return r;
    }
    function seCommand(packet) {
      I2C1.writeTo(0x60, [3].concat(packet));
      var r = tryRead(1);
      for (var i = 0; i < 5000 && r[0] === 0; i++) r = tryRead(1);
      return [r[0]].concat([].slice.call(I2C1.readFrom(0x60, r[0] - 1)));
    }`;
  try {
    const first = new Board({ definition, clock, flashPath });
    first.powerOn();
    assert.is(first.evaluate(firmware).error, undefined);
    assert.is(first.evaluate('E.toString(seWake()) === "\\x04\\x11\\x33\\x43"').value, true);
    assert.is(first.evaluate(`seCommand(${hexArray(increment)}).slice(0, 5).join()`).value, '7,1,0,0,0');
    assert.is(first.evaluate(`seCommand(${hexArray(increment)}).slice(0, 5).join()`).value, '7,2,0,0,0');
    first.close();
    assert.ok(existsSync(eepromPathFor(flashPath)));

    const second = new Board({ definition, clock, flashPath });
    second.powerOn();
    second.evaluate(firmware);
    second.evaluate('seWake()');
    assert.is(second.evaluate(`seCommand(${hexArray(increment)}).slice(0, 5).join()`).value, '7,3,0,0,0');
    assert.is(hex(second.secureElement.serialNumber), hex(first.secureElement.serialNumber), 'same chip');
    second.close();
  } finally {
    clock.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

board(
  'software I2C (new I2C()): a missing ACK reads 0xFF and never throws; its general call wakes the chip at 10 kHz, not at 100 kHz',
  () => {
    const clock = new SimClock({ speed: 1 });
    const definition = loadBoardDefinition('esp32-meter');
    const b = new Board({ definition, clock });
    try {
      b.powerOn();
      const pins = `scl: D${definition.pins.i2cScl}, sda: D${definition.pins.i2cSda}`;
      assert.is(
        b.evaluate(`var fast = new I2C(); fast.setup({ ${pins}, bitrate: 100000 });
        var slow = new I2C(); slow.setup({ ${pins}, bitrate: 10000 }); 1`).error,
        undefined,
      );
      // Start plus a first 0 bit hold SDA low for five steps of 250000/bitrate us: 10 us at 100 kHz, 125 us at 10 kHz.
      assert.is(b.evaluate('fast.writeTo(0, 0); E.toString(fast.readFrom(0x60, 4))').value, '\xFF\xFF\xFF\xFF');
      // Then tWHI (1.5 ms) before the chip answers: 0xFF until then.
      const wake =
        'slow.writeTo(0, 0); var r = fast.readFrom(0x60, 4); for (var i = 0; i < 20 && r[0] === 255; i++) r = fast.readFrom(0x60, 4); E.toString(r)';
      assert.is(b.evaluate(wake).value, '\x04\x11\x33\x43');
      assert.is(
        b.evaluate('fast.writeTo(0x61, [2]); new I2C().readFrom(0x60, 2).length').value,
        2,
        'no setup: no pins, no error',
      );
    } finally {
      b.close();
      clock.close();
    }
  },
);

protocol.run();
commands.run();
board.run();
