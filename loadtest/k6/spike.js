// Steady load at 40% of the platform's capacity with a spike to 150%:
// the spike waits in sequoia's queue instead of being throttled by the
// platform, and nothing fails as long as the queue absorbs it.
//   loadtest/k6/run.sh spike
import { check } from 'k6';
import { collectServerCounters, goalThresholds, invoke, LIMIT, resetEmulator } from './lib/sequoia.js';

const EXEC = 200; // ms per invocation
const CAPACITY = Math.floor((LIMIT * 1000) / EXEC); // invocations per second the platform completes

export const options = {
  scenarios: {
    steady: {
      executor: 'constant-arrival-rate',
      rate: Math.floor(0.4 * CAPACITY),
      timeUnit: '1s',
      duration: '20s',
      preAllocatedVUs: LIMIT,
      maxVUs: 10 * LIMIT,
      exec: 'call',
      tags: { phase: 'steady' },
    },
    spike: {
      executor: 'ramping-arrival-rate',
      startTime: '8s',
      startRate: 0,
      timeUnit: '1s',
      stages: [
        { target: Math.floor(1.5 * CAPACITY), duration: '1s' },
        { target: Math.floor(1.5 * CAPACITY), duration: '3s' },
        { target: 0, duration: '1s' },
      ],
      preAllocatedVUs: 2 * LIMIT,
      maxVUs: 20 * LIMIT,
      exec: 'call',
      tags: { phase: 'spike' },
    },
  },
  thresholds: goalThresholds({
    // The queue (SEQUOIA_QUEUE_CAPACITY) holds the spike: nothing refused.
    http_req_failed: ['rate==0'],
    sequoia_refusals: ['count==0'],
    // Waiting is bounded: the spike's excess drains in a few seconds.
    'http_req_duration{scenario:steady}': ['p(99)<5000'],
  }),
};

export function setup() {
  resetEmulator();
}

export function call() {
  const res = invoke('resize', { execMs: EXEC });
  check(res, { 'invocation 200': (r) => r.status === 200 });
}

export function teardown() {
  collectServerCounters();
}
