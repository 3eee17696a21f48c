// A burst of two-step chains, ten times the platform's concurrency limit,
// started at once (the Sequoia study's headline situation). Every chain
// must complete: none refused, none dropped after its first step, no
// throttling by the platform.
//   loadtest/k6/run.sh chain_burst
import { check } from 'k6';
import { collectServerCounters, EXEC_MS, goalThresholds, LIMIT, resetEmulator, runChain } from './lib/sequoia.js';

const CHAINS = parseInt(__ENV.CHAINS || String(10 * LIMIT), 10);
// The platform runs 2 x CHAINS invocations, LIMIT at a time: the burst's
// shortest possible makespan.
const IDEAL_MS = (2 * CHAINS * EXEC_MS) / LIMIT;

export const options = {
  scenarios: {
    burst: {
      executor: 'per-vu-iterations',
      vus: CHAINS,
      iterations: 1,
      maxDuration: '5m',
    },
  },
  thresholds: goalThresholds({
    chain_ok: ['rate==1'],
    chains_refused: ['count==0'],
    chains_completed: [`count==${CHAINS}`],
    // Queueing stretches chains, but no chain waits much beyond the
    // burst's ideal makespan (5x and a second of slack for cold starts and
    // a shared machine).
    chain_duration: [`p(99)<${5 * IDEAL_MS + 1000}`],
  }),
};

export function setup() {
  resetEmulator();
}

export default function () {
  check(runChain(2), { 'chain completed': (done) => done });
}

export function teardown() {
  collectServerCounters();
}
