package emulator

import (
	"sync"
	"sync/atomic"
	"time"
)

// function is one function identity: its idle instances and its counters.
type function struct {
	name string
	c    counters
	// reserved is the function's reserved concurrency (Lambda's); 0 for
	// none.
	reserved atomic.Int64

	mu     sync.Mutex
	idle   []instance // REQUIRES mu. Pushed on release, so oldest first (near enough).
	nextID int64      // REQUIRES mu. Last instance number handed out.
	busy   int        // REQUIRES mu. Instances taken and not yet put back or lost.
}

// enterReserved counts one more invocation in flight unless the function
// is at its reserved concurrency.
func (f *function) enterReserved() bool {
	for {
		n, r := f.c.inFlight.Load(), f.reserved.Load()
		if r > 0 && n >= r {
			return false
		}
		if f.c.inFlight.CompareAndSwap(n, n+1) {
			f.c.raisePeak(n + 1)
			return true
		}
	}
}

// instance is an idle instance and when it last finished an invocation.
type instance struct {
	id       int64
	lastUsed time.Time
}

// take hands out the most recently used idle instance that has been idle
// less than keepAlive, or a new instance (cold is then true). Expired idle
// instances met on the way are dropped. Cost: one lock, no allocation.
func (f *function) take(now time.Time, keepAlive time.Duration) (id int64, cold bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.busy++
	f.dropExpiredLocked(now, keepAlive)
	for n := len(f.idle); n > 0; n = len(f.idle) {
		in := f.idle[n-1]
		f.idle = f.idle[:n-1]
		if now.Sub(in.lastUsed) < keepAlive {
			return in.id, false
		}
	}
	f.nextID++
	return f.nextID, true
}

// dropExpiredLocked removes the expired instances at the old end of idle.
// REQUIRES f.mu.
func (f *function) dropExpiredLocked(now time.Time, keepAlive time.Duration) {
	i := 0
	for i < len(f.idle) && now.Sub(f.idle[i].lastUsed) >= keepAlive {
		i++
	}
	if i > 0 {
		n := copy(f.idle, f.idle[i:])
		clear(f.idle[n:])
		f.idle = f.idle[:n]
	}
}

// put returns an instance to the idle set, unless the emulator was reset
// since the instance was taken (gen is then stale) and the instance with it.
func (f *function) put(id int64, now time.Time, gen uint64, e *Emulator) {
	f.mu.Lock()
	f.busy--
	if e.gen.Load() == gen {
		f.idle = append(f.idle, instance{id: id, lastUsed: now})
	}
	f.mu.Unlock()
}

// lose forgets an instance taken by take whose invocation was aborted: it
// never returns to the idle set.
func (f *function) lose() {
	f.mu.Lock()
	f.busy--
	f.mu.Unlock()
}

// warm counts the idle instances not yet expired and, with them, the live
// ones: idle and not expired, or running an invocation. Both are read under
// one lock, so an instance moving between idle and busy is counted once.
func (f *function) warm(now time.Time, keepAlive time.Duration) (warm, live int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, in := range f.idle {
		if now.Sub(in.lastUsed) < keepAlive {
			warm++
		}
	}
	return warm, warm + f.busy
}

// reset drops every idle instance and zeroes the counters.
func (f *function) reset() {
	f.mu.Lock()
	clear(f.idle)
	f.idle = f.idle[:0]
	f.mu.Unlock()
	f.c.reset()
}
