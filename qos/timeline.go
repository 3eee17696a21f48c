package qos

import (
	"container/heap"
	"math/rand/v2"
	"sync"
	"time"
)

// The reservation timeline: for each worker slot, when the work admitted
// so far is projected to leave it free. A new chain takes the slot that
// frees first and holds it for all its steps, which is how the scheduler
// runs chains once continuations go first.
//
// It has at most maxTimelineSlots slots; with more worker slots than
// that, each stands for several and a chain occupies it for the matching
// fraction of its work (its own critical path stays whole).
//
// So that admitting new chains takes no lock all of them share, a
// timeline of 2 x minLineSlots slots or more is split in lines (up to
// maxLines), each a heap of its share of the slots under a lock of its
// own. A new chain tries a line picked at random: the earliest free slot
// of its line stands for the pool's, which it is, give or take the
// spread between lines, since every line gets chains alike. Only a chain
// that does not fit its line's projection tries the others, and is
// refused if it fits none. A smaller timeline is one line: exact.
const (
	maxTimelineSlots = 4096
	maxLines         = 8
	minLineSlots     = 64
)

// timeline is one line of the reservation timeline.
type timeline struct {
	mu    sync.Mutex
	slots slotHeap // REQUIRES: mu
	_     [40]byte // keeps two lines' locks off one cache line
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
	line    *timeline
	slot    *slot
	end     int64 // projected end when booked
	shifted int64 // slot.shifted when booked
}

// timelineSlots is the size of the timeline for limit worker slots, and
// lines how many lines it is split in.
func timelineSlots(limit int) (n, lines int) {
	n = min(max(limit, 1), maxTimelineSlots)
	return n, min(maxLines, max(1, n/minLineSlots))
}

// firstLine picks the line a new chain tries first.
func firstLine(lines int) int {
	if lines == 1 {
		return 0
	}
	return rand.IntN(lines) // per-thread state: no shared write
}

// lock locks line i of the timeline for limit worker slots and readies it
// at now: sized to its share. The caller unlocks ln.mu.
func (e *estimator) lock(i, limit int, now int64) *timeline {
	n, k := timelineSlots(limit)
	i %= k
	ln := &e.lines[i]
	ln.mu.Lock()
	share := n / k
	if i < n%k {
		share++
	}
	ln.resize(share, now)
	return ln
}

// resize makes ln have n slots; new slots are free now. REQUIRES: ln.mu.
func (ln *timeline) resize(n int, now int64) {
	for len(ln.slots) > n {
		heap.Remove(&ln.slots, len(ln.slots)-1)
	}
	for len(ln.slots) < n {
		heap.Push(&ln.slots, &slot{free: now})
	}
}

// project returns when a chain of steps invocations, of duration critical
// and slot time slot (estimator.work), arriving now would start and finish
// on ln, in a pool of limit slots. REQUIRES: ln.mu.
func (e *estimator) project(ln *timeline, critical, slot time.Duration, steps, limit int, now int64) (start, finish int64) {
	limit = max(limit, 1)
	start = max(now, ln.slots[0].free)
	finish = start + int64(critical)
	// Fluid bounds: the steps already admitted (and unplanned ones
	// running) and this chain's, spread over every slot, and over the
	// rate limit.
	out := e.ahead()
	fluid := now + int64((out*float64(e.drain())+float64(slot))/float64(limit))
	finish = max(finish, fluid)
	if r := e.rate(); r > 0 {
		finish = max(finish, now+int64((out+float64(steps))/r*float64(time.Second)))
	}
	return start, finish
}

// reserve books a projected chain on ln, in a pool of limit slots: its
// slot holds it for work, its slot time (a chain's critical path is
// longer by its callers' turnarounds, during which its slot serves other
// chains). REQUIRES: ln.mu.
func (e *estimator) reserve(ln *timeline, start int64, work time.Duration, steps, limit int) booking {
	if n, _ := timelineSlots(limit); limit > n {
		work = time.Duration(float64(work) * float64(n) / float64(limit))
	}
	sl := ln.slots[0]
	sl.free = start + int64(work)
	heap.Fix(&ln.slots, 0)
	e.outstanding.Add(int64(steps))
	return booking{line: ln, slot: sl, end: sl.free, shifted: sl.shifted}
}

// settle moves what is booked on b's slot after b earlier by as much as
// b's chain, ending at now, ended earlier than projected, so that a
// pessimistic estimate (or a chain that failed) leaves no phantom work on
// the timeline. A chain that ends late moves nothing: which slot a chain
// "holds" is a fiction of the model, and continuations that interleave make
// single chains late while the slots stay busy; an optimistic estimate is
// corrected by the estimate itself and by the fluid bound. It takes b's
// line's lock.
func (e *estimator) settle(b booking, now int64) {
	if b.line == nil {
		return
	}
	b.line.mu.Lock()
	defer b.line.mu.Unlock()
	sl := b.slot
	if sl.idx < 0 {
		return // the line shrank
	}
	slack := b.end - (sl.shifted - b.shifted) - now
	if slack <= 0 {
		return
	}
	sl.free = max(now, sl.free-slack)
	sl.shifted += slack
	heap.Fix(&b.line.slots, sl.idx)
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
