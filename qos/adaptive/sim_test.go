package adaptive

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"
)

// The goals of the adaptive limit, checked on a simulated clock against
// models of the runtimes sequoia is put in front of: a burst of 200 calls
// of 40ms, ceiling 100, sequoia's retry policy (8 attempts, backoff from
// 25ms doubling to 1s, jittered), each runtime running 4 at once. Counts
// and simulated times only: nothing here depends on the machine's speed.

// runtimeModel is how a runtime answers a call: run it now, queue it, or
// refuse it.
type runtimeModel struct {
	limit int // runs at once
	queue int // may wait (queue-proxy); 0: refuses beyond limit
	// cold is the cold start of a call that finds no idle instance (a
	// platform with an instance per call, like Lambda); 0: none.
	cold time.Duration
}

type simEvent struct {
	at   time.Duration
	seq  int
	kind int // evAnswer, evRetry
	call *simCall
}

const (
	evAnswer = iota
	evRetry
)

type simCall struct {
	attempt    int
	sent       time.Duration
	sentFlight int
	throttled  bool
}

type eventQ []simEvent

func (q eventQ) Len() int { return len(q) }
func (q eventQ) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQ) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQ) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *eventQ) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type simResult struct {
	clientErrors, rejections, completed int
	within2x                            time.Duration // first time the limit was within 2x of the runtime's; -1: never
	limits                              []int         // the limit every 100ms
	end                                 time.Duration
	a                                   AIMD
}

// simulate runs a burst of n calls through a scheduler with the algorithm
// against rt.
func simulate(t *testing.T, cfg Config, rt runtimeModel, n int) simResult {
	t.Helper()
	const (
		exec = 40 * time.Millisecond
		net  = 200 * time.Microsecond // one way
	)
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Unix(1_000_000, 0)
	a := NewAIMD(cfg)
	res := simResult{within2x: -1}
	var q eventQ
	seq := 0
	push := func(at time.Duration, kind int, c *simCall) {
		seq++
		heap.Push(&q, simEvent{at: at, seq: seq, kind: kind, call: c})
	}
	var pending []*simCall // sequoia's queue, FIFO
	for range n {
		pending = append(pending, &simCall{})
	}
	inFlight, running, idle := 0, 0, 0
	var waiting []*simCall // the runtime's queue
	now := time.Duration(0)
	arrive := func(c *simCall) { // the call reaches the runtime
		switch {
		case running < rt.limit:
			running++
			d := exec
			if idle > 0 {
				idle--
			} else {
				d += rt.cold
			}
			push(now+net+d+net, evAnswer, c)
		case len(waiting) < rt.queue:
			waiting = append(waiting, c)
		default:
			res.rejections++
			c.throttled = true
			push(now+2*net, evAnswer, c)
		}
	}
	dispatch := func() {
		for inFlight < a.Limit() && len(pending) > 0 {
			c := pending[0]
			pending = pending[1:]
			inFlight++
			c.sent, c.sentFlight, c.throttled = now, inFlight, false
			arrive(c) // the network's delay is in the answer's time
		}
	}
	nextSample := time.Duration(0)
	dispatch()
	for q.Len() > 0 {
		e := heap.Pop(&q).(simEvent)
		for nextSample <= e.at {
			res.limits = append(res.limits, a.Limit())
			nextSample += 100 * time.Millisecond
		}
		now = e.at
		c := e.call
		switch e.kind {
		case evRetry:
			pending = append(pending, c)
		case evAnswer:
			if c.throttled {
				a.Throttle(t0.Add(now), inFlight)
				inFlight--
				c.attempt++
				if c.attempt >= 8 {
					res.clientErrors++
					break
				}
				d := 25 * time.Millisecond << min(c.attempt-1, 20)
				d = min(d, time.Second)
				d = d/2 + time.Duration(rng.Int64N(int64(d/2)+1))
				push(now+d, evRetry, c)
				break
			}
			a.Success(t0.Add(now), inFlight, Sample{Function: "f", RTT: now - c.sent, InFlight: c.sentFlight})
			inFlight--
			res.completed++
			running--
			idle++
			if len(waiting) > 0 { // the runtime starts its oldest waiter
				w := waiting[0]
				waiting = waiting[1:]
				running++
				push(now+exec+net, evAnswer, w)
			}
		}
		if res.within2x < 0 && a.Limit() <= 2*rt.limit {
			res.within2x = now
		}
		dispatch()
	}
	res.end, res.a = now, a
	return res
}

