package qos

import (
	"math"
	"sync/atomic"
	"time"
)

// ewma is an exponentially weighted moving average, updated without a
// lock: its value's bits live in one word, and zero bits mean "no sample
// yet" (a value of +0 is kept as -0, which compares equal). The zero value
// is ready to use.
type ewma struct{ bits atomic.Uint64 }

// ewmaAlpha weighs about the last 40 samples: one round of a 40-slot pool,
// steady against scheduling noise, quick against a real change.
const ewmaAlpha = 0.05

var negZeroBits = math.Float64bits(math.Copysign(0, -1))

func (e *ewma) add(x float64) { e.addAt(x, ewmaAlpha) }

// addAt moves the average alpha of the way towards x (the first sample
// sets it).
func (e *ewma) addAt(x, alpha float64) {
	for {
		old := e.bits.Load()
		v := x
		if old != 0 {
			p := math.Float64frombits(old)
			v = p + alpha*(x-p)
		}
		b := math.Float64bits(v)
		if b == 0 {
			b = negZeroBits
		}
		if e.bits.CompareAndSwap(old, b) {
			return
		}
	}
}

// value returns the average (0 before any sample) and whether it has one.
func (e *ewma) value() (float64, bool) {
	b := e.bits.Load()
	return math.Float64frombits(b), b != 0
}

// estimator projects when admitted work will be done. It keeps:
//
//   - per-function durations: how long an invocation held its worker slot
//     (grant to release, so scheduling and HTTP overheads are counted), as
//     an EWMA, one over all functions, and one over the invocations that
//     waited for their slot (the pace of a full pool: drain);
//   - learned chain lengths per entry function, from ended chains;
//   - the callers' turnaround between a chain's steps (answer sent to next
//     request received), which a chain's critical path pays once per step,
//     as an EWMA and as a slowly decaying high-water mark (how long a
//     caller may stay quiet and still come back: quiet.go);
//   - a reservation timeline: for each worker slot, when the work admitted
//     so far is projected to leave it free. A new chain takes the slot that
//     frees first and holds it for all its steps, which is how the
//     scheduler runs chains once continuations go first;
//   - outstanding steps: steps of admitted chains not yet dispatched, and
//     unplanned steps running now (steps beyond their chain's expected
//     length), for a fluid bound (all of them spread over every slot, or
//     over the rate limit) that catches a timeline that ran ahead of
//     reality. An unplanned step counts while it holds its slot and not a
//     moment longer: it is never booked on the timeline after the fact.
//
// Everything but the timeline is lock-free: the durations and chain
// lengths (per function in the scheduler's flight table, and over all
// functions), the turnaround, the outstanding and unplanned steps are
// atomics. The timeline (timeline.go) is split in lines, each under its
// own lock, touched when a chain starts or ends before its booking.
type estimator struct {
	fn      flightTable // per function: flight.slot and flight.steps
	all     ewma
	gap     ewma    // caller turnaround between a chain's steps
	gapHigh highMax // its decaying high-water mark
	// busy is the slot time of invocations that waited for their slot:
	// how fast a full pool drains (more CPU and scheduling per step than
	// a quiet pool's, as a burst has the host busy); busyN counts its
	// samples, up to busySamples: the plain mean of the first ones, the
	// EWMA after.
	busy        ewma
	busyN       atomic.Int64
	outstanding atomic.Int64
	// unplanned counts the steps running now beyond their chain's
	// reservation (a chain longer than expected).
	unplanned atomic.Int64
	def       time.Duration
	// rateBits is the rate limit in invocations per second (float64
	// bits; 0 = unlimited): a cluster lease may change it (SetRate).
	rateBits atomic.Uint64

	lines [maxLines]timeline
}

func newEstimator(def time.Duration, rate float64, fn flightTable) *estimator {
	e := &estimator{fn: fn, def: def}
	e.rateBits.Store(math.Float64bits(rate))
	return e
}

// rate is the rate limit in invocations per second; 0 = unlimited.
func (e *estimator) rate() float64 { return math.Float64frombits(e.rateBits.Load()) }

