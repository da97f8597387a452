// A cap on MQTT packet size for the embedded broker: aedes has no such option and buffers a whole
// packet (64 MB if a client says so) before any hook sees it. The guard watches the bytes aedes reads
// from the socket, reads each packet's fixed header (type byte, then the remaining length, 1-4 bytes of
// 7 bits each: MQTT 3.1.1 section 2.2.3) and closes the connection as soon as a header announces a
// packet larger than the cap, before its body is buffered. Linear in the bytes read.
import type net from 'node:net';

/** Scans the fixed headers of an MQTT byte stream chunk by chunk. */
export class MqttPacketSizeScanner {
  /** Body bytes of the current packet still to pass; -1 while reading a fixed header. */
  private bodyLeft = -1;
  private headerBytes = 0;
  private length = 0;
  private multiplier = 1;

  constructor(private readonly maxPacketBytes: number) {}

  /** Scans chunk; returns a reason when a packet breaks the cap or the header is malformed, else undefined. */
  scan(chunk: Uint8Array): string | undefined {
    let i = 0;
    while (i < chunk.length) {
      if (this.bodyLeft > 0) {
        const step = Math.min(this.bodyLeft, chunk.length - i);
        this.bodyLeft -= step;
        i += step;
        continue;
      }
      const byte = chunk[i++];
      if (this.bodyLeft === 0 || this.headerBytes === 0) {
        // The first byte of a packet (type and flags).
        this.bodyLeft = -1;
        this.headerBytes = 1;
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      this.headerBytes++;
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      if (byte & 0x80) {
        if (this.headerBytes === 5) return 'the remaining length has more than 4 bytes (malformed fixed header)';
        continue;
      }
      if (this.headerBytes + this.length > this.maxPacketBytes) {
        return `a packet of ${this.headerBytes + this.length} bytes is larger than the ${this.maxPacketBytes} this broker accepts`;
      }
      this.bodyLeft = this.length;
      this.headerBytes = 0;
      if (this.bodyLeft === 0) this.bodyLeft = -1;
    }
    return undefined;
  }
}

/**
 * Watches what aedes reads from socket and destroys it (calling onRefused) at the first packet above
 * maxPacketBytes. Call it right after aedes.handle(socket): aedes reads on 'readable', and a 'data'
 * listener added then sees each chunk as aedes reads it, without changing how the socket flows (a
 * wrapper stream in between lost data when a meter's power was cut mid-stream).
 */
export function guardPacketSize(socket: net.Socket, maxPacketBytes: number, onRefused: (reason: string) => void): void {
  const scanner = new MqttPacketSizeScanner(maxPacketBytes);
  socket.on('data', (chunk: Buffer) => {
    if (socket.destroyed) return;
    const refused = scanner.scan(chunk);
    if (refused === undefined) return;
    onRefused(refused);
    socket.destroy();
  });
}
