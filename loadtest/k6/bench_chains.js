// One burst of chains for `sequoia bench chains -clients k6` (embedded in
// the sequoia binary; loadtest.RunChainsK6 runs it): CHAINS virtual users
// start at once, each running one chain of STEPS steps on a connection of
// its own, and give up on it when DEADLINE_MS passes (0: never). The
// summary (written to SUMMARY) is what the bench reads back.
//
// Environment: BASE_URL, CHAINS, STEPS, DEADLINE_MS, UNTOLD (1: no
// X-Sequoia-Chain-Steps), EXEC_MS (subtracted from step latencies: the
// queueing time), SUMMARY (a file path).
import http from 'k6/http';
import { Counter, Trend } from 'k6/metrics';

const BASE = __ENV.BASE_URL;
const CHAINS = parseInt(__ENV.CHAINS || '100', 10);
const STEPS = parseInt(__ENV.STEPS || '2', 10);
const DEADLINE_MS = parseInt(__ENV.DEADLINE_MS || '0', 10);
const UNTOLD = __ENV.UNTOLD === '1';
const EXEC_MS = parseInt(__ENV.EXEC_MS || '0', 10);

export const options = {
  scenarios: {
    burst: { executor: 'per-vu-iterations', vus: CHAINS, iterations: 1, maxDuration: '10m' },
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(99)', 'count'],
  discardResponseBodies: true,
};

const completed = new Counter('chains_completed');
const refused = new Counter('chains_refused');
const dropped = new Counter('chains_dropped');
const failed = new Counter('chains_failed');
const throttles = new Counter('client_429s');
const dropped504 = new Counter('chains_dropped_504');
const chainLatency = new Trend('chain_latency', true);
// Queueing time: an answered step's latency less EXEC_MS; every step sent,
// the same, or its whole latency when it was not run.
const queueAnswered = new Trend('queue_answered', true);
const queueAll = new Trend('queue_all', true);

function end(step, status) {
  if (step === 1 && (status === 429 || status === 503)) refused.add(1);
  else if (step === 1) failed.add(1);
  else {
    dropped.add(1);
    if (status === 504) dropped504.add(1);
  }
}

export default function () {
  const id = `k6b-${__VU}-${Date.now()}`;
  const start = Date.now();
  for (let step = 1; step <= STEPS; step++) {
    const headers = { 'Content-Type': 'application/json', 'X-Sequoia-Chain-Id': id };
    if (step === 1) {
      if (DEADLINE_MS > 0) headers['X-Sequoia-Deadline-Ms'] = String(DEADLINE_MS);
      if (!UNTOLD) headers['X-Sequoia-Chain-Steps'] = String(STEPS);
    }
    let timeout = 120000;
    if (DEADLINE_MS > 0) {
      timeout = DEADLINE_MS - (Date.now() - start);
      if (timeout <= 0) {
        end(step, 0);
        return;
      }
    }
    const url = `${BASE}/api/v1/namespaces/guest/actions/step${step}?blocking=true&result=true`;
    const sent = Date.now();
    const res = http.post(url, '{}', { headers, timeout });
    const took = Date.now() - sent;
    if (res.status === 429) throttles.add(1);
    if (res.status < 200 || res.status > 299) {
      queueAll.add(took);
      end(step, res.status);
      return;
    }
    queueAnswered.add(Math.max(0, took - EXEC_MS));
    queueAll.add(Math.max(0, took - EXEC_MS));
  }
  completed.add(1);
  chainLatency.add(Date.now() - start);
}

export function handleSummary(data) {
  const out = {};
  out[__ENV.SUMMARY] = JSON.stringify({ metrics: data.metrics, state: data.state });
  return out;
}