// TestSimRefusingRuntime: of-watchdog with max_inflight 4 behind a
// ceiling of 100: no client sees a 429, the runtime refuses at most 5x
// its limit, and the limit is within 2x of 4 within a second.
func TestSimRefusingRuntime(t *testing.T) {
	res := simulate(t, Config{Ceiling: 100, Initial: 10}, runtimeModel{limit: 4}, 200)
	t.Logf("completed %d, client errors %d, rejections %d, within 2x at %v, limits %v, end %v, %s",
		res.completed, res.clientErrors, res.rejections, res.within2x, res.limits, res.end, res.a.String())
	if res.completed != 200 || res.clientErrors != 0 {
		t.Errorf("completed %d of 200, %d refused to clients; want all, none", res.completed, res.clientErrors)
	}
	if res.rejections > 5*4 {
		t.Errorf("the runtime refused %d calls, want at most 20 (5x its limit)", res.rejections)
	}
	if res.within2x < 0 || res.within2x > time.Second {
		t.Errorf("the limit came within 2x of 4 at %v, want within 1s", res.within2x)
	}
}

// TestSimSerialRuntime: the Lambda Runtime Interface Emulator, one at a
// time.
func TestSimSerialRuntime(t *testing.T) {
	res := simulate(t, Config{Ceiling: 100, Initial: 10}, runtimeModel{limit: 1}, 50)
	t.Logf("completed %d, client errors %d, rejections %d, within 2x at %v, %s",
		res.completed, res.clientErrors, res.rejections, res.within2x, res.a.String())
	// The first wave of 10 costs 9 refusals whatever the algorithm; after
	// it, probing costs one now and then.
	if res.completed != 50 || res.clientErrors != 0 || res.rejections > 9+5 || res.within2x > time.Second {
		t.Errorf("completed %d of 50, %d client errors, %d rejections (want <= 14), within 2x at %v",
			res.completed, res.clientErrors, res.rejections, res.within2x)
	}
}

// TestSimQueueingRuntime: Knative's queue-proxy with container
// concurrency 4 and a queue of 40: it never refuses this burst, but its
// latency rises with what waits in it, and the limit settles within 2x of
// 4, so the waiting happens in sequoia's queues.
func TestSimQueueingRuntime(t *testing.T) {
	for _, initial := range []int{10, 100} {
		res := simulate(t, Config{Ceiling: 100, Initial: initial}, runtimeModel{limit: 4, queue: 40}, 400)
		t.Logf("initial %d: completed %d, client errors %d, rejections %d, within 2x at %v, limits %v, %s",
			initial, res.completed, res.clientErrors, res.rejections, res.within2x, res.limits, res.a.String())
		if res.completed != 400 || res.clientErrors != 0 {
			t.Errorf("initial %d: completed %d of 400, %d client errors", initial, res.completed, res.clientErrors)
		}
		if res.within2x < 0 || res.within2x > time.Second {
			t.Errorf("initial %d: within 2x of 4 at %v, want within 1s", initial, res.within2x)
		}
		// Settled: from the second second on, never above 2x.
		for i, l := range res.limits {
			if i >= 10 && l > 8 {
				t.Errorf("initial %d: limit %d at %v, want at most 8 once settled", initial, l, time.Duration(i)*100*time.Millisecond)
				break
			}
		}
	}
}

// TestSimAtTheRealLimit: with the ceiling at the runtime's limit, nothing
// is refused and the slow start reaches the ceiling.
func TestSimAtTheRealLimit(t *testing.T) {
	res := simulate(t, Config{Ceiling: 50, Initial: 10}, runtimeModel{limit: 50}, 500)
	if res.rejections != 0 || res.completed != 500 || res.a.Limit() != 50 {
		t.Errorf("rejections %d, completed %d, limit %d; want 0, 500, 50", res.rejections, res.completed, res.a.Limit())
	}
}

// TestSimColdStarts: a platform with an instance per call and a cold start
// of 250ms for each new one (Lambda, OpenWhisk) does not queue: its
// latency rises while the limit grows, with the new instances, not with
// what waits. The limit is not cut, and reaches the ceiling.
func TestSimColdStarts(t *testing.T) {
	res := simulate(t, Config{Ceiling: 100, Initial: 10}, runtimeModel{limit: 1000, cold: 250 * time.Millisecond}, 2000)
	t.Logf("completed %d, rejections %d, limits %v, end %v, %s", res.completed, res.rejections, res.limits, res.end, res.a.String())
	if res.completed != 2000 || res.a.Cuts != 0 || res.a.Limit() != 100 {
		t.Errorf("completed %d, %d queueing cuts, limit %d at the end; want 2000, none, 100", res.completed, res.a.Cuts, res.a.Limit())
	}
}