// observe records that an invocation of f (a flight table entry, nil for
// none) held its slot for d; queued says it had waited for the slot (the
// pool was full).
func (e *estimator) observe(f *flight, d time.Duration, queued bool) {
	if queued {
		n := e.busyN.Load()
		if n < busySamples {
			n = e.busyN.Add(1)
		}
		e.busy.addAt(float64(d), max(ewmaAlpha, 1/float64(n)))
	}
	if f != nil {
		f.slot.add(float64(d))
	}
	e.all.add(float64(d))
}

// duration is the estimated slot time of one invocation of fn ("" for any
// function).
func (e *estimator) duration(fn string) time.Duration {
	var f *flight
	if fn != "" {
		f = e.fn.GetString(fn)
	}
	return e.durationOf(f)
}

// durationOf is the estimated slot time of one invocation of the function
// whose flight table entry is f (nil: any function): its own average, else
// the one over all functions, else the default.
func (e *estimator) durationOf(f *flight) time.Duration {
	if f != nil {
		if v, ok := f.slot.value(); ok {
			return time.Duration(v)
		}
	}
	if v, ok := e.all.value(); ok {
		return time.Duration(v)
	}
	return e.def
}

// busySamples is how many invocations that waited for their slot the
// full pool's pace needs before admission uses it: the EWMA's memory, so
// that one slow outlier (a pause, a cold start) is not the pace.
const busySamples = int64(1 / ewmaAlpha)

// drain is the slot time a full pool takes per step, over all functions:
// the average of the invocations that waited for their slot, once there
// are busySamples of them and when longer than the average of all.
func (e *estimator) drain() time.Duration {
	d := e.durationOf(nil)
	if v, ok := e.busy.value(); ok && e.busyN.Load() >= busySamples && time.Duration(v) > d {
		return time.Duration(v)
	}
	return d
}

// observed reports whether f's function (nil: any function) has been
// observed, so that its estimate is not the configured default.
func (e *estimator) observed(f *flight) bool {
	if f != nil {
		_, ok := f.slot.value()
		return ok
	}
	_, ok := e.all.value()
	return ok
}

// work is what a chain of steps invocations, the first of the function f
// stands for, costs: critical is its duration (its first step, then each
// later one, of any function, after the caller's turnaround), slot the
// worker-slot time it holds (its steps alone: during a turnaround its
// slot serves other chains).
func (e *estimator) work(f *flight, steps int) (critical, slot time.Duration) {
	gap, _ := e.gap.value()
	slot = e.durationOf(f) + time.Duration(steps-1)*e.durationOf(nil)
	return slot + time.Duration(steps-1)*time.Duration(gap), slot
}

// learnSteps records that a chain entered at f's function made n
// invocations.
func (e *estimator) learnSteps(f *flight, n int) {
	f.steps.add(float64(n))
}

// expectedSteps is a chain's expected length: given, else learned from
// chains entered at f's function, else 1.
func (e *estimator) expectedSteps(f *flight, given int) int {
	if given > 0 {
		return given
	}
	if v, ok := f.steps.value(); ok {
		return max(1, int(v+0.5))
	}
	return 1
}

// ahead is the number of steps the fluid bound spreads over the pool:
// the outstanding steps of admitted chains and the unplanned steps
// running now.
func (e *estimator) ahead() float64 {
	return float64(e.outstanding.Load() + e.unplanned.Load())
}

// turnaround records one caller turnaround between two steps of a chain.
func (e *estimator) turnaround(d time.Duration) {
	e.gap.add(float64(d))
	e.gapHigh.add(float64(d))
}

// highMax is a high-water mark that decays: a sample above it replaces
// it, and each sample below moves it 1/highDecay of the way down towards
// that sample. One word, updated without a lock; zero until the first
// sample.
type highMax struct{ bits atomic.Uint64 }

// highDecay: a single long turnaround keeps weight over about a thousand
// shorter ones.
const highDecay = 1024

func (h *highMax) add(x float64) {
	for {
		old := h.bits.Load()
		p := math.Float64frombits(old)
		v := max(x, p-(p-x)/highDecay)
		if h.bits.CompareAndSwap(old, math.Float64bits(v)) {
			return
		}
	}
}

func (h *highMax) value() float64 { return math.Float64frombits(h.bits.Load()) }
