// The console client's unlock handshake against a scripted console (boards/console/meter-console.ts):
// a locked console answers each line with Espruino's refusal until the password comes; a refusal that
// belongs to an earlier line (one a timed-out call left behind, as while a slow meter reboots) must not
// make the password look refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MeterConsoleError, streamConsole, type ByteLink } from '../../boards/console/meter-console.ts';

const PASSWORD = 'Script-Test_01234567';

/** A console locked with PASSWORD; each line is answered on a later turn, after any `stale` answers. */
function scriptedConsole(stale: number): { link: ByteLink; attempts: string[] } {
  const listeners: Array<(text: string) => void> = [];
  const attempts: string[] = [];
  let locked = true;
  let pending = '';
  let queue = Promise.resolve();
  const say = (text: string) => {
    queue = queue.then(
      () =>
        new Promise((resolve) =>
          setImmediate(() => {
            for (const l of listeners) l(text);
            resolve();
          }),
        ),
    );
  };
  for (let i = 0; i < stale; i++) say('\r\n  Invalid password\r\npassword>');
  const link: ByteLink = {
    write(data) {
      pending += data.replace(/\x03/g, '');
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        if (locked) {
          attempts.push(line);
          if (line === PASSWORD) {
            locked = false;
            say('\r\n  Logged in.\r\n>');
          } else say('\r\n  Invalid password\r\npassword>');
        } else {
          const id = /"vg(\d+)>"/.exec(line)?.[1];
          if (id) say(`<<vg${id}>{"v":42}</vg${id}>>\r\n>`);
          if (line.includes('E.lockConsole()')) locked = true;
        }
      }
    },
    onData: (listener) => void listeners.push(listener),
    onClose: () => {},
    close: async () => {},
  };
  return { link, attempts };
}

test('a refusal left over from an earlier line does not count against the password', async () => {
  const { link, attempts } = scriptedConsole(2);
  const meter = streamConsole('scripted', link);
  meter.setConsolePassword(PASSWORD);
  assert.equal(await meter.evaluate('6*7', 5000), { value: 42 });
  assert.is(attempts.filter((a) => a === PASSWORD).length, 1, 'the password went out once');
  await meter.close();
  assert.ok(attempts.length >= 2);
});

test('a wrong password is refused (after the grace for stray refusals), and none is a refusal at once', async () => {
  const wrong = streamConsole('scripted', scriptedConsole(0).link);
  wrong.setConsolePassword('not-the-password-123');
  const err = await wrong.evaluate('1', 10_000).catch((e) => e);
  assert.instance(err, MeterConsoleError);
  assert.is((err as MeterConsoleError).locked, 'refused');
  const none = streamConsole('scripted', scriptedConsole(0).link);
  const err2 = await none.evaluate('1', 10_000).catch((e) => e);
  assert.is((err2 as MeterConsoleError).locked, 'no-password');
});

test('a console unlocked here is locked again on close; never typed, never locked', async () => {
  const script = scriptedConsole(0);
  const meter = streamConsole('scripted', script.link);
  meter.setConsolePassword(PASSWORD);
  await meter.evaluate('1', 5000);
  const writes: string[] = [];
  const write = script.link.write.bind(script.link);
  script.link.write = (data) => {
    writes.push(data);
    write(data);
  };
  await meter.close();
  assert.equal(writes, ['\x10E.lockConsole()\n']);
});

test.run();
