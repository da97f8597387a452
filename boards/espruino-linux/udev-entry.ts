// The udev entry a USB-serial adapter gets, for a pseudo-terminal. The espruino CLI opens only ports that
// serialport.list() reports, which on Linux come from udev's device database (`udevadm info -e`,
// @serialport/bindings-cpp linux-list.js); a pty is never there. A real ESP32 on its board's CP2102 is,
// so to take the CLI's serial path with a pty the test supplies that enumeration — the USB side of the
// hardware boundary — as a `udevadm` first on PATH that lists the pty as the adapter would be listed.
import fs from 'node:fs';
import path from 'node:path';

/**
 * Writes `dir/udevadm` listing `devicePath` as ttyUSB0 of a CP2102 (vendor 10c4, product ea60), and
 * returns `dir`, to put first on PATH. Any other udevadm call prints nothing and succeeds.
 */
export function writeUdevEntry(dir: string, devicePath: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const entry = [
    'P: /devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/ttyUSB0/tty/ttyUSB0',
    'N: ttyUSB0',
    `E: DEVNAME=${devicePath}`,
    'E: SUBSYSTEM=tty',
    'E: ID_VENDOR_ENC=Silicon\\x20Labs',
    'E: ID_VENDOR_ID=10c4',
    'E: ID_MODEL_ID=ea60',
    'E: ID_SERIAL_SHORT=veilgrid-pty',
    '',
  ].join('\n');
  const script = `#!/bin/sh\n# written by boards/espruino-linux/udev-entry.ts\nif [ "$1" = info ] && [ "$2" = -e ]; then\ncat <<'ENTRY'\n${entry}\nENTRY\nfi\n`;
  const file = path.join(dir, 'udevadm');
  fs.writeFileSync(file, script, { mode: 0o755 });
  return dir;
}
