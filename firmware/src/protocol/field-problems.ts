// Sentences for what is wrong with a decoded field, shared by every message schema (readings,
// certificates) so errors read the same everywhere.

/** Largest integer a JS number holds exactly, and so the largest a schema accepts. */
export const MAX_UINT = 9007199254740991;

/**
 * text in double quotes for an error message, every char outside printable ASCII (and " and \) as \u00XX.
 * Not JSON.stringify: Espruino's escapes chars above 0x7E and V8's does not, so messages would differ.
 */
export function quote(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c) out += text.charAt(i);
    else out += '\\u' + ('000' + c.toString(16).toUpperCase()).slice(-4);
  }
  return out + '"';
}

/** A short description of a decoded value for an error message. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return quote(value.length > 20 ? value.substring(0, 20) + '...' : value);
  if (value instanceof Uint8Array) return 'a ' + value.length + '-byte string';
  if (Array.isArray(value)) return 'an array';
  if (value !== null && typeof value === 'object') return 'a map';
  return String(value);
}

/** Why value is not a whole number from 0 to 2^53-1, or undefined when it is one. */
export function uintProblem(name: string, value: unknown): string | undefined {
  if (typeof value !== 'number' || value !== Math.floor(value) || value < 0 || value > MAX_UINT) {
    return name + ' must be an integer from 0 to 2^53-1 (got ' + describeValue(value) + ')';
  }
  return undefined;
}
