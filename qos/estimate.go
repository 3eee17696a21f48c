package qos

import (
	"container/heap"
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
// timeline is touched when a chain starts, or ends before its booking,
// under admission's lock (REQUIRES: admission.mu).
type estimator struct {
	fn          flightTable // per function: flight.slot and flight.steps
	all         ewma
	gap         ewma // caller turnaround between a chain's steps
	outstanding atomic.Int64
	// unplannedSteps and unplannedWork (nanoseconds) are steps dispatched
	// beyond their chain's reservation, not yet on the timeline (book).
	unplannedSteps, unplannedWork atomic.Int64
	def                           time.Duration
	rate                          float64 // invocations per second; 0 = unlimited

	slots slotHeap // REQUIRES: admission.mu
}

func newEstimator(def time.Duration, rate float64, fn flightTable) *estimator {
	return &estimator{fn: fn, def: def, rate: rate}
}

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
	if fn != "" {
		if v, ok := e.fn.GetString(fn).slot.value(); ok {
			return time.Duration(v)
		}
	}
	if v, ok := e.all.value(); ok {
		return time.Duration(v)
	}
	return e.def
}

// learnSteps records that a chain entered at fn made n invocations.
func (e *estimator) learnSteps(fn string, n int) {
	e.fn.GetString(fn).steps.add(float64(n))
}

// expectedSteps is a chain's expected length: given, else learned from
// chains entered at fn, else 1.
func (e *estimator) expectedSteps(fn string, given int) int {
	if given > 0 {
		return given
	}
	if v, ok := e.fn.GetString(fn).steps.value(); ok {
		return max(1, int(v+0.5))
	}
	return 1
}

// slot is one worker slot on the reservation timeline.
type slot struct {
	free int64 // unix nanoseconds: when the work booked on it is projected done
	// shifted is how far the slot's bookings were moved when chains on it
	// ended early (positive) or late (negative): bookings made before a
	// shift read their end through it.
	shifted int64
	idx     int
}

// booking is where a chain sits on the timeline.
type booking struct {
	slot    *slot
	end     int64 // projected end when booked
	shifted int64 // slot.shifted when booked
}

// resize makes the timeline have n slots; new slots are free now.
func (e *estimator) resize(n int, now int64) {
	for len(e.slots) > n {
		heap.Remove(&e.slots, len(e.slots)-1)
	}
	for len(e.slots) < n {
		heap.Push(&e.slots, &slot{free: now})
	}
}

// project returns when a chain of steps invocations, the first of fn,
// arriving now would start and finish, and its slot time.
//
// The timeline has at most maxTimelineSlots slots; with more worker slots
// than that, each stands for several and a chain occupies it for the
// matching fraction of its work (its own critical path stays whole).
func (e *estimator) project(fn string, steps int, limit int, now int64) (start, finish int64, work time.Duration) {
	limit = max(limit, 1)
	e.resize(min(limit, maxTimelineSlots), now)
	e.book(now)
	gap, _ := e.gap.value()
	work = e.duration(fn) + time.Duration(steps-1)*(e.duration("")+time.Duration(gap))
	start = max(now, e.slots[0].free)
	finish = start + int64(work)
	// Fluid bounds: the steps already admitted and this chain's, spread
	// over every slot, and over the rate limit.
	out := float64(e.outstanding.Load())
	fluid := now + int64((out*float64(e.duration(""))+float64(work))/float64(limit))
	finish = max(finish, fluid)
	if e.rate > 0 {
		finish = max(finish, now+int64((out+float64(steps))/e.rate*float64(time.Second)))
	}
	return start, finish, work
}

// maxTimelineSlots bounds the reservation timeline's size.
const maxTimelineSlots = 4096

// reserve books a projected chain on the timeline of a pool of limit
// slots.
func (e *estimator) reserve(start int64, work time.Duration, steps, limit int) booking {
	if limit > len(e.slots) {
		work = time.Duration(float64(work) * float64(len(e.slots)) / float64(limit))
	}
	sl := e.slots[0]
	sl.free = start + int64(work)
	heap.Fix(&e.slots, 0)
	e.outstanding.Add(int64(steps))
	return booking{slot: sl, end: sl.free, shifted: sl.shifted}
}

// settle moves what is booked on b's slot after b earlier by as much as
// b's chain, ending at now, ended earlier than projected, so that a
// pessimistic estimate (or a chain that failed) leaves no phantom work on
// the timeline. A chain that ends late moves nothing: which slot a chain
// "holds" is a fiction of the model, and continuations that interleave make
// single chains late while the slots stay busy; an optimistic estimate is
// corrected by the estimate itself and by the fluid bound.
func (e *estimator) settle(b booking, now int64) {
	sl := b.slot
	if sl == nil || sl.idx < 0 {
		return
	}
	slack := b.end - (sl.shifted - b.shifted) - now
	if slack <= 0 {
		return
	}
	sl.free = max(now, sl.free-slack)
	sl.shifted += slack
	heap.Fix(&e.slots, sl.idx)
}

// extend records one unplanned step of fn (a chain longer than expected)
// without a lock; the next reader of the timeline books it (book).
func (e *estimator) extend(f *flight) {
	var d float64
	ok := false
	if f != nil {
		d, ok = f.slot.value()
	}
	if !ok {
		d, ok = e.all.value()
	}
	w := int64(e.def)
	if ok {
		w = int64(d)
	}
	e.unplannedWork.Add(w)
	e.unplannedSteps.Add(1)
}

// book puts the unplanned steps recorded since the last call on the
// timeline at now, each on the slot that frees first, as if booked when
// they were dispatched (they are booked later, so at most as pessimistic
// as the time since). Beyond one round of the timeline, the rest is spread
// evenly. REQUIRES: admission.mu.
func (e *estimator) book(now int64) {
	n := e.unplannedSteps.Swap(0)
	if n <= 0 || len(e.slots) == 0 {
		return
	}
	w := e.unplannedWork.Swap(0)
	d := w / n
	one := min(n, int64(len(e.slots)))
	for range one {
		e.slots[0].free = max(now, e.slots[0].free) + d
		heap.Fix(&e.slots, 0)
	}
	if rest := n - one; rest > 0 {
		each := rest * d / int64(len(e.slots))
		for _, sl := range e.slots {
			sl.free = max(now, sl.free) + each
		}
		heap.Init(&e.slots)
	}
}

type slotHeap []*slot

func (h slotHeap) Len() int           { return len(h) }
func (h slotHeap) Less(i, j int) bool { return h[i].free < h[j].free }
func (h slotHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *slotHeap) Push(x any) {
	sl := x.(*slot)
	sl.idx = len(*h)
	*h = append(*h, sl)
}
func (h *slotHeap) Pop() any {
	old := *h
	sl := old[len(old)-1]
	sl.idx = -1
	*h = old[:len(old)-1]
	return sl
}
