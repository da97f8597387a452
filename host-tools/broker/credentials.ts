// Broker credentials: generated MQTT passwords, the mosquitto 2.x password file format, and the broker
// folder that provisioning keeps up to date: the services' users (password file), the meters that log in
// with their secure element (meter-logins.ts), and the ACL file from acl.ts for both.
//
// mosquitto 2.x password lines are `username:$7$<iterations>$<base64 salt>$<base64 hash>` with
// hash = PBKDF2-HMAC-SHA512(password, salt, iterations, 64 bytes), 12-byte salt and 101 iterations as
// mosquitto_passwd writes them (apps/mosquitto_passwd, src/password_mosq.c; checked against the installed
// mosquitto_passwd by test/unit/credentials.test.ts).
import { pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writePrivateFile } from '../operator/operator-key.ts';
import { BRIDGE_USERNAME, DSO_USERNAME, meterUserProblem, mosquittoAcl } from './acl.ts';
import { METER_LOGINS_FILE, MeterLogins, type LoginCheck } from './meter-logins.ts';

export const PBKDF2_ITERATIONS = 101;
const SALT_BYTES = 12;
const HASH_BYTES = 64;

export const PASSWORD_FILE = 'mosquitto.passwd';
export const ACL_FILE = 'mosquitto.acl';
/** The DSO's own MQTT password, generated with the broker folder (mode 0600). */
export const DSO_PASSWORD_FILE = 'dso-mqtt.password';
/** The ledger bridge's MQTT password (mode 0600), made by ensureBridgeUser. */
export const BRIDGE_PASSWORD_FILE = 'bridge-mqtt.password';

/** username → `$7$…` hash. */
export type PasswordEntries = Map<string, string>;

/** A new MQTT password: 24 random bytes, base64url (32 characters, no padding). */
export function generateMqttPassword(): string {
  return randomBytes(24).toString('base64url');
}

/** The `$7$` hash mosquitto 2.x stores for password (a fresh salt each time). */
export function hashPassword(password: string, salt: Uint8Array = randomBytes(SALT_BYTES)): string {
  const hash = pbkdf2Sync(password, salt, PBKDF2_ITERATIONS, HASH_BYTES, 'sha512');
  return `$7$${PBKDF2_ITERATIONS}$${Buffer.from(salt).toString('base64')}$${hash.toString('base64')}`;
}

/** Does password match a `$7$` hash? (false for any other or malformed hash) */
export function verifyPassword(password: string, stored: string): boolean {
  const parts = stored.split('$');
  if (parts.length !== 5 || parts[0] !== '' || parts[1] !== '7') return false;
  const iterations = Number(parts[2]);
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > 1_000_000) return false;
  const expected = Buffer.from(parts[4], 'base64');
  if (expected.length === 0) return false;
  const actual = pbkdf2Sync(password, Buffer.from(parts[3], 'base64'), iterations, expected.length, 'sha512');
  return timingSafeEqual(actual, expected);
}

