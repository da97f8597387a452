// Bad input to the DSO's asset requests (fast-check): random bytes, envelopes with bytes changed, anything
// sealed properly but not a request, and attested requests with any field values. handleRequest never throws,
// answers nothing it cannot read, and accepts only what passes every check.
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode } from '../../firmware/src/protocol/cbor.ts';
import { TRADING_RING } from '../../firmware/src/protocol/slot-map.ts';
import { seal } from '../unit/verifier-fixtures.ts';
import { attestedRequest, DELIVERY, issuanceFixture } from './asset-fixtures.ts';

test('no input makes handleRequest throw; only well-formed, attested requests within the checks are accepted', async () => {
  const f = await issuanceFixture({ log: () => {} });
  try {
    const meter = f.meter('fuzz-meter');
    const valid = seal(f.dsoKey.publicKey, attestedRequest(meter, { interval: DELIVERY }).signed);
    const outcomeOf = (payload: Uint8Array) => {
      const before = f.replies.length;
      const outcome = f.issuer.handleRequest('fuzz-meter', payload);
      if (outcome.outcome === 'unreadable') assert.is(f.replies.length, before, 'nothing unreadable is answered');
      return outcome;
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => outcomeOf(bytes).outcome === 'unreadable'),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const changed = valid.slice();
        changed[at] ^= xor;
        return outcomeOf(changed).outcome === 'unreadable';
      }),
      { numRuns: 300 },
    );
    // sealed properly, so the MAC passes: random bytes, random CBOR, the signed request with a byte changed
    const signed = attestedRequest(meter, { interval: DELIVERY }).signed;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }),
          fc.anything({ maxDepth: 2 }).map((v) => {
            try {
              return encode(JSON.parse(JSON.stringify(v ?? null)));
            } catch {
              return new Uint8Array([0xf6]);
            }
          }),
          fc
            .tuple(fc.integer({ min: 0, max: signed.length - 1 }), fc.integer({ min: 1, max: 255 }))
            .map(([at, xor]) => {
              const changed = signed.slice();
              changed[at] ^= xor;
              return changed;
            }),
        ),
        (plaintext) => {
          const outcome = outcomeOf(seal(f.dsoKey.publicKey, plaintext));
          return (
            outcome.outcome === 'unreadable' ||
            (outcome.outcome === 'refused' && ['bad-attestation', 'not-authorized'].includes(outcome.reason)) ||
            outcome.outcome === 'accepted'
          );
        },
      ),
      { numRuns: 200 },
    );
    assert.is(f.store.requestsOf(DELIVERY).length, f.store.summary().requested, 'consistent records');
    // attested requests with any values: accepted exactly when the interval, the limits and the slot allow
    let n = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 32 }),
        fc.integer({ min: 0, max: 5000 }),
        fc.integer({ min: 0, max: 5000 }),
        fc.constantFrom(...TRADING_RING),
        (intervalOffset, productionWh, consumptionWh, slot) => {
          const m = f.meter(`fz-${n++}`);
          const interval = intervalOffset % 4 === 0 ? DELIVERY : intervalOffset;
          const outcome = f.request(m, { interval, productionWh, consumptionWh, slot }).outcome;
          const fits = productionWh <= 1750 && consumptionWh <= 2750;
          const timely = interval === DELIVERY || interval === DELIVERY + 1;
          return outcome.outcome === (fits && timely ? 'accepted' : 'refused');
        },
      ),
      { numRuns: 150 },
    );
  } finally {
    await f.close();
  }
});

test.run();
