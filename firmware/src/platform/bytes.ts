// Binary data on Espruino travels as 8-bit strings (one char per byte): sockets, Storage, MQTT
// payloads. These convert between such strings and Uint8Array with the interpreter's native helpers.

/**
 * Uint8Array -> 8-bit string. For a whole Uint8Array Espruino returns the array's own storage as the
 * string (src/jswrap_espruino.c, E.toString): writing to the array afterwards changes the string, so do
 * not reuse the array while the string is in use. Returns undefined when memory for a copy runs out.
 */
export function bytesToString(bytes: Uint8Array): ByteString {
  return E.toString(bytes);
}

/** 8-bit string -> Uint8Array (a copy). */
export function stringToBytes(text: ByteString): Uint8Array {
  return E.toUint8Array(text);
}
