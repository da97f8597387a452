// The console lock (issue 8 item 2), for real. The emulator's model of Espruino 2v29 (E.setPassword,
// E.lockConsole, TelnetServer), byte for byte as the real interpreter answers (the strings below were read
// off espruino-2v29-esp32like); then the attack on a provisioned emulated meter: its network console is
// off after boot, and on its USB console reading vg.config, or any other line, is refused without the
// console password, wrong passwords are refused, and the tools work with the right one; then the same
// firmware on the real interpreter (espruino-linux) locks its console at boot, answering the attack with
// the same bytes as the emulator.
import fs from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { startConsole, type RunningConsole } from '../../boards/emulator/console.ts';
import { createRig, unavailable, type Backend } from '../../boards/harness/meter-board.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { createDsoKey } from '../../host-tools/dso/dso-key.ts';
import { MeterRegistry } from '../../host-tools/dso/registry.ts';
import { initOperator } from '../../host-tools/operator/operator-key.ts';
import { ConsolePasswords } from '../../host-tools/provision/console-passwords.ts';
import { inProcessConsole, MeterConsoleError, openMeterConsole } from '../../boards/console/meter-console.ts';
import { ProvisionError, provisionMeter } from '../../host-tools/provision/provision.ts';
import { CONFIG_FILE, parseMeterConfig } from '../../firmware/src/protocol/meter-config.ts';
import { Client } from './console-client.ts';

const definition = loadBoardDefinition('esp32-meter');
const LOCKED = 'password>';
const REFUSED = '\r\n  Invalid password\r\npassword>';
const LOGGED_IN = '\r\n  Logged in.\r\n>';

/** True when nothing listens on 127.0.0.1:port (the connection is refused). */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

/** Waits (real time, bounded) until check() holds. */
async function eventually(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.unreachable(`gave up waiting: ${what}`);
}

// ------------------------------------------------------------------------------------------------
const model = suite<{
  clock?: SimClock;
  board?: Board;
  usb?: RunningConsole;
  network?: RunningConsole;
  clients: Client[];
}>('console lock: the emulator models Espruino 2v29', { clients: [] });

model.before.each(async (ctx) => {
  ctx.clock = new SimClock({ speed: 1 });
  ctx.board = new Board({ definition, clock: ctx.clock });
  ctx.usb = await startConsole(ctx.board, { port: 0 });
  ctx.network = await startConsole(ctx.board, { port: 0, kind: 'network' });
  ctx.board.powerOn(); // no firmware: nothing turns the network console off
  ctx.clients = [];
  await eventually(async () => !(await refused(ctx.network!.port)), 'the network console to listen after boot');
});

model.after.each(async (ctx) => {
  for (const client of ctx.clients) await client.close();
  await ctx.usb!.close();
  await ctx.network!.close();
  ctx.board!.close();
  ctx.clock!.close();
});

async function open(ctx: { clients: Client[] }, port: number): Promise<Client> {
  const client = await Client.open(port);
  ctx.clients.push(client);
  await client.waitFor('>');
  return client;
}

model(
  'every line is a password attempt until the password comes; replies as espruino-2v29 prints them',
  async (ctx) => {
    const usb = await open(ctx, ctx.usb!.port);
    assert.is(
      await usb.exchange('E.setPassword("abcdefghijkl");E.lockConsole()\n', LOCKED),
      'E.setPassword("abcdefghijkl");E.lockConsole()\r\n=undefined\r\npassword>',
    );
    assert.is(await usb.exchange('1+1\n', REFUSED), REFUSED, 'a line of code is a refused attempt, not echoed');
    // Ctrl-C, escape sequences and backspace are characters of the attempt, not editing.
    for (const attempt of ['\x03abcdefghijkl\n', '\x1b[Aabcdefghijkl\n', 'abcdefghijkx\babcdefghijkl\n']) {
      assert.is(await usb.exchange(attempt, REFUSED), REFUSED, JSON.stringify(attempt));
    }
    // Output in the middle of an attempt: Espruino gives the prompt back with what was typed so far.
    usb.send('abc');
    await new Promise((r) => setTimeout(r, 50)); // delivered
    const from = usb.received.length;
    ctx.board!.evaluate('setTimeout(function(){print("hi")},1)');
    assert.is(await usb.waitFor('\x1b[D\x1b[D\x1b[D', from), '\r\x1b[Jhi\r\npassword>abc\x1b[D\x1b[D\x1b[D');
    assert.is(await usb.exchange('\n', REFUSED), REFUSED);
    ctx.board!.evaluate('var touched = 0'); // the harness's back door, to see what runs
    assert.is(await usb.exchange('touched = 1\n', REFUSED), REFUSED);
    assert.is(ctx.board!.evaluate('touched').value, 0, 'nothing ran while locked');
    // \r and \n are each an Enter while locked: the password then an empty line.
    assert.is(await usb.exchange('abcdefghijkl\r\n', LOGGED_IN + '\r\n>'), LOGGED_IN + '\r\n>');
    assert.is(await usb.exchange('touched = 2\r\n', '=2\r\n>'), 'touched = 2\r\n=2\r\n>');
  },
);