export function parsePasswordFile(text: string): PasswordEntries {
  const entries: PasswordEntries = new Map();
  for (const line of text.split(/\r?\n/)) {
    if (line.length === 0 || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`password file line "${line.slice(0, 20)}…" is not username:hash`);
    entries.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return entries;
}

export function formatPasswordFile(entries: PasswordEntries): string {
  return [...entries.keys()]
    .sort()
    .map((user) => `${user}:${entries.get(user)}\n`)
    .join('');
}

/** What a broker folder held before a change, to put back if a later provisioning step fails. */
export interface BrokerSnapshot {
  files: Record<string, string | undefined>;
}

/**
 * The broker folder: mosquitto.passwd (0600), meter-logins.db, mosquitto.acl and the DSO's password.
 * Point mosquitto at it with mosquittoConfigLines(), aedes with startEmbeddedBroker({ auth: folder }).
 */
export class BrokerCredentials {
  constructor(readonly dir: string) {}

  get passwordFile(): string {
    return path.join(this.dir, PASSWORD_FILE);
  }

  get aclFile(): string {
    return path.join(this.dir, ACL_FILE);
  }

  /**
   * The mosquitto config lines that enforce this folder's users and rules. use_username_as_clientid
   * makes mosquitto replace the client id a client sends with its user name: mosquitto 2.0 has no
   * option that refuses a different id, and replacing it is as good against takeover, since a client
   * can then only ever reach its own login's session (a meter sending "dso" gets its own session, and
   * the DSO's is left alone).
   */
  mosquittoConfigLines(login?: { pluginPath: string; port: number }): string[] {
    const lines = [`password_file ${this.passwordFile}`, `acl_file ${this.aclFile}`, 'use_username_as_clientid true'];
    // Meters' logins go to the login service (login-service.ts) through the plugin; the rest to the file.
    if (login) lines.push(`plugin ${login.pluginPath}`, `plugin_opt_login_port ${login.port}`);
    return lines;
  }

  get meterLoginsFile(): string {
    return path.join(this.dir, METER_LOGINS_FILE);
  }

  /** Runs fn on this folder's meter logins (opened for the call: logins are few, and several processes share the file). */
  withMeterLogins<T>(fn: (logins: MeterLogins) => T): T {
    const logins = new MeterLogins(this.meterLoginsFile);
    try {
      return fn(logins);
    } finally {
      logins.close();
    }
  }

  /** Checks a meter's login (and uses up its counter when good). */
  relayIdOf(username: string): string | undefined {
    if (!fs.existsSync(this.meterLoginsFile)) return undefined;
    return this.withMeterLogins((logins) => logins.relayIdOf(username));
  }

  checkLogin(username: string | undefined, password: string | undefined): LoginCheck {
    return this.withMeterLogins((logins) => logins.check(username, password));
  }

  /**
   * Lets meterId log in with its secure element (identity and mix keys of its device certificate) and
   * rewrites the ACL. Also makes sure the DSO user exists. Returns whether the meter was new here.
   */
  addMeterLogin(meterId: string, identityKey: Uint8Array, mixKey: Uint8Array): boolean {
    const isNew = this.withMeterLogins((logins) => {
      const known = logins.lastCounter(meterId) !== undefined;
      logins.add(meterId, identityKey, mixKey);
      return !known;
    });
    this.write(this.withDsoUser());
    return isNew;
  }

  passwords(): PasswordEntries {
    try {
      return parsePasswordFile(fs.readFileSync(this.passwordFile, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw err;
    }
  }

  /** The DSO's MQTT password, creating it (and its broker user) on first use. */
  dsoPassword(): string {
    return this.servicePassword(DSO_PASSWORD_FILE);
  }

  /** A service's MQTT password in its file (0600) in this folder, generated on first use. */
  private servicePassword(name: string): string {
    const file = path.join(this.dir, name);
    if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
    const password = generateMqttPassword();
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    writePrivateFile(file, password + '\n');
    return password;
  }

  /**
   * Sets username's password (keeping the stored hash when it already matches, so re-provisioning
   * changes no file) and rewrites the ACL for every user. Also makes sure the DSO user exists.
   */
  setUser(username: string, password: string): void {
    // A meter's user named like a service would replace that service's password with the meter's.
    const problem = meterUserProblem(username);
    if (problem) throw new Error(`cannot add broker user "${username}": ${problem}`);
    const entries = this.withDsoUser();
    const current = entries.get(username);
    if (current === undefined || !verifyPassword(password, current)) entries.set(username, hashPassword(password));
    this.write(entries);
  }

  /** Makes sure the DSO's broker user exists (a new folder gets one before any meter); returns its password. */
  ensureDsoUser(): string {
    this.write(this.withDsoUser());
    return this.dsoPassword();
  }

  /** The ledger bridge's MQTT password, creating the file on first use (ensureBridgeUser adds the user). */
  bridgePassword(): string {
    return this.servicePassword(BRIDGE_PASSWORD_FILE);
  }

  /** Makes sure the bridge's broker user (BRIDGE_USERNAME) exists with the password in its file; returns it. */
  ensureBridgeUser(): string {
    const entries = this.withDsoUser();
    const password = this.bridgePassword();
    const stored = entries.get(BRIDGE_USERNAME);
    if (stored === undefined || !verifyPassword(password, stored)) entries.set(BRIDGE_USERNAME, hashPassword(password));
    this.write(entries);
    return password;
  }

  private withDsoUser(): PasswordEntries {
    const entries = this.passwords();
    const dso = this.dsoPassword();
    const dsoHash = entries.get(DSO_USERNAME);
    if (dsoHash === undefined || !verifyPassword(dso, dsoHash)) entries.set(DSO_USERNAME, hashPassword(dso));
    return entries;
  }

  /** Removes username's password (a meter's from before it logged in with its chip); true when it had one. */
  removePassword(username: string): boolean {
    const entries = this.passwords();
    if (!entries.delete(username)) return false;
    this.write(entries);
    return true;
  }

  /** Removes username, a password user or a meter login; true when it was there. */
  removeUser(username: string): boolean {
    const entries = this.passwords();
    const hadPassword = entries.delete(username);
    const hadLogin = fs.existsSync(this.meterLoginsFile) && this.withMeterLogins((logins) => logins.remove(username));
    if (hadPassword || hadLogin) this.write(entries);
    return hadPassword || hadLogin;
  }

  snapshot(): BrokerSnapshot {
    const files: Record<string, string | undefined> = {};
    for (const name of [PASSWORD_FILE, ACL_FILE, DSO_PASSWORD_FILE]) {
      const file = path.join(this.dir, name);
      files[name] = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : undefined;
    }
    return { files };
  }

  restore(snapshot: BrokerSnapshot): void {
    for (const [name, text] of Object.entries(snapshot.files)) {
      const file = path.join(this.dir, name);
      if (text === undefined) fs.rmSync(file, { force: true });
      else if (!fs.existsSync(file) || fs.readFileSync(file, 'utf8') !== text)
        writeBrokerFile(file, text, name === ACL_FILE);
    }
  }

  private write(entries: PasswordEntries): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const passwd = formatPasswordFile(entries);
    if (!fs.existsSync(this.passwordFile) || fs.readFileSync(this.passwordFile, 'utf8') !== passwd)
      writeBrokerFile(this.passwordFile, passwd, false);
    const relayIds = fs.existsSync(this.meterLoginsFile)
      ? this.withMeterLogins((logins) => logins.relayIds())
      : new Map<string, string>();
    const acl = mosquittoAcl([...entries.keys(), ...relayIds.keys()], relayIds);
    if (!fs.existsSync(this.aclFile) || fs.readFileSync(this.aclFile, 'utf8') !== acl)
      writeBrokerFile(this.aclFile, acl, true);
  }
}

/** Replaces a file atomically; secrets 0600, the ACL (no secrets) 0644. */
function writeBrokerFile(file: string, text: string, isPublic: boolean): void {
  if (!isPublic) return writePrivateFile(file, text);
  fs.writeFileSync(file + '.tmp', text, { mode: 0o644 });
  fs.renameSync(file + '.tmp', file);
}
