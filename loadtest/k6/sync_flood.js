// Synchronous interactive calls mixed with a background flood of batch
// work that keeps the platform saturated. The interactive class is served
// ahead of batch (SEQUOIA_BATCH_SHARE of grants goes to batch while both
// wait), so interactive latency stays near its execution time.
//   loadtest/k6/run.sh sync_flood
import { check } from 'k6';
import { collectServerCounters, goalThresholds, invoke, LIMIT, resetEmulator } from './lib/sequoia.js';

const DURATION = __ENV.DURATION || '20s';

export const options = {
  scenarios: {
    // Five times the platform's limit in batch callers, back to back.
    flood: {
      executor: 'constant-vus',
      vus: 5 * LIMIT,
      duration: DURATION,
      exec: 'flood',
    },
    interactive: {
      executor: 'constant-arrival-rate',
      rate: 20,
      timeUnit: '1s',
      duration: DURATION,
      startTime: '2s',
      preAllocatedVUs: 20,
      maxVUs: 100,
      exec: 'interactive',
    },
  },
  thresholds: goalThresholds({
    'http_req_failed{scenario:interactive}': ['rate==0'],
    // 20 ms of execution; waits behind the flood are bounded by priority.
    'http_req_duration{scenario:interactive}': ['p(95)<300', 'p(99)<1000'],
  }),
};

export function setup() {
  resetEmulator();
}

export function flood() {
  // Batch work may be refused by sequoia under overload; the platform must
  // never throttle it.
  invoke('report', { priority: 'batch', execMs: 100 });
}

export function interactive() {
  const res = invoke('checkout', { priority: 'interactive', execMs: 20 });
  check(res, { 'interactive 200': (r) => r.status === 200 });
}

export function teardown() {
  collectServerCounters();
}
