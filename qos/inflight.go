package qos

import (
	"iter"
	"maps"
	"sync"
	"sync/atomic"
)

// flightTable counts the slots held per name (a function or a tenant), for
// readers that look once in a while (the policy snapshot). Lookups read an
// immutable map through an atomic pointer, so counting a known name is one
// map lookup and one atomic add, with no lock and no allocation; a name seen
// for the first time copies the map under mu. Names are never removed:
// the proxy interns function and tenant names into bounded tables
// (SEQUOIA_MAX_FUNCTIONS, its tenant table), which bounds this one.
type flightTable struct {
	m  atomic.Pointer[map[string]*atomic.Int64]
	mu sync.Mutex // serialises copies of m
}

// counter returns name's counter, adding it on first sight.
func (t *flightTable) counter(name string) *atomic.Int64 {
	if m := t.m.Load(); m != nil {
		if c := (*m)[name]; c != nil {
			return c
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	next := map[string]*atomic.Int64{}
	if old := t.m.Load(); old != nil {
		if c := (*old)[name]; c != nil {
			return c
		}
		next = make(map[string]*atomic.Int64, len(*old)+1)
		maps.Copy(next, *old)
	}
	c := new(atomic.Int64)
	next[name] = c
	t.m.Store(&next)
	return c
}

// held yields the names holding slots and how many, in no order. Counts
// are read one at a time while invocations come and go.
func (t *flightTable) held() iter.Seq2[string, int] {
	return func(yield func(string, int) bool) {
		m := t.m.Load()
		if m == nil {
			return
		}
		for name, c := range *m {
			if n := c.Load(); n > 0 && !yield(name, int(n)) {
				return
			}
		}
	}
}

// FunctionsInFlight yields each function with invocations holding a slot
// in Do, and how many. It reads one atomic counter per function ever seen;
// call it once in a while (the policy snapshot), not per request.
func (s *Scheduler) FunctionsInFlight() iter.Seq2[string, int] { return s.fnFlight.held() }

// TenantsInFlight yields each tenant with invocations holding a slot in
// Do, and how many; the same cost as FunctionsInFlight.
func (s *Scheduler) TenantsInFlight() iter.Seq2[string, int] { return s.tenantFlight.held() }

// ClassInFlight returns the number of invocations of class c holding a
// slot in Do.
func (s *Scheduler) ClassInFlight(c uint8) int {
	return int(s.classFlight[min(c, NumClasses-1)].Load())
}