model('one unlock opens every console of the board; the typed line stops at 20 characters', async (ctx) => {
  const usb = await open(ctx, ctx.usb!.port);
  const network = await open(ctx, ctx.network!.port);
  await usb.exchange('E.setPassword("abcdefghijklmnopqrst");E.lockConsole()\n', LOCKED);
  assert.is(await network.exchange('1\n', REFUSED), REFUSED, 'the network console is locked too');
  // 20 characters are kept, the rest dropped: the right 20 followed by more still unlock (as on the board).
  assert.is(await network.exchange('abcdefghijklmnopqrstXYZ\n', LOGGED_IN), LOGGED_IN);
  assert.ok((await usb.exchange('2+2\n', '=4\r\n>')).endsWith('=4\r\n>'), 'the USB console is open as well');
  // A password over 20 characters can never be typed.
  await usb.exchange('E.setPassword("abcdefghijklmnopqrstu");E.lockConsole()\n', LOCKED);
  assert.is(await usb.exchange('abcdefghijklmnopqrstu\n', REFUSED), REFUSED);
  assert.ok(ctx.board!.consoleLocked);
});

model(
  'the lock outlives load(), the password does not; power-on starts unlocked; no password, no lock',
  async (ctx) => {
    const usb = await open(ctx, ctx.usb!.port);
    ctx.board!.evaluate('var before = 1');
    await usb.exchange('E.setPassword("abcdefghijkl");E.lockConsole();setTimeout(function(){load()},10)\n', LOCKED);
    await eventually(() => ctx.board!.evaluate('typeof before').value === 'undefined', 'load() to run');
    assert.is(
      await usb.exchange('abcdefghijkl\n', REFUSED),
      REFUSED,
      'JSIS_PASSWORD_PROTECTED survives load(); the password was in RAM',
    );
    ctx.board!.powerCut();
    ctx.board!.powerOn();
    assert.not.ok(ctx.board!.consoleLocked);
    assert.ok(
      (await usb.exchange('E.lockConsole();3\n', '=3\r\n>')).endsWith('=3\r\n>'),
      'lockConsole without a password does nothing',
    );
    assert.ok(
      (await usb.exchange('E.setPassword("abcdefghijkl");E.setPassword();E.lockConsole();4\n', '=4\r\n>')).endsWith(
        '=4\r\n>',
      ),
      'setPassword() removes it',
    );
  },
);

model(
  'the network console is on from every boot until TelnetServer.setOptions({mode:"off"}); one client at a time',
  async (ctx) => {
    const first = await open(ctx, ctx.network!.port);
    const second = await open(ctx, ctx.network!.port);
    await eventually(() => first.socket.closed, 'the first client to be dropped');
    assert.match(
      await second.exchange('require("TelnetServer").setOptions(1)\n', '\r\n>'),
      /Uncaught Error: Expecting Object, got Number/,
    );
    assert.match(
      await second.exchange('require("TelnetServer").setOptions({mode:"of"})\n', '\r\n>'),
      /Uncaught Error: Unknown mode value/,
    );
    second.send('require("TelnetServer").setOptions({mode:"off"})\n');
    await eventually(() => refused(ctx.network!.port), 'the network console to stop listening');
    ctx.board!.evaluate('load()');
    await eventually(async () => !(await refused(ctx.network!.port)), 'load() to turn it on again');
    ctx.board!.powerCut();
    await eventually(() => refused(ctx.network!.port), 'a board without power to serve nothing');
  },
);

model.run();

// ------------------------------------------------------------------------------------------------
interface AttackRig {
  dir: string;
  clock: SimClock;
  board: Board;
  usb: RunningConsole;
  network: RunningConsole;
  operatorDir: string;
  registry: MeterRegistry;
}

const attack = suite<{ rig?: AttackRig }>('console lock: the attack on a provisioned emulated meter');
const PASSPHRASE = 'console lock test';
const shared: { dir: string; bundle: string; dsoPublicKey: Uint8Array } = {
  dir: '',
  bundle: '',
  dsoPublicKey: new Uint8Array(),
};

