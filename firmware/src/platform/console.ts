// The console (USB serial, or Telnet when the network is up): where a technician reads what the
// meter says about itself.

/** Prints one line on the console. */
export function log(message: string): void {
  console.log(message);
}
