// Functions the console can call by name. Espruino has no globalThis; its `global` object is the
// global scope, so a property set on it is a top-level name at the REPL (and in the emulator's realm).

declare const global: { [name: string]: unknown };

/** Makes fn callable at the console as name(). */
export function defineConsoleFunction(name: string, fn: () => string): void {
  global[name] = fn;
}