attack.before(async () => {
  shared.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-console-lock-'));
  const built = await buildFirmware({ board: 'esp32-meter', outFile: path.join(shared.dir, 'esp32-meter.js') });
  shared.bundle = fs.readFileSync(built.outFile, 'latin1');
  shared.dsoPublicKey = createDsoKey(path.join(shared.dir, 'dso-key.json')).publicKey;
});

attack.after(() => fs.rmSync(shared.dir, { recursive: true, force: true }));

attack.before.each(async (ctx) => {
  const dir = fs.mkdtempSync(path.join(shared.dir, 'rig-'));
  const clock = new SimClock({ speed: 1 });
  const board = new Board({ definition, clock, flashPath: path.join(dir, 'board.flash') });
  board.storage.write('.bootcde', shared.bundle);
  const usb = await startConsole(board, { port: 0 });
  const network = await startConsole(board, { port: 0, kind: 'network' });
  board.powerOn();
  const operatorDir = path.join(dir, 'operator');
  await initOperator({ dir: operatorDir, passphrase: PASSPHRASE });
  const registry = new MeterRegistry(':memory:');
  ctx.rig = { dir, clock, board, usb, network, operatorDir, registry };
  const technician = inProcessConsole(board);
  await provisionMeter(
    {
      meterId: 'meter-0007',
      feeder: 'feeder-1',
      operatorDir,
      passphrase: PASSPHRASE,
      dsoDb: registry,
      brokerDir: path.join(dir, 'broker'),
      broker: { host: '127.0.0.1', port: 1883 },
      dsoPublicKey: shared.dsoPublicKey,
    },
    technician,
  );
  await technician.close(); // locks the console the tool unlocked after the meter restarted
  assert.ok(board.consoleLocked, 'the provisioned meter is locked once the tool is done');
});

attack.after.each(async (ctx) => {
  const rig = ctx.rig!;
  await rig.usb.close();
  await rig.network.close();
  rig.board.close();
  rig.clock.close();
  rig.registry.close();
});

attack(
  'the network console is off after every boot, and the USB console takes no line without the console password',
  async ({ rig }) => {
    const { board, usb, network } = rig!;
    const config = parseMeterConfig(board.storage.read(CONFIG_FILE));
    const password = new ConsolePasswords(rig!.operatorDir).get('meter-0007')!;
    assert.is(config.consolePassword, password, 'provisioning stored the password it wrote into vg.config');
    assert.match(password, /^[A-Za-z0-9_-]{20}$/);
    assert.is(fs.statSync(path.join(rig!.operatorDir, 'console-passwords.json')).mode & 0o777, 0o600);

    for (let boot = 0; boot < 2; boot++) {
      assert.ok(await refused(network.port), `boot ${boot}: nothing answers on the network console`);
      const attacker = await Client.open(usb.port);
      try {
        await attacker.waitFor(LOCKED);
        board.evaluate('var pwned = 0');
        const lines = [
          'require("Storage").readJSON("vg.config")',
          'print(require("Storage").read("vg.config"))',
          'pwned = 1',
          'I2C1.writeTo(0x60, 0)',
          'E.setPassword()',
          'reset()',
        ];
        for (const line of lines) assert.is(await attacker.exchange(line + '\r', REFUSED), REFUSED, line);
        const wrong = [
          '',
          password.slice(0, 19),
          password.slice(1),
          password.toUpperCase() === password ? password.toLowerCase() : password.toUpperCase(),
          'x'.repeat(25),
        ];
        for (const attempt of wrong)
          assert.is(
            await attacker.exchange(attempt + '\n', REFUSED),
            REFUSED,
            `wrong password of ${attempt.length} chars`,
          );
        assert.is(board.evaluate('pwned').value, 0, 'no line ran');
        assert.not.ok(attacker.received.includes(config.mqtt.password!), 'the broker password never showed');
        assert.not.ok(attacker.received.includes('meter-0007'), 'nothing of vg.config showed');
        assert.ok(board.consoleLocked);
        // With the password, the console is the owner's again.
        assert.is(await attacker.exchange(password + '\n', LOGGED_IN), LOGGED_IN);
        const got = await attacker.exchange('require("Storage").readJSON("vg.config").meterId\n', '\r\n>');
        assert.match(got, /="meter-0007"/);
      } finally {
        await attacker.close();
      }
      board.powerCut();
      board.powerOn();
    }
  },
);

