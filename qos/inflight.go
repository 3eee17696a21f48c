package qos

import (
	"iter"
	"sync/atomic"

	"github.com/sequoia-qos/sequoia/internal/intern"
)

// A flight table counts the slots held per name (a function or a tenant),
// and the invocations finished, for readers that look once in a while
// (the policy snapshot): an internal/intern table, so counting a known
// name is one map lookup and atomic adds, with no lock and no allocation.
// The proxy already bounds function and tenant names (SEQUOIA_MAX_FUNCTIONS,
// its tenant table); maxFlightNames is a backstop for other callers, past
// which names share one uncounted entry.
type flightTable = *intern.Table[*flight]

const maxFlightNames = 1 << 16

func newFlightTable() flightTable {
	return intern.New(maxFlightNames, func(string) *flight { return new(flight) }, new(flight))
}

type flight struct {
	held, finished atomic.Int64
	// slot is how long an invocation of the name holds its slot, and
	// steps how many invocations the chains it enters make (EWMAs, for the
	// admission estimator; functions only).
	slot, steps ewma
}

// counts yields every name's count read by get, skipping zeros.
func counts[N int | int64](t flightTable, get func(*flight) int64) iter.Seq2[string, N] {
	return func(yield func(string, N) bool) {
		for name, c := range t.All() {
			if n := get(c); n > 0 && !yield(name, N(n)) {
				return
			}
		}
	}
}

func heldBy(c *flight) int64     { return c.held.Load() }
func finishedBy(c *flight) int64 { return c.finished.Load() }

// FunctionsInFlight yields each function with invocations holding a slot
// in Do, and how many. It reads one atomic counter per function ever seen;
// call it once in a while (the policy snapshot), not per request.
func (s *Scheduler) FunctionsInFlight() iter.Seq2[string, int] {
	return counts[int](s.fnFlight, heldBy)
}

// FunctionsFinished yields each function that has finished invocations in
// Do (answered or failed, retries and DAG nodes included), and how many
// since start; the same cost as FunctionsInFlight.
func (s *Scheduler) FunctionsFinished() iter.Seq2[string, int64] {
	return counts[int64](s.fnFlight, finishedBy)
}

// TenantsInFlight yields each tenant with invocations holding a slot in
// Do, and how many; the same cost as FunctionsInFlight.
func (s *Scheduler) TenantsInFlight() iter.Seq2[string, int] {
	return counts[int](s.tenantFlight, heldBy)
}

// ClassInFlight returns the number of invocations of class c holding a
// slot in Do.
func (s *Scheduler) ClassInFlight(c uint8) int {
	return int(s.classFlight[min(c, NumClasses-1)].Load())
}
