// Shared helpers for sequoia's k6 scenarios: invoking OpenWhisk actions
// through sequoia, running chains, and the custom metrics and thresholds
// that encode sequoia's goals.
//
// Environment (run.sh sets all of them):
//   SEQUOIA_URL     where invocations go: sequoia, or the platform itself
//   EMULATOR_URL    the `sequoia emulate` platform, for its counters (optional)
//   ADMIN_URL       sequoia's admin port, for its own counters (optional)
//   PLATFORM_LIMIT  the platform's concurrency limit
//   EXEC_MS         execution time asked of each invocation
import http from 'k6/http';
import exec from 'k6/execution';
import { Counter, Gauge, Rate, Trend } from 'k6/metrics';

export const BASE = __ENV.SEQUOIA_URL || 'http://127.0.0.1:8080';
export const EMULATOR = __ENV.EMULATOR_URL || '';
export const ADMIN = __ENV.ADMIN_URL || '';
export const LIMIT = parseInt(__ENV.PLATFORM_LIMIT || '20', 10);
export const EXEC_MS = parseInt(__ENV.EXEC_MS || '50', 10);
const NAMESPACE = __ENV.NAMESPACE || 'guest';

// Chains, as the client sees them.
export const chainsCompleted = new Counter('chains_completed');
// The first step was refused (429/503): the client may retry, no work was wasted.
export const chainsRefused = new Counter('chains_refused');
// A later step failed after earlier ones ran: wasted work. sequoia's goal is zero.
export const midChainDrops = new Counter('mid_chain_drops');
// The first step failed otherwise.
export const chainsFailed = new Counter('chains_failed');
export const chainOK = new Rate('chain_ok');
export const chainDuration = new Trend('chain_duration', true);
// 429/503 answers in the platform's own format that reached the client:
// sequoia exists so that there are none.
export const platformThrottles = new Counter('platform_throttles');
// sequoia's own refusals (queue full, queue timeout, chain refused): allowed
// under overload, with Retry-After.
export const sequoiaRefusals = new Counter('sequoia_refusals');
// Counted at the end from the emulator and from sequoia's /metrics.
export const emulatorThrottles = new Counter('emulator_throttles');
export const emulatorPeak = new Gauge('emulator_peak_concurrency');
export const serverDrops = new Counter('server_chains_dropped');

// goalThresholds are the thresholds every scenario shares: no platform
// throttling, no mid-chain drop, seen from the client, the platform and
// sequoia itself where they can be reached.
export function goalThresholds(extra) {
  const t = {
    platform_throttles: ['count==0'],
    mid_chain_drops: ['count==0'],
    checks: ['rate==1'],
  };
  if (EMULATOR) {
    t.emulator_throttles = ['count==0'];
    t.emulator_peak_concurrency = [`value<=${LIMIT}`];
  }
  if (ADMIN) {
    t.server_chains_dropped = ['count==0'];
  }
  return Object.assign(t, extra || {});
}

let seq = 0;

// newChainId returns an id unique in the test run (an HTTP token, as
// sequoia requires).
export function newChainId() {
  seq++;
  return `k6-${exec.vu.idInTest}-${exec.vu.iterationInInstance}-${seq}`;
}

// invoke calls an OpenWhisk action synchronously. o: chain, priority,
// deadlineMs, steps, execMs, tags.
export function invoke(action, o = {}) {
  const [url, body, params] = request(action, o);
  const res = http.post(url, body, params);
  classify(res);
  return res;
}

// request builds the arguments of one invocation (for http.post or
// http.batch).
export function request(action, o = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (o.chain) headers['X-Sequoia-Chain-Id'] = o.chain;
  if (o.priority) headers['X-Sequoia-Priority'] = o.priority;
  if (o.deadlineMs) headers['X-Sequoia-Deadline-Ms'] = String(o.deadlineMs);
  if (o.steps) headers['X-Sequoia-Chain-Steps'] = String(o.steps);
  const url = `${BASE}/api/v1/namespaces/${NAMESPACE}/actions/${action}?blocking=true&result=true`;
  const body = JSON.stringify({ exec_ms: o.execMs === undefined ? EXEC_MS : o.execMs });
  return [url, body, { headers, tags: Object.assign({ action }, o.tags || {}), timeout: '120s' }];
}

