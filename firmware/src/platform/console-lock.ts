// The meter's console: who may type at it. On an ESP32 Espruino 2v29 serves its console on USB and, once
// Wi-Fi is up, on TCP port 23 (the TelnetServer library), and anyone at it can read vg.config or drive the
// secure element. docs/security.md says why each step is here and what it does not cover.
//
// - The network console goes off. Its library's init sets it on again at every boot on the ESP32
//   ("hardcoded for now", libs/network/telnet/jswrap_telnet.c jswrap_telnet_init), and it only starts
//   listening in the idle loop, after the boot code: turned off here, it never listens.
// - The console is locked with the meter's console password: E.setPassword keeps it in RAM only (the
//   interpreter's hidden root, cleared by every load()/reset()/power cycle), so it is set again at every
//   boot; E.lockConsole() then makes every console line a password attempt until the right one comes
//   (src/jswrap_espruino.c, src/jsinteractive.c jsiHandleConsoleChar). Boot code runs before the idle loop
//   reads any console input, so no line gets in before the lock.

/**
 * Turns the network console off and, given a password, locks the console with it. Each step on its own:
 * one failing (a build without the library) does not keep the other from happening. Returns what could
 * not be done, for the boot log ('' when everything was done); the password is never in it.
 */
export function secureConsole(password: string | undefined): string {
  let problems = '';
  if (password !== undefined) {
    try {
      E.setPassword(password);
      E.lockConsole();
    } catch (e) {
      problems += 'the console cannot be locked (' + ((e as Error).message || e) + ') ';
    }
  }
  try {
    require('TelnetServer').setOptions({ mode: 'off' });
  } catch (e) {
    problems += 'the network console cannot be turned off (' + ((e as Error).message || e) + ')';
  }
  return problems;
}
