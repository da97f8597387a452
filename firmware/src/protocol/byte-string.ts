// Bytes as 8-bit strings (one char per byte, 0..255): how Espruino carries binary data in sockets, Storage
// and flash reads, so the MQTT packets, the power-safe records and the key records are all built on them.
// Plain loops rather than Espruino's E.toString (platform/bytes.ts), so the same code runs on the host.

import { VeilgridError } from './veilgrid-error.ts';

/** A string that was to hold bytes holds a char above 255. */
export class ByteStringError extends VeilgridError {
  constructor(message: string) {
    super('ByteStringError', 'byte-string', message);
  }
}

/** The bytes as an 8-bit string (one char per byte). */
export function bytesToByteString(bytes: Uint8Array): string {
  return appendBytes('', bytes);
}

/**
 * text followed by bytes as chars. Appending char by char to the one local string lets Espruino grow it
 * in place (src/jsparse.c: `s += x` on a string nothing else holds does not copy), so a large payload
 * costs its final string and nothing more: building the payload's string first and concatenating it
 * (`a + b` copies both) ran a 20,000-byte PUBLISH out of memory on the 16,383-JsVar board.
 */
export function appendBytes(text: string, bytes: Uint8Array): string {
  let s = text;
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

/** Each char of an 8-bit string becomes one byte; throws on a char code above 255. */
export function byteStringToBytes(s: string): Uint8Array {
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) throw new ByteStringError('char code ' + c + ' at index ' + i + ' is not a byte (0..255)');
    bytes[i] = c;
  }
  return bytes;
}
