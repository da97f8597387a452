// The emulated board's TCP console behaves like Espruino's REPL (src/jsinteractive.c) for a client
// speaking raw TCP, as the espruino CLI and `nc` do.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadBoardDefinition } from '../../boards/board-definition.ts';
import { Board } from '../../boards/emulator/board.ts';
import { SimClock } from '../../boards/emulator/clock.ts';
import { ConsoleError, startConsole, type RunningConsole } from '../../boards/emulator/console.ts';
import { Client } from './console-client.ts';

interface Rig {
  clock: SimClock;
  board: Board;
  console: RunningConsole;
  client: Client;
}

const test = suite<{ rig?: Rig }>('console');

test.before.each(async (ctx) => {
  const clock = new SimClock({ speed: 1 });
  const board = new Board({ definition: loadBoardDefinition('esp32-meter'), clock });
  board.powerOn();
  const console = await startConsole(board, { port: 0 });
  const client = await Client.open(console.port);
  await client.waitFor('>');
  ctx.rig = { clock, board, console, client };
});

test.after.each(async (ctx) => {
  const rig = ctx.rig!;
  await rig.client.close();
  await rig.console.close();
  rig.board.close();
  rig.clock.close();
});

test('an expression is echoed and its value printed as =value, then the prompt returns', async ({ rig }) => {
  const got = await rig!.client.exchange('1+2\r\n', '\r\n>');
  assert.is(got, '1+2\r\n=3\r\n>');
});

test('a function definition spans lines until its brackets close', async ({ rig }) => {
  const { client } = rig!;
  assert.is(await client.exchange('function double(a) {\r\n', ':'), 'function double(a) {\r\n:');
  assert.is(await client.exchange('  return a * 2;\r\n}\r\n', '\r\n>'), '  return a * 2;\r\n:}\r\n=undefined\r\n>');
  assert.is(await client.exchange('double(21)\r\n', '\r\n>'), 'double(21)\r\n=42\r\n>');
});

test('Alt-Enter continues a statement without running it', async ({ rig }) => {
  const got = await rig!.client.exchange('var x = 4\x1b\n+ 5\r\nx\r\n', '=9\r\n>');
  assert.ok(got.includes('var x = 4\r\n:+ 5'), got);
});

test('an uncaught error is printed as Espruino prints it and the console carries on', async ({ rig }) => {
  const { client } = rig!;
  const got = await client.exchange('nosuchfunction()\r\n', '\r\n>');
  assert.match(got, /^nosuchfunction\(\)\r\nUncaught ReferenceError: .*nosuchfunction/);
  assert.not.match(got, /=undefined/);
  assert.is(await client.exchange('2*3\r\n', '\r\n>'), '2*3\r\n=6\r\n>');
});

test('a line starting with \\x10 runs without echo and without =value', async ({ rig }) => {
  const { client } = rig!;
  const from = client.received.length;
  client.send('\x10var secret = 5\n');
  assert.is(await client.exchange('secret\r\n', '\r\n>'), 'secret\r\n=5\r\n>');
  assert.not.ok(client.received.slice(from).includes('var secret'), 'the \\x10 line was echoed');
});

test('backspace edits the line being typed', async ({ rig }) => {
  assert.is(await rig!.client.exchange('12\b3\r\n', '\r\n>'), '12\b \b3\r\n=13\r\n>');
});

test('console.log from a timer reaches the client, taking the prompt away and giving it back', async ({ rig }) => {
  const { client } = rig!;
  await client.exchange('setTimeout(function () { console.log("from a timer"); }, 20);\r\n', '\r\n>');
  const got = await client.waitFor('from a timer\r\n>', client.received.length - 1);
  assert.ok(got.includes('\r\x1b[Jfrom a timer\r\n>'), JSON.stringify(got));
});

test('values print in Espruino REPL format', async ({ rig }) => {
  const { client } = rig!;
  assert.is(await client.exchange('({a:1,b:"x"})\r\n', '\r\n>'), '({a:1,b:"x"})\r\n={ a: 1, \r\n  b: "x"\r\n }\r\n>');
  assert.is(await client.exchange('[1,2,3]\r\n', '\r\n>'), '[1,2,3]\r\n=[ 1, 2, 3 ]\r\n>');
  assert.is(await client.exchange('0.1+0.2\r\n', '\r\n>'), '0.1+0.2\r\n=0.3\r\n>');
  assert.is(await client.exchange('"a\\nb"\r\n', '\r\n>'), '"a\\nb"\r\n="a\\nb"\r\n>');
  assert.is(
    await client.exchange('new Uint8Array([1,2])\r\n', '\r\n>'),
    'new Uint8Array([1,2])\r\n=new Uint8Array([1, 2])\r\n>',
  );
});

test('process.env answers the query the espruino CLI sends on connect', async ({ rig }) => {
  const { client } = rig!;
  const got = await client.exchange('\x10print("<","<<",JSON.stringify(process.env),">>",">")\n', '>> >');
  const json = got.slice(got.indexOf('< <<') + 4, got.indexOf('>> >'));
  const env = JSON.parse(json) as { VERSION: string; MODULES: string };
  assert.is(env.VERSION, '2v29');
  assert.ok(env.MODULES.split(',').includes('Storage'));
});

test('a client can disconnect and reconnect, and the console survives a power cycle', async ({ rig }) => {
  const { board, console } = rig!;
  await rig!.client.close();
  const second = await Client.open(console.port);
  await second.waitFor('>');
  assert.is(await second.exchange('var kept = 7\r\n', '\r\n>'), 'var kept = 7\r\n=undefined\r\n>');
  board.powerCut();
  board.powerOn();
  // RAM is gone after the power cycle; the console still answers on the same connection
  const got = await second.exchange('typeof kept\r\n', '\r\n>');
  assert.ok(got.endsWith('="undefined"\r\n>'), JSON.stringify(got));
  rig!.client = second;
});

test('the console refuses to listen beyond loopback unless asked to', async ({ rig }) => {
  try {
    await startConsole(rig!.board, { port: 0, host: '0.0.0.0' });
    assert.unreachable('listened on 0.0.0.0');
  } catch (err) {
    assert.instance(err, ConsoleError);
    assert.match((err as Error).message, /allowRemote/);
  }
});

test.run();