// classify counts throttles by who answered: sequoia's own errors say so.
export function classify(res) {
  if (res.status !== 429 && res.status !== 503) return;
  const own = typeof res.body === 'string' && res.body.indexOf('sequoia:') >= 0;
  if (own) sequoiaRefusals.add(1);
  else platformThrottles.add(1);
}

function ok(res) {
  return res.status >= 200 && res.status < 300;
}

// endChain records how a chain ended. step is the 0-based step that ended
// it early, or -1 when it completed.
function endChain(start, step, status) {
  if (step < 0) {
    chainsCompleted.add(1);
    chainOK.add(true);
    chainDuration.add(Date.now() - start);
    return true;
  }
  chainOK.add(false);
  if (step > 0) midChainDrops.add(1);
  else if (status === 429 || status === 503) chainsRefused.add(1);
  else chainsFailed.add(1);
  return false;
}

// runChain runs a sequential chain of `steps` invocations of actions
// step1..stepN under one chain id, as a function that calls the next
// would. The first request announces the chain's length.
export function runChain(steps, o = {}) {
  const chain = newChainId();
  const start = Date.now();
  for (let i = 0; i < steps; i++) {
    const first = i === 0;
    const res = invoke(`step${i + 1}`, Object.assign({}, o, {
      chain,
      steps: first ? steps : undefined,
      deadlineMs: first ? o.deadlineMs : undefined,
    }));
    if (!ok(res)) return endChain(start, i, res.status);
  }
  return endChain(start, -1, 0);
}

// runFanOut runs a chain that splits into `width` parallel invocations
// and joins them: split, width x work (in parallel), join.
export function runFanOut(width, o = {}) {
  const chain = newChainId();
  const start = Date.now();
  const res = invoke('split', Object.assign({}, o, { chain, steps: width + 2 }));
  if (!ok(res)) return endChain(start, 0, res.status);
  const reqs = [];
  for (let i = 0; i < width; i++) {
    const [url, body, params] = request('work', Object.assign({}, o, { chain, tags: { branch: String(i) } }));
    reqs.push(['POST', url, body, params]);
  }
  const answers = http.batch(reqs);
  let failed = 0;
  for (const r of answers) {
    classify(r);
    if (!ok(r)) failed = r.status || 1;
  }
  if (failed) return endChain(start, 1, failed);
  const join = invoke('join', Object.assign({}, o, { chain }));
  if (!ok(join)) return endChain(start, 2, join.status);
  return endChain(start, -1, 0);
}

// resetEmulator zeroes the emulator's counters (call from setup).
export function resetEmulator() {
  if (!EMULATOR) return;
  const r = http.post(`${EMULATOR}/emulator/reset`, null, { tags: { name: 'emulator' } });
  if (r.status !== 200 && r.status !== 204) throw new Error(`emulator reset: ${r.status} ${r.body}`);
}

// collectServerCounters reads the emulator's and sequoia's counters into
// the emulator_* and server_* metrics (call from teardown).
export function collectServerCounters() {
  if (EMULATOR) {
    const r = http.get(`${EMULATOR}/emulator/stats`, { tags: { name: 'emulator' } });
    if (r.status !== 200) throw new Error(`emulator stats: ${r.status}`);
    const s = r.json();
    emulatorThrottles.add(s.throttles);
    emulatorPeak.add(s.peak_concurrency);
    console.log(`emulator: ${s.invocations} invocations, ${s.cold_starts} cold starts, ${s.throttles} throttles, peak concurrency ${s.peak_concurrency} of ${s.limit}`);
  }
  if (ADMIN) {
    const r = http.get(`${ADMIN}/metrics`, { tags: { name: 'admin' } });
    if (r.status !== 200) throw new Error(`sequoia metrics: ${r.status}`);
    serverDrops.add(sumMetric(r.body, 'sequoia_chains_dropped_total'));
  }
}

// sumMetric sums every series of a counter in Prometheus' text format.
export function sumMetric(text, name) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name + '{') || line.startsWith(name + ' ')) {
      sum += parseFloat(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return sum;
}
