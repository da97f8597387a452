// The globals of Espruino 2v29 (ESP32) that firmware/src/platform/ uses. Only the firmware's
// tsconfig includes this file, so host code can't call device globals by mistake.
/// <reference path="./espruino-api.d.ts" />

declare const E: EspruinoE;
/** Software I2C (src/jsi2c.c): bit-banged on the pins given to setup; a missing ACK never throws. */
declare const I2C: { new (): I2CBus };
declare function getTime(): number;
declare function setTime(seconds: number): void;
declare function setWatch(
  cb: (e: WatchEvent) => void,
  pin: Pin,
  options: { repeat?: boolean; edge?: 'rising' | 'falling' | 'both'; debounce?: number },
): number;
declare function clearWatch(id?: number): void;
declare function pinMode(pin: Pin, mode: 'input' | 'input_pullup' | 'input_pulldown' | 'output'): void;
declare function digitalRead(pin: Pin): number;
declare function digitalWrite(pin: Pin, value: number | boolean): void;
declare function setTimeout(cb: () => void, ms: number): number;
declare function setInterval(cb: () => void, ms: number): number;
declare function clearTimeout(id: number): void;
declare function clearInterval(id: number): void;
declare function load(file?: string): void;
declare function reset(clearFlash?: boolean): void;
declare function btoa(binary: ByteString): string;
declare function atob(base64: string): ByteString;
declare const console: { log(...args: any[]): void };
declare function require(name: 'Storage'): StorageModule;
declare function require(name: 'Flash'): FlashModule;
declare function require(name: 'net'): NetModule;
declare function require(name: 'Wifi'): WifiModule;
declare function require(name: 'crypto'): CryptoModule;
declare function require(name: 'TelnetServer'): TelnetServerModule;
