package qos

import (
	"iter"
	"maps"
	"sync"
	"sync/atomic"
)

// flightTable counts the slots held per name (a function or a tenant), and
// the invocations finished, for readers that look once in a while (the
// policy snapshot). Lookups read an immutable map through an atomic
// pointer, so counting a known name is one map lookup and atomic adds,
// with no lock and no allocation; a name seen for the first time copies
// the map under mu. Names are never removed: the proxy interns function
// and tenant names into bounded tables (SEQUOIA_MAX_FUNCTIONS, its tenant
// table), which bounds this one.
type flightTable struct {
	m  atomic.Pointer[map[string]*flight]
	mu sync.Mutex // serialises copies of m
}

type flight struct {
	held, finished atomic.Int64
}

// counter returns name's counts, adding them on first sight.
func (t *flightTable) counter(name string) *flight {
	if m := t.m.Load(); m != nil {
		if c := (*m)[name]; c != nil {
			return c
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	next := map[string]*flight{}
	if old := t.m.Load(); old != nil {
		if c := (*old)[name]; c != nil {
			return c
		}
		next = make(map[string]*flight, len(*old)+1)
		maps.Copy(next, *old)
	}
	c := new(flight)
	next[name] = c
	t.m.Store(&next)
	return c
}

// each yields every name's count read by get, skipping zeros.
func (t *flightTable) each(get func(*flight) int64) iter.Seq2[string, int64] {
	return func(yield func(string, int64) bool) {
		m := t.m.Load()
		if m == nil {
			return
		}
		for name, c := range *m {
			if n := get(c); n > 0 && !yield(name, n) {
				return
			}
		}
	}
}

// held yields the names holding slots and how many, in no order. Counts
// are read one at a time while invocations come and go.
func (t *flightTable) held() iter.Seq2[string, int] {
	return func(yield func(string, int) bool) {
		for name, n := range t.each(func(c *flight) int64 { return c.held.Load() }) {
			if !yield(name, int(n)) {
				return
			}
		}
	}
}

// FunctionsInFlight yields each function with invocations holding a slot
// in Do, and how many. It reads one atomic counter per function ever seen;
// call it once in a while (the policy snapshot), not per request.
func (s *Scheduler) FunctionsInFlight() iter.Seq2[string, int] { return s.fnFlight.held() }

// FunctionsFinished yields each function that has finished invocations in
// Do (answered or failed, retries and DAG nodes included), and how many
// since start; the same cost as FunctionsInFlight.
func (s *Scheduler) FunctionsFinished() iter.Seq2[string, int64] {
	return s.fnFlight.each(func(c *flight) int64 { return c.finished.Load() })
}

// TenantsInFlight yields each tenant with invocations holding a slot in
// Do, and how many; the same cost as FunctionsInFlight.
func (s *Scheduler) TenantsInFlight() iter.Seq2[string, int] { return s.tenantFlight.held() }

// ClassInFlight returns the number of invocations of class c holding a
// slot in Do.
func (s *Scheduler) ClassInFlight(c uint8) int {
	return int(s.classFlight[min(c, NumClasses-1)].Load())
}
