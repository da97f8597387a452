// The broker's side of meter logins (firmware/src/protocol/broker-login.ts, docs/broker-login.md): which
// meters may log in, with the identity and mix keys of their device certificates, and the highest login
// counter each has used. SQLite, in the broker folder (meter-logins.db), written by provisioning and read
// by whichever broker checks logins: aedes in process (acl.ts aedesAuthHooks), mosquitto through its
// plugin and the login service (login-service.ts).
//
// A login is accepted when its signature is the meter's chip attesting its mix key for this meter id and
// counter, and the counter is above every one accepted before; the counter is stored in the same step, so
// a login caught on the wire is refused once used, by any number of processes sharing the file.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { attestationMessage } from '../../firmware/src/protocol/key-attestation.ts';
import { loginNonce, parseLoginPassword } from '../../firmware/src/protocol/broker-login.ts';
import { MIX_SLOT } from '../../firmware/src/protocol/slot-map.ts';
import { kidOf } from '../../firmware/src/protocol/certificate.ts';
import { bytesToHex } from '../../firmware/src/protocol/hex.ts';
import { nodeSha256, nodeVerifyEs256 } from '../crypto/node-primitives.ts';
import { meterUserProblem } from './acl.ts';

export const METER_LOGINS_FILE = 'meter-logins.db';

export type LoginCheck = { ok: true; counter: number } | { ok: false; reason: string };

interface LoginRow {
  meter_id: string;
  identity_key: Buffer;
  mix_key: Buffer;
  last_counter: number;
}

export class MeterLogins {
  readonly db: Database.Database;

  /** The logins in `file` (created with its folder, 0700, when missing), or ':memory:'. */
  constructor(file: string) {
    if (file !== ':memory:') fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`CREATE TABLE IF NOT EXISTS meter_logins (
      meter_id TEXT PRIMARY KEY,
      identity_key BLOB NOT NULL,
      mix_key BLOB NOT NULL,
      last_counter INTEGER NOT NULL DEFAULT -1
    )`);
  }

  /**
   * Lets meterId log in with the chip holding these keys (65 bytes each, uncompressed). Provisioning the
   * same chip again keeps the counter; a new chip starts afresh, as its counter does.
   */
  add(meterId: string, identityKey: Uint8Array, mixKey: Uint8Array): void {
    const problem = meterUserProblem(meterId);
    if (problem) throw new Error(`cannot let meter "${meterId}" log in: ${problem}`);
    for (const [name, key] of [
      ['identity key', identityKey],
      ['mix key', mixKey],
    ] as const) {
      if (key.length !== 65 || key[0] !== 4)
        throw new Error(
          `cannot let meter "${meterId}" log in: its ${name} must be 65 bytes, uncompressed (04 || x || y)`,
        );
    }
    const row = this.row(meterId);
    if (row && Buffer.from(identityKey).equals(row.identity_key) && Buffer.from(mixKey).equals(row.mix_key)) return;
    this.db
      .prepare(
        'INSERT OR REPLACE INTO meter_logins (meter_id, identity_key, mix_key, last_counter) VALUES (?, ?, ?, -1)',
      )
      .run(meterId, Buffer.from(identityKey), Buffer.from(mixKey));
  }

  /** Stops meterId logging in; true when it could. */
  remove(meterId: string): boolean {
    return this.db.prepare('DELETE FROM meter_logins WHERE meter_id = ?').run(meterId).changes > 0;
  }

  meterIds(): string[] {
    return (
      this.db.prepare('SELECT meter_id FROM meter_logins ORDER BY meter_id').all() as Array<{ meter_id: string }>
    ).map((r) => r.meter_id);
  }

  /** Each meter's relay id (kidOf its mix key, hex): the mixnet inbox only that meter may read. */
  relayIds(): Map<string, string> {
    const rows = this.db.prepare('SELECT meter_id, mix_key FROM meter_logins').all() as Array<{
      meter_id: string;
      mix_key: Buffer;
    }>;
    return new Map(rows.map((r) => [r.meter_id, relayIdOfMixKey(r.mix_key)]));
  }

  relayIdOf(meterId: string): string | undefined {
    const row = this.row(meterId);
    return row ? relayIdOfMixKey(row.mix_key) : undefined;
  }

  /** The highest login counter meterId has used (-1: none yet), or undefined for an unknown meter. */
  lastCounter(meterId: string): number | undefined {
    return this.row(meterId)?.last_counter;
  }

  /** Checks a meter's login and, when it is good, uses up its counter. */
  check(username: string | undefined, password: string | undefined): LoginCheck {
    if (username === undefined || password === undefined)
      return { ok: false, reason: 'a meter logs in with its meter id and a login password' };
    const row = this.row(username);
    if (!row)
      return {
        ok: false,
        reason: `meter "${username}" may not log in here (not provisioned with this broker folder, or removed)`,
      };
    const login = parseLoginPassword(password);
    if (typeof login === 'string') return { ok: false, reason: login };
    if (login.counter <= row.last_counter) {
      return {
        ok: false,
        reason: `login counter ${login.counter} was used already (meter "${username}" is at ${row.last_counter}): a replayed login`,
      };
    }
    const message = attestationMessage(
      nodeSha256,
      loginNonce(nodeSha256, username, login.counter),
      MIX_SLOT,
      new Uint8Array(row.mix_key),
    );
    if (!nodeVerifyEs256(new Uint8Array(row.identity_key), message, login.signature)) {
      return { ok: false, reason: `the login is not signed by meter "${username}"'s secure element` };
    }
    // Conditional, so two brokers checking the same login at once accept it only once.
    const used = this.db
      .prepare('UPDATE meter_logins SET last_counter = ? WHERE meter_id = ? AND last_counter < ?')
      .run(login.counter, username, login.counter);
    if (used.changes === 0)
      return { ok: false, reason: `login counter ${login.counter} was used already: a replayed login` };
    return { ok: true, counter: login.counter };
  }

  close(): void {
    this.db.close();
  }

  private row(meterId: string): LoginRow | undefined {
    return this.db.prepare('SELECT * FROM meter_logins WHERE meter_id = ?').get(meterId) as LoginRow | undefined;
  }
}

function relayIdOfMixKey(mixKey: Buffer): string {
  return bytesToHex(kidOf(nodeSha256, new Uint8Array(mixKey)));
}
