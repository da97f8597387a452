// What the mix node reads of the relay directory (docs/relay-directory.md): the contract of the Storage-backed
// store (relay-directory-store.ts), so the sender and the tests do not depend on how it is kept.
import type { RelayRecord } from '../protocol/relay-directory.ts';

export interface RelayDirectoryView {
  /** A verified directory is stored, the exit record present. */
  isComplete(): boolean;
  epoch(): number;
  relayCount(): number;
  /** Record i, sorted by relay id. */
  relayAt(i: number): RelayRecord;
  /** The index of a relay id, -1 if absent. */
  indexOf(relayId: Uint8Array): number;
  exit(): RelayRecord | undefined;
}
