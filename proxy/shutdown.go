package proxy

import (
	"time"
)

// Shutdown happens in two steps. Shutdown closes the listener and waits,
// until SEQUOIA_SHUTDOWN_TIMEOUT, for the requests in progress; every
// answer given meanwhile closes its connection. If that time runs out,
// Abandon gives up on what is left, and the caller (the serve package)
// makes the scheduler and the platform clients let go of it: a request
// still queued (or arriving now) is answered 503 shutting_down with
// Retry-After, never having reached the platform; one whose call at the
// platform is cut is answered 502 shutdown_abandoned (the function may
// have run). WaitAnswered then waits for those answers to be written, so
// that every client whose request was read gets one before the process
// exits. Abandoned says how many were given up, for the exit status.

// Kinds of abandoned work, for Abandoned.
const (
	abandonedQueued   = iota // answered 503 without reaching the platform
	abandonedInFlight        // cut at the platform, answered 502
	numAbandoned
)

// Abandon makes every request still waiting, and every one that arrives,
// be answered at once; call it when the time given to shutdown has run
// out, just before the scheduler and the platform clients let go of their
// work.
func (p *Proxy) Abandon() {
	p.closing.Store(true)
	p.abandoning.Store(true)
}

// Abandoned returns how many requests were answered without their result
// because of Abandon: those that never reached the platform (queued) and
// those cut while at the platform (inFlight).
func (p *Proxy) Abandoned() (queued, inFlight int) {
	return int(p.abandoned[abandonedQueued].Load()), int(p.abandoned[abandonedInFlight].Load())
}

// Answering returns the requests whose answers are not yet written.
func (p *Proxy) Answering() int { return int(p.edge.handling.Load()) }

// WaitAnswered waits, up to d, until every request read has had its
// answer written, and reports whether that happened.
func (p *Proxy) WaitAnswered(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for p.edge.handling.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
