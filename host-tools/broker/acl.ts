// Who may publish and subscribe to what on the broker: one rule table, from which both brokers get
// their rules — mosquitto as an ACL file (mosquittoAcl), aedes as hooks (aedesAuthHooks) — so the
// testbed's broker and a deployed mosquitto enforce exactly the same thing.
//
// A meter's MQTT username is its meter id. It may publish only under its own topics and into any relay's
// mixnet inbox, and subscribe to the market and directory topics, to the DSO's replies to it and to its
// own mixnet inbox (veilgrid/mix/<its relay id>, known from its mix key once it logs in with its chip).
// The DSO (username "dso") reads the meters' readings, key certificates, asset requests and status, and
// writes only its replies and the relay directory. The bridge ("bridge") reads the meters' offers and
// writes the market broadcast. The services' user names are reserved: no meter may have one, or its login
// would carry that service's rights (and its client id would be the service's).
//
// A client's MQTT client id is its user name on both brokers (aedes refuses any other; mosquitto is
// configured to replace it, see credentials.ts): a session belongs to exactly one login, so no client
// can take over, read out or kick off another's session.
import type { AedesOptions } from 'aedes';
import {
  ASSET_REQUEST_TOPIC_FILTER,
  KEY_CERTIFICATE_TOPIC_FILTER,
  MIX_EXIT_TOPIC,
  OFFER_TOPIC_FILTER,
  READING_TOPIC_FILTER,
  meterIdProblem,
  relayInboxTopic,
} from '../../firmware/src/protocol/topics.ts';
import { LOGIN_PASSWORD_PREFIX } from '../../firmware/src/protocol/broker-login.ts';
import { verifyPassword, type PasswordEntries } from './credentials.ts';
import type { LoginCheck } from './meter-logins.ts';

export const DSO_USERNAME = 'dso';
/** The bridge's broker user. */
export const BRIDGE_USERNAME = 'bridge';
/** Broker users of services: never a meter id. */
export const SERVICE_USERNAMES: readonly string[] = [DSO_USERNAME, BRIDGE_USERNAME];

/** Why id cannot be a meter's broker user (and so its meter id), or undefined when it can. */
export function meterUserProblem(id: string): string | undefined {
  const problem = meterIdProblem(id);
  if (problem) return problem;
  // Compared case-insensitively: SQLite, file systems and people read "DSO" and "dso" as one name.
  if (SERVICE_USERNAMES.includes(id.toLowerCase()))
    return `meter id "${id}" is reserved for the ${id.toLowerCase()} service's broker user: choose another id`;
  return undefined;
}

/** read = subscribe (and receive), write = publish: mosquitto's words, so the ACL file reads the same. */
export type Access = 'read' | 'write';

export interface TopicRule {
  access: Access;
  /** An MQTT topic filter (may hold + and #). */
  filter: string;
}

/**
 * The rules for one broker user; none for a username that is neither a service nor a valid, unreserved
 * meter id. relayId: the meter's relay id (hex), which opens its mixnet inbox to it.
 */
export function rulesFor(username: string, relayId?: string): TopicRule[] {
  if (username === DSO_USERNAME) {
    return [
      { access: 'read', filter: READING_TOPIC_FILTER },
      { access: 'read', filter: KEY_CERTIFICATE_TOPIC_FILTER },
      { access: 'read', filter: ASSET_REQUEST_TOPIC_FILTER },
      { access: 'read', filter: 'veilgrid/meters/+/status' },
      { access: 'write', filter: 'veilgrid/meters/+/replies/#' },
      { access: 'write', filter: 'veilgrid/directory/#' },
    ];
  }
  if (username === BRIDGE_USERNAME) {
    return [
      { access: 'read', filter: OFFER_TOPIC_FILTER },
      { access: 'read', filter: MIX_EXIT_TOPIC },
      { access: 'write', filter: 'veilgrid/market/#' },
    ];
  }
  if (meterUserProblem(username)) return [];
  const rules: TopicRule[] = [
    { access: 'write', filter: `veilgrid/meters/${username}/#` },
    { access: 'read', filter: `veilgrid/meters/${username}/replies/#` },
    { access: 'write', filter: 'veilgrid/mix/+' },
    { access: 'read', filter: 'veilgrid/market/#' },
    { access: 'read', filter: 'veilgrid/directory/#' },
  ];
  if (relayId !== undefined && /^[0-9a-f]{16}$/.test(relayId))
    rules.push({ access: 'read', filter: relayInboxTopic(relayId) });
  return rules;
}

/** MQTT topic matching: does `topic` (no wildcards) match `filter`? */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  // Wildcards at the first level never match topics starting with "$" (MQTT 3.1.1 §4.7.2).
  if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** Does `rule` allow subscribing to `requested`, i.e. is every topic `requested` matches also matched by `rule`? */
