// A board on a serial port, for real: the real interpreter's console behind a pseudo-terminal (socat), so
// the veilgrid console tools open a device path with serialport and take their serial code path (port
// settings, DTR/RTS settling), as with an ESP32 on /dev/ttyUSB0: the running build is read and the SE is
// configured, locked and given its keys through the serial console. Then the espruino CLI runs a line on
// the same device path; it opens only ports that udev lists, so the test lists the pty as a USB-serial
// adapter would be listed (udev-entry.ts, docs/hil.md).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createRig, unavailable } from '../../boards/harness/meter-board.ts';
import { SOCAT_MISSING, socatAvailable, startPtyBridge } from '../../boards/espruino-linux/pty-bridge.ts';
import { writeUdevEntry } from '../../boards/espruino-linux/udev-entry.ts';
import { evaluateWithEspruinoCli } from '../../host-tools/flash/espruino-cli.ts';
import { buildFirmware } from '../../host-tools/build/build-firmware.ts';
import { openMeterConsole } from '../../boards/console/meter-console.ts';

const missing = unavailable('espruino-linux') ?? (socatAvailable() ? undefined : SOCAT_MISSING);

test('the real interpreter behind a pseudo-terminal: the console tools and the espruino CLI reach it as a serial board', async () => {
  if (missing) {
    console.log(`    SKIPPED the serial-port path: ${missing}`);
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'veilgrid-serial-'));
  const rig = await createRig('espruino-linux', { dir });
  let bridge: Awaited<ReturnType<typeof startPtyBridge>> | undefined;
  try {
    const { outFile, buildId } = await buildFirmware({
      board: 'esp32-meter',
      outFile: path.join(dir, 'esp32-meter.js'),
    });
    const board = await rig.addBoard('serial-meter');
    let output = '';
    board.onOutput((text) => (output += text));
    board.writeFile('.bootcde', fs.readFileSync(outFile, 'latin1'));
    await board.powerOn();
    bridge = await startPtyBridge(board.consolePort, path.join(dir, 'ttyVG0'));

    const meterConsole = await openMeterConsole(bridge.path);
    try {
      assert.equal(
        await meterConsole.evaluate('JSON.parse(vgInfo()).build'),
        { value: buildId },
        'the running build, read over the serial path',
      );
      const provisioned = await meterConsole.evaluate('JSON.parse(vgProvisionSE())', 120_000);
      assert.ok('value' in provisioned, JSON.stringify(provisioned));
      const keys = (provisioned as { value: { identityKey: string; error?: string } }).value;
      assert.is(keys.error, undefined);
      assert.match(keys.identityKey, /^04[0-9a-f]{128}$/);
      const info = await meterConsole.evaluate('JSON.parse(vgInfo()).se');
      assert.equal(info, {
        value: {
          serial: (provisioned as { value: { serial: string } }).value.serial,
          configLocked: true,
          dataLocked: true,
          ours: true,
        },
      });
    } finally {
      await meterConsole.close();
    }
    assert.ok(board.seCommands > 10, `the SE executed the provisioning (${board.seCommands} commands)`);

    const pathBefore = process.env.PATH;
    process.env.PATH = `${writeUdevEntry(path.join(dir, 'udev'), bridge.path)}:${pathBefore}`;
    try {
      const cli = await evaluateWithEspruinoCli({
        port: bridge.path,
        expression: 'print("running "+JSON.parse(vgInfo()).build)',
        settleSeconds: 3,
      });
      assert.ok(
        cli.boardOutput.some((line) => line.includes(`running ${buildId}`)),
        `the espruino CLI ran a line over the serial path:\n${cli.output}`,
      );
    } finally {
      process.env.PATH = pathBefore;
    }
    assert.not.match(output, /Uncaught/, output);
  } finally {
    await bridge?.close();
    await rig.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
