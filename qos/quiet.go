package qos

import (
	"sync/atomic"
	"time"
)

// Chains of unknown length end when their callers go quiet.
//
// A chain that announced its length (X-Sequoia-Chain-Steps) ends with its
// last step. Any other ends once its caller has gone quiet: no step of it
// holds a slot or waits for one, and its last step ended longer ago than
// the quiet bound (quietAfter), or its deadline passed. It then ends as if
// at its last step: its length is taught to its entry function, what is
// left of its booking and of its outstanding steps is given back, and it
// is counted. A chain that announced more steps than it made ends the
// same way, failed.
//
// The quiet bound is quietFactor times the longest turnaround between two
// steps seen lately (the estimator's decaying high-water mark), at least
// quietFloor and at most SEQUOIA_CHAIN_TTL. A caller that was only slow
// and comes back finds its chain ended: its request is still a
// continuation (never refused; the step is unplanned), and its
// turnaround raises the bound.
//
// Chains in the ring are checked by the ring's sweeper, which visits them
// all anyway. Chains in the table go on the idle list when their first
// step ends (one compare-and-swap) and stay there until they end; a
// sweeper checks the list every quietFloor/4.
const (
	quietFloor  = time.Second
	quietFactor = 4
)

// quietAfter is how long a chain's caller may pause between two steps
// before the chain is taken to be over.
func (a *admission) quietAfter() time.Duration {
	q := time.Duration(quietFactor * a.est.gapHigh.value())
	return min(max(q, quietFloor), a.ttl)
}

// idleCheck ends c if its caller has gone quiet by now (unix nanoseconds)
// and reports whether c has ended.
func (a *admission) idleCheck(c *chain, now int64) bool {
	if c.ended.Load() {
		return true
	}
	if c.run || c.running.Load() > 0 {
		return false
	}
	last := c.lastEnd.Load()
	if last == 0 {
		return false // a step waits for a slot, or none has ended yet
	}
	if now-last < int64(a.quietAfter()) && (c.deadline.IsZero() || now <= c.deadline.UnixNano()) {
		return false
	}
	c.quiet.Store(true)
	a.endAt(c, settled(c), time.Unix(0, last), time.Unix(0, now))
	return true
}

// idleList is a lock-free stack of chains linked by chain.nextIdle: push
// is one compare-and-swap, and the sweeper takes the whole list at once.
type idleList struct{ head atomic.Pointer[chain] }

// push adds c. REQUIRES: c is on no list (c.watched went from false to
// true for this push, or the sweeper holds c).
func (l *idleList) push(c *chain) {
	for {
		old := l.head.Load()
		c.nextIdle = old
		if l.head.CompareAndSwap(old, c) {
			return
		}
	}
}

func (l *idleList) take() *chain { return l.head.Swap(nil) }

func (a *admission) sweeper(every time.Duration) {
	defer a.stopped.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case <-t.C:
			a.sweepIdle()
		}
	}
}

// sweepIdle checks every chain on the idle list: those that ended leave
// it, the others stay.
func (a *admission) sweepIdle() {
	a.sweepMu.Lock()
	defer a.sweepMu.Unlock()
	now := a.now().UnixNano()
	for c := a.idle.take(); c != nil; {
		next := c.nextIdle
		c.nextIdle = nil
		if a.idleCheck(c, now) {
			c.watched.Store(false)
		} else {
			a.idle.push(c)
		}
		c = next
	}
}

// sweep ends, at once, every chain whose caller has gone quiet or that the
// TTL forgets: what the sweepers do on their own every so often.
func (s *Scheduler) sweep() {
	s.adm.sweepIdle()
	s.adm.ring.expire()
}