export function filterCovers(rule: string, requested: string): boolean {
  const r = rule.split('/');
  const q = requested.split('/');
  for (let i = 0; i < r.length; i++) {
    if (r[i] === '#') return true;
    if (i >= q.length) return false;
    if (q[i] === '#') return false; // the request reaches deeper or wider than this rule
    if (r[i] === '+') continue;
    if (q[i] === '+' || q[i] !== r[i]) return false;
  }
  return r.length === q.length;
}

export function mayPublish(username: string, topic: string): boolean {
  return rulesFor(username).some((rule) => rule.access === 'write' && topicMatches(rule.filter, topic));
}

export function maySubscribe(username: string, filter: string, relayId?: string): boolean {
  return rulesFor(username, relayId).some((rule) => rule.access === 'read' && filterCovers(rule.filter, filter));
}

/**
 * The mosquitto ACL file (acl_file) for these users: one `user` block each with its `topic read|write`
 * lines. Users not listed get nothing (mosquitto denies by default once an acl_file is set).
 */
export function mosquittoAcl(usernames: Iterable<string>, relayIds: Map<string, string> = new Map()): string {
  const lines = ['# Generated by veilgrid provision from the rule table in host-tools/broker/acl.ts: do not edit.', ''];
  for (const username of [...new Set(usernames)].sort()) {
    const rules = rulesFor(username, relayIds.get(username));
    if (rules.length === 0) continue;
    lines.push(`user ${username}`);
    for (const rule of rules) lines.push(`topic ${rule.access} ${rule.filter}`);
    lines.push('');
  }
  return lines.join('\n');
}

interface AuthenticatedClient {
  veilgridUser?: string;
}

/** The username a client authenticated with (kept on the client object by authenticate). */
function userOf(client: unknown): string | undefined {
  return client ? (client as AuthenticatedClient).veilgridUser : undefined;
}

/** Where aedes checks logins: the services' password entries, and meters' secure-element logins. */
export interface BrokerLogins {
  passwords(): PasswordEntries;
  checkLogin?(username: string | undefined, password: string | undefined): LoginCheck;
  /** A meter's relay id (hex), from the mix key it logs in with. */
  relayIdOf?(username: string): string | undefined;
}

/**
 * aedes hooks enforcing the same rules, with a meter login (a password starting "vgl1.") checked by
 * logins.checkLogin and any other password against the mosquitto password entries (both read anew on
 * every connect, so provisioning and revoking take effect without a restart), as mosquitto does with its
 * plugin and password file; and the client id required to equal the user name (CONNACK 2, identifier
 * rejected, otherwise). onRefused hears of every refused CONNECT, so an attempt to take over a session
 * or to replay a login is logged.
 * Differences from mosquitto that a client may notice: for an unauthorised publish aedes closes the
 * connection, where mosquitto (MQTT 3.1.1) drops the message silently; both refuse an unauthorised
 * subscription with SUBACK 0x80.
 */
export function aedesAuthHooks(
  logins: BrokerLogins,
  onRefused: (refusal: { clientId: string; username: string | undefined; reason: string }) => void = () => {},
): Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe'> {
  return {
    authenticate(client, username, password, done) {
      const refuse = (message: string, returnCode: number) => {
        onRefused({ clientId: client.id, username, reason: message });
        done(Object.assign(new Error(message), { returnCode }) as Parameters<typeof done>[0], false);
      };
      // Checked before the login is used up: a meter's login sent under another client id stays unused.
      if (client.id !== username)
        return refuse(
          `client id "${client.id}" is not the user name "${username}": a client connects with its own user name as client id`,
          2,
        );
      const text = password?.toString('latin1');
      if (text?.startsWith(LOGIN_PASSWORD_PREFIX) && logins.checkLogin) {
        const login = logins.checkLogin(username, text);
        if (!login.ok) return refuse(`bad meter login: ${login.reason}`, 4);
        (client as unknown as AuthenticatedClient).veilgridUser = username!;
        return done(null, true);
      }
      const hash = username === undefined ? undefined : logins.passwords().get(username);
      const ok = hash !== undefined && text !== undefined && verifyPassword(password!.toString('utf8'), hash);
      if (!ok) return refuse('bad user name or password', 4);
      (client as unknown as AuthenticatedClient).veilgridUser = username!;
      done(null, true);
    },
    authorizePublish(client, packet, done) {
      const username = userOf(client);
      if (username !== undefined && mayPublish(username, packet.topic)) return done(null);
      done(new Error(`${username ?? 'an unauthenticated client'} may not publish to ${packet.topic}`));
    },
    authorizeSubscribe(client, subscription, done) {
      const username = userOf(client);
      done(
        null,
        username !== undefined && maySubscribe(username, subscription.topic, logins.relayIdOf?.(username))
          ? subscription
          : null,
      );
    },
  };
}
