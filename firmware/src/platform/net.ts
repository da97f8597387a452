// The board's TCP stack: Espruino's built-in `net` module (kept as a literal require so the
// build leaves it to the device). Logic modules receive this object instead of requiring it.
export function deviceNet(): NetModule {
  return require('net');
}
