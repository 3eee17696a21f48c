// Smoke: a few seconds of two-step chains and synchronous calls through
// sequoia, with the platform held at its limit. CI runs this one.
//   loadtest/k6/run.sh smoke
import { check } from 'k6';
import { collectServerCounters, goalThresholds, invoke, LIMIT, resetEmulator, runChain } from './lib/sequoia.js';

export const options = {
  scenarios: {
    // Twice the platform's limit in chains at once: without sequoia, some
    // would be throttled mid-chain.
    chains: {
      executor: 'per-vu-iterations',
      vus: 2 * LIMIT,
      iterations: 3,
      maxDuration: '60s',
      exec: 'chains',
    },
    sync: {
      executor: 'constant-arrival-rate',
      rate: 20,
      timeUnit: '1s',
      duration: '3s',
      preAllocatedVUs: 10,
      maxVUs: 40,
      exec: 'sync',
    },
  },
  thresholds: goalThresholds({
    chain_ok: ['rate==1'],
    chains_completed: [`count==${2 * LIMIT * 3}`],
    http_req_failed: ['rate==0'],
  }),
};

export function setup() {
  resetEmulator();
}

export function chains() {
  check(runChain(2), { 'chain completed': (done) => done });
}

export function sync() {
  const res = invoke('hello', { priority: 'interactive', execMs: 10 });
  check(res, { 'sync call 200': (r) => r.status === 200 });
}

export function teardown() {
  collectServerCounters();
}