attack(
  'the tools: locked without a password, refused with a wrong one, working with the stored one',
  async ({ rig }) => {
    const { board, usb } = rig!;
    const bare = inProcessConsole(board);
    try {
      const err = await bare.evaluate('vgInfo()').catch((e) => e);
      assert.instance(err, MeterConsoleError);
      assert.is((err as MeterConsoleError).locked, 'no-password');
      bare.setConsolePassword('not-the-password-1');
      const wrong = await bare.evaluate('vgInfo()').catch((e) => e);
      assert.is((wrong as MeterConsoleError).locked, 'refused');
    } finally {
      await bare.close();
    }
    const overTcp = await openMeterConsole(`tcp://127.0.0.1:${usb.port}`);
    try {
      overTcp.setConsolePassword(new ConsolePasswords(rig!.operatorDir).get('meter-0007'));
      assert.equal(await overTcp.evaluate('require("Storage").readJSON("vg.config").meterId'), { value: 'meter-0007' });
    } finally {
      await overTcp.close();
    }

    // Provisioning again with the operator folder that holds the password: it unlocks and changes nothing.
    const common = {
      meterId: 'meter-0007',
      feeder: 'feeder-1',
      passphrase: PASSPHRASE,
      dsoDb: rig!.registry,
      brokerDir: path.join(rig!.dir, 'broker'),
      broker: { host: '127.0.0.1', port: 1883 },
      dsoPublicKey: shared.dsoPublicKey,
    };
    const technician = inProcessConsole(board);
    const again = await provisionMeter({ ...common, operatorDir: rig!.operatorDir }, technician);
    await technician.close();
    assert.is(again.configChanged, false);
    assert.ok(board.consoleLocked, 'locked again after the re-run');
    // With a folder that holds no password for it: a clear error, nothing changed.
    const otherDir = path.join(rig!.dir, 'other-operator');
    await initOperator({ dir: otherDir, passphrase: PASSPHRASE });
    const err = await provisionMeter({ ...common, operatorDir: otherDir }, inProcessConsole(board)).catch((e) => e);
    assert.instance(err, ProvisionError);
    assert.match(
      (err as Error).message,
      /console is locked and no console password is stored for meter "meter-0007" in .*console-passwords\.json/,
    );
    new ConsolePasswords(otherDir).set('meter-0007', 'wrong-password-12345');
    const refusedErr = await provisionMeter({ ...common, operatorDir: otherDir }, inProcessConsole(board)).catch(
      (e) => e,
    );
    assert.match((refusedErr as Error).message, /refused the console password stored for meter "meter-0007"/);
  },
);

attack.run();

// ------------------------------------------------------------------------------------------------
const real = suite("console lock: the firmware locks the real interpreter's console at boot");
const missing = unavailable('espruino-linux');

/** Boots the bundle with a vg.config naming only a console password; returns what the attack got. */
async function attackOn(backend: Backend, bundle: string, password: string): Promise<string[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `veilgrid-console-lock-${backend}-`));
  const rig = await createRig(backend, { dir, speed: 1 });
  try {
    const board = await rig.addBoard('locked-meter');
    board.writeFile('.bootcde', bundle);
    board.writeFile(CONFIG_FILE, JSON.stringify({ consolePassword: password }));
    await board.powerOn();
    const client = await Client.open(board.consolePort);
    await new Promise((r) => setTimeout(r, 200)); // whatever a console shows on connecting has come
    try {
      return [
        await client.exchange('require("Storage").readJSON("vg.config")\n', REFUSED),
        await client.exchange(password.slice(0, 10) + '\n', REFUSED),
        await client.exchange(password + '\n', LOGGED_IN),
        await client.exchange('\x10print(require("Storage").readJSON("vg.config").consolePassword.length)\n', '20\r\n'),
      ];
    } finally {
      await client.close();
    }
  } finally {
    await rig.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

real('espruino-linux answers the attack as the emulator does: refused, refused, logged in', async () => {
  if (missing) {
    console.log(`    SKIPPED the real interpreter: ${missing}`);
    return;
  }
  const bundle =
    shared.bundle ||
    fs.readFileSync(
      (
        await buildFirmware({
          board: 'esp32-meter',
          outFile: path.join(os.tmpdir(), `veilgrid-console-lock-${process.pid}.js`),
        })
      ).outFile,
      'latin1',
    );
  const password = 'Lock-Test_0123456789';
  const onLinux = await attackOn('espruino-linux', bundle, password);
  assert.equal(onLinux.slice(0, 3), [REFUSED, REFUSED, LOGGED_IN], JSON.stringify(onLinux));
  const onVm = await attackOn('vm', bundle, password);
  assert.equal(onVm.slice(0, 3), onLinux.slice(0, 3), 'the emulator answers byte for byte as the real interpreter');
});

real.run();
