// A chain fan-out: each chain splits into WIDTH parallel invocations under
// its chain id, then joins them. Continuations (the parallel branches and
// the join) go ahead of new chains, so no chain is dropped half-way.
//   loadtest/k6/run.sh fanout
import { check } from 'k6';
import { collectServerCounters, EXEC_MS, goalThresholds, LIMIT, resetEmulator, runFanOut } from './lib/sequoia.js';

const WIDTH = parseInt(__ENV.WIDTH || '5', 10);
const CHAINS = parseInt(__ENV.CHAINS || String(4 * LIMIT), 10);
// CHAINS x (WIDTH + 2) invocations, LIMIT at a time.
const IDEAL_MS = (CHAINS * (WIDTH + 2) * EXEC_MS) / LIMIT;

export const options = {
  scenarios: {
    fanout: {
      executor: 'per-vu-iterations',
      vus: CHAINS,
      iterations: 1,
      maxDuration: '5m',
    },
  },
  batchPerHost: 0, // all branches of a chain at once
  thresholds: goalThresholds({
    chain_ok: ['rate==1'],
    chains_refused: ['count==0'],
    chains_completed: [`count==${CHAINS}`],
    chain_duration: [`p(99)<${5 * IDEAL_MS + 1000}`],
  }),
};

export function setup() {
  resetEmulator();
}

export default function () {
  check(runFanOut(WIDTH), { 'fan-out chain completed': (done) => done });
}

export function teardown() {
  collectServerCounters();
}
