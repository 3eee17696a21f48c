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

func (e *ewma) add(x float64) {
	for {
		old := e.bits.Load()
		v := x
		if old != 0 {
			p := math.Float64frombits(old)
			v = p + ewmaAlpha*(x-p)
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
//     an EWMA, and one over all functions;
//   - learned chain lengths per entry function, from completed chains;
//   - the callers' turnaround between a chain's steps (answer sent to next
//     request received), which a chain's critical path pays once per step;
//   - a reservation timeline: for each worker slot, when the work admitted
//     so far is projected to leave it free. A new chain takes the slot that
//     frees first and holds it for all its steps, which is how the
//     scheduler runs chains once continuations go first;
//   - outstanding steps: steps of admitted chains not yet dispatched, for
//     a fluid bound (all of them spread over every slot, or over the rate
//     limit) that catches a timeline that ran ahead of reality.
//
// Everything but the timeline is lock-free: the durations and chain
// lengths (per function in the scheduler's flight table, and over all
// functions), the turnaround and the outstanding steps are atomics. The
// timeline (timeline.go) is split in lines, each under its own lock,
// touched when a chain starts or ends before its booking.
type estimator struct {
	fn          flightTable // per function: flight.slot and flight.steps
	all         ewma
	gap         ewma // caller turnaround between a chain's steps
	outstanding atomic.Int64
	// unplannedSteps and unplannedWork (nanoseconds) are steps dispatched
	// beyond their chain's reservation, not yet on the timeline (book).
	unplannedSteps, unplannedWork atomic.Int64
	def                           time.Duration
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
// none) held its slot for d.
func (e *estimator) observe(f *flight, d time.Duration) {
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

// work is the slot time of a chain of steps invocations, the first of the
// function f stands for, on its critical path: its first step, then each
// later one (of any function) after the caller's turnaround.
func (e *estimator) work(f *flight, steps int) time.Duration {
	gap, _ := e.gap.value()
	return e.durationOf(f) + time.Duration(steps-1)*(e.durationOf(nil)+time.Duration(gap))
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

// extend records one unplanned step of f's function (a chain longer than
// expected) without a lock; the next reader of the timeline books it
// (book).
func (e *estimator) extend(f *flight) {
	e.unplannedWork.Add(int64(e.durationOf(f)))
	e.unplannedSteps.Add(1)
}
