package qos

import (
	"math"
	"sync/atomic"
	"time"
)

// headroom is the fraction of each chain's budget that admission keeps in
// reserve: a new chain is admitted only if it is projected to finish that
// much before its deadline. The reserve is for what sequoia cannot see:
// the client's clock started before sequoia's (connecting, waiting to be
// accepted, the network both ways), and the projection's own error.
//
// It starts at its floor (SEQUOIA_ADMISSION_HEADROOM) and never goes
// below it. It learns from the chains whose clients did not get an answer
// in time: a step answered after the chain's deadline, or to a client that
// had already left, or a client that left while its step waited. Each such
// chain shows how much reserve would have kept it safe (missed); the
// headroom moves a quarter of the way up to that, asking at most twice
// what the chain was admitted with (so that one bad burst at most doubles
// it), up to its ceiling (SEQUOIA_ADMISSION_HEADROOM_MAX). Each chain with a deadline that
// completes in time takes 1/headroomDecay of the learned part back
// (kept), so that a reserve learned from a bad spell fades after a few
// thousand good chains. One word, updated without a lock.
type headroom struct {
	floor, ceiling float64
	bits           atomic.Uint64 // the current value's float64 bits
}

const (
	// headroomStep is how far towards a miss's need the headroom moves:
	// one client that gave up for a reason of its own moves it a
	// quarter, a burst of misses all the way.
	headroomStep = 0.25
	// headroomMargin is added to each miss's need (a fraction of the
	// budget): what the answers that were only just in time did not show.
	headroomMargin = 0.01
	headroomDecay  = 4096
	// defaultMaxHeadroom is the ceiling when none is configured.
	defaultMaxHeadroom = 0.5
)

func (h *headroom) init(floor, ceiling float64) {
	floor = min(max(floor, 0), 0.9)
	if ceiling <= 0 {
		ceiling = max(floor, defaultMaxHeadroom)
	}
	h.floor, h.ceiling = floor, min(max(ceiling, floor), 0.9)
	h.bits.Store(math.Float64bits(floor))
}

func (h *headroom) value() float64 { return math.Float64frombits(h.bits.Load()) }

// missed learns from c, a chain with a deadline projected to finish at
// c.start + c.predicted, whose client did not get an answer in time: at
// is when a step was answered after the deadline, or when its client was
// found gone before it. To have kept c safe admission needed to reserve
// the time from its projected finish (or the client's departure, if that
// came first) to the later of the deadline and at: what the projection
// missed by, and how far ahead of sequoia's the client's clock ran. A
// client that left in the first half of its budget teaches nothing: it
// did not leave for its deadline.
func (h *headroom) missed(c *chain, at time.Time) {
	budget := int64(c.deadline.Sub(c.start))
	if budget <= 0 || h.ceiling <= h.floor {
		return
	}
	a, d := at.UnixNano(), c.deadline.UnixNano()
	start := c.start.UnixNano()
	if a <= d && 2*(a-start) < budget {
		return
	}
	f := start + int64(c.predicted)
	need := float64(max(a, d)-min(a, f))/float64(budget) + headroomMargin
	need = min(need, max(2*c.headroom, c.headroom+2*headroomMargin), h.ceiling)
	for {
		old := h.bits.Load()
		v := math.Float64frombits(old)
		if need <= v {
			return
		}
		if h.bits.CompareAndSwap(old, math.Float64bits(v+(need-v)*headroomStep)) {
			return
		}
	}
}

// kept lets the learned part of the headroom fade, after a chain with a
// deadline completed in time. At the floor it costs one atomic load.
func (h *headroom) kept() {
	old := h.bits.Load()
	v := math.Float64frombits(old)
	if v <= h.floor {
		return
	}
	next := v - (v-h.floor)/headroomDecay
	if next-h.floor < 1e-6 {
		next = h.floor
	}
	h.bits.CompareAndSwap(old, math.Float64bits(next)) // a lost race skips one step
}
