// The ESP32's Wi-Fi station and the access point it talks to (libs/network/jswrap_wifi.c for the
// firmware side). The access point is part of the test set-up: `board.wifi.setAccessPoint(...)`
// brings it up or down; the station then connects, fails or drops as a real one would.

import type { SimClock } from './clock.ts';

export interface AccessPoint {
  ssid: string;
  password: string;
  up: boolean;
}

export type StationStatus = 'off' | 'connecting' | 'connected' | 'wrong_password' | 'no_ap_found' | 'connect_fail';

/** Virtual time an association + DHCP takes. */
const CONNECT_MS = 1500;

type Listener = (details: unknown) => void;

export class WifiStation {
  private ap: AccessPoint | undefined;
  private status: StationStatus = 'off';
  private ssid: string | undefined;
  private pending: number | undefined;
  private listeners = new Map<string, Listener[]>();
  private sntp: { server: string; tzOffset: number } | undefined;

  /** `onTimeSync` is called when SNTP sets the clock (after a connect with setSNTP configured). */
  constructor(
    private readonly clock: SimClock,
    private readonly ip: string,
    readonly mac: string,
    private readonly onTimeSync: () => void,
  ) {}

  /** Test set-up: the access point the board can see (undefined = none in range). */
  setAccessPoint(ap: AccessPoint | undefined): void {
    this.ap = ap ? { ...ap } : undefined;
    if (this.status === 'connected' && (!this.ap || !this.ap.up || this.ap.ssid !== this.ssid)) {
      this.status = 'off';
      this.emit('disconnected', { ssid: this.ssid, mac: this.mac, reason: 'beacon_timeout' });
    }
  }

  get connected(): boolean {
    return this.status === 'connected';
  }

  // --- require("Wifi") ---

  connect(ssid: string, options: { password?: string } | undefined, cb?: (err: string | null) => void): void {
    this.cancelPending();
    this.status = 'connecting';
    this.ssid = ssid;
    this.pending = this.clock.setTimeout(() => {
      this.pending = undefined;
      const ap = this.ap;
      let err: StationStatus | undefined;
      if (!ap || !ap.up || ap.ssid !== ssid) err = 'no_ap_found';
      else if ((options?.password ?? '') !== ap.password) err = 'wrong_password';
      if (err) {
        this.status = err;
        const reason = err === 'wrong_password' ? 'auth_fail' : 'no_ap_found';
        this.emit('disconnected', { ssid, mac: this.mac, reason });
        cb?.(reason);
        return;
      }
      this.status = 'connected';
      if (this.sntp) this.onTimeSync();
      this.emit('connected', this.getIP());
      cb?.(null);
    }, CONNECT_MS);
  }

  disconnect(cb?: () => void): void {
    this.cancelPending();
    const was = this.status === 'connected';
    this.status = 'off';
    if (was) this.emit('disconnected', { ssid: this.ssid, mac: this.mac, reason: 'assoc_leave' });
    cb?.();
  }

  getStatus(): { mode: string; station: StationStatus; ap: string; phy: string; powersave: string } {
    return { mode: 'STA', station: this.status, ap: 'disabled', phy: '11n', powersave: 'none' };
  }

  getIP(): { ip: string; netmask: string; gw: string; mac: string } {
    const up = this.status === 'connected';
    return {
      ip: up ? this.ip : '0.0.0.0',
      netmask: up ? '255.255.255.0' : '0.0.0.0',
      gw: up ? this.ip.replace(/\.\d+$/, '.1') : '0.0.0.0',
      mac: this.mac,
    };
  }

  setSNTP(server: string, tzOffset: number): void {
    this.sntp = { server, tzOffset };
    if (this.status === 'connected') this.onTimeSync();
  }

  on(event: string, listener: Listener): void {
    const list = this.listeners.get(event) ?? [];
    list.push(listener);
    this.listeners.set(event, list);
  }

  removeAllListeners(event?: string): void {
    if (event === undefined) this.listeners.clear();
    else this.listeners.delete(event);
  }

  // --- board life cycle ---

  /** load()/reset(): the interpreter's listeners go; the radio keeps its association (as on ESP32). */
  sessionEnded(): void {
    this.listeners.clear();
  }

  /** Power cut: radio off, nothing pending. */
  powerOff(): void {
    this.cancelPending();
    this.listeners.clear();
    this.status = 'off';
    this.sntp = undefined;
  }

  private cancelPending(): void {
    if (this.pending !== undefined) this.clock.clearTimeout(this.pending);
    this.pending = undefined;
  }

  private emit(event: string, details: unknown): void {
    for (const l of [...(this.listeners.get(event) ?? [])]) l(details);
  }
}
