// A burst of two-step chains, ten times the platform's concurrency limit,
// started at once (the Sequoia study's headline situation). Every chain
// must complete: none refused, none dropped after its first step, no
// throttling by the platform.
//   loadtest/k6/run.sh chain_burst
import { check } from 'k6';
import { collectServerCounters, goalThresholds, LIMIT, resetEmulator, runChain } from './lib/sequoia.js';

const CHAINS = parseInt(__ENV.CHAINS || String(10 * LIMIT), 10);

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
    // Queueing stretches chains, but every one ends well within the queue
    // timeout: the platform runs 2 x CHAINS invocations at LIMIT at a time.
    chain_duration: ['p(99)<20000'],
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
