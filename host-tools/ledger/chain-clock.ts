// A development chain whose clock follows another one: a grid of emulated meters runs on a virtual clock
// (often faster than real time), and the market's gate closures must fall when the meters' clocks say so.
// Every tick, when the followed clock is ahead of the chain's latest block, one empty block is mined at the
// followed clock's time (evm_setNextBlockTimestamp + evm_mine: EDR and anvil both have them), so the chain is
// never more than one tick behind. A chain cannot go back in time: a followed clock behind it is left alone.
import type { Ledger } from './ledger-client.ts';

export interface ChainClock {
  /** Brings the chain up to the followed clock now (also done every tick). */
  sync(): Promise<void>;
  stop(): void;
}

export function followClock(ledger: Ledger, now: () => number, tickMs = 250): ChainClock {
  let running: Promise<void> | undefined;
  const sync = (): Promise<void> => {
    running ??= (async () => {
      try {
        const target = Math.floor(now());
        const latest = Number((await ledger.publicClient.getBlock()).timestamp);
        if (target > latest) {
          await ledger.request('evm_setNextBlockTimestamp', [target]);
          await ledger.request('evm_mine');
        }
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  const timer = setInterval(() => void sync().catch(() => {}), tickMs);
  timer.unref();
  return {
    sync,
    stop: () => clearInterval(timer),
  };
}
