// S0 pulses counted by setWatch with debounce on an emulated board at high clock speed, while the
// host is busy: the emulator must count every pulse, as an ESP32 does (its GPIO interrupt stamps
// each edge with the time it happened, and debounce is decided from those stamps however late the
// interpreter gets to them). At 400x one millisecond of host work is 0.4 s of virtual time, longer
// than a 30 ms pulse and its 30 ms pause: if edges were stamped when the host got round to them,
// whole pulses would vanish into their neighbours.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { S0PulseSource } from '../../boards/emulator/devices/s0-pulse-source.ts';
import { constant } from '../../boards/emulator/load-profile.ts';

const SPEED = 400;
const RUN_SECONDS = 240; // virtual: 0.6 s of real time

/** Real milliseconds of synchronous work, as a slow task (a boot, a big Storage read) costs the host. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

test(`at ${SPEED}x with a busy host, every S0 pulse is counted on both inputs`, async () => {
  const definition = loadBoardDefinition('esp32-meter');
  const clock = new SimClock({ speed: SPEED });
  const board = new Board({ definition, clock });
  const { s0Import, s0Export } = definition.pins;
  board.storage.write(
    '.bootcde',
    `var counts = {}; [${s0Import}, ${s0Export}].forEach(function (pin) {
      counts[pin] = 0; pinMode(pin, 'input_pullup');
      setWatch(function () { counts[pin]++; }, pin, { repeat: true, edge: 'falling', debounce: 10 });
    });`,
  );
  const sources = [
    new S0PulseSource({ board, pin: s0Import, impulsesPerKWh: 1000, profile: constant(7200) }), // 2 pulses/s
    new S0PulseSource({ board, pin: s0Export, impulsesPerKWh: 10000, profile: constant(2000) }), // 5.6 pulses/s
  ];
  // Host work between timers that reads the clock, as socket events and console traffic do: it
  // moves now() ahead of the timers that are waiting for the host.
  const noise = setInterval(() => {
    busy(3);
    clock.now();
  }, 7);
  try {
    board.powerOn();
    for (const s of sources) s.start();
    await new Promise<void>((resolve) => clock.setTimeout(resolve, RUN_SECONDS * 1000));
    for (const s of sources) s.stop();
    // The last pulse ends and its debounce completes.
    await new Promise<void>((resolve) => clock.setTimeout(resolve, 1000));
    const counts = board.evaluate('counts').value as Record<number, number>;
    assert.ok(sources[0].pulsesEmitted >= 400 && sources[1].pulsesEmitted >= 1000, 'the sources ran');
    assert.equal(
      { import: counts[s0Import], export: counts[s0Export] },
      { import: sources[0].pulsesEmitted, export: sources[1].pulsesEmitted },
    );
  } finally {
    clearInterval(noise);
    board.close();
    clock.close();
  }
});

test.run();
