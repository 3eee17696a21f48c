package emulator

import (
	"fmt"
	"strconv"
	"sync"

	"github.com/valyala/fasthttp"
)

// Mode is how the account answers a call over its concurrency limit: the
// way a platform does, or the way one of the open-source function runtimes
// sequoia is put in front of does.
type Mode uint8

// Modes.
const (
	// ModeAccount refuses in the platform's own format: OpenWhisk's 429
	// "Too many concurrent requests in flight", Lambda's 429
	// TooManyRequestsException, Knative's 503 "pending request queue
	// full". The default.
	ModeAccount Mode = iota
	// ModeRefuse refuses with 429 "Concurrent request limit exceeded.
	// Max concurrent requests: N" in plain text, in every shape, as
	// OpenFaaS's of-watchdog does with max_inflight=N.
	ModeRefuse
	// ModeQueue makes calls over the limit wait, first come first
	// served, up to Config.Queue of them, and refuses beyond with 503
	// "pending request queue full", as Knative's queue-proxy does with
	// container concurrency N (its queue holds 10 N).
	ModeQueue
	// ModeSerial runs one invocation at a time and answers a second one
	// with 400 and an empty body, as the Lambda Runtime Interface
	// Emulator does (its "ReserveFailed: AlreadyReserved"). The limit is
	// 1 whatever Config.Limit says.
	ModeSerial
)

var modeNames = [...]string{"account", "refuse", "queue", "serial"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode reads a mode's name: account, refuse, queue or serial.
func ParseMode(s string) (Mode, error) {
	for i, n := range modeNames {
		if n == s {
			return Mode(i), nil
		}
	}
	return 0, fmt.Errorf("unknown mode %q; known: account, refuse, queue, serial", s)
}

// waitq is ModeQueue's first-come-first-served queue of calls waiting for
// a slot. A released slot passes straight to the oldest waiter, so a new
// arrival never overtakes one.
type waitq struct {
	mu      sync.Mutex
	waiters []chan struct{} // REQUIRES mu; oldest first
}

// acquireQueued claims a slot or a place in the queue and waits for the
// slot. It reports the calls in flight when it refuses (queue full), and
// false with aborted when Shutdown came first.
func (e *Emulator) acquireQueued() (inFlight int64, ok, aborted bool) {
	q := &e.queue
	q.mu.Lock()
	if n := e.c.inFlight.Load(); len(q.waiters) == 0 && n < e.limit.Load() {
		e.c.inFlight.Store(n + 1)
		q.mu.Unlock()
		e.c.raisePeak(n + 1)
		return n + 1, true, false
	}
	if int64(len(q.waiters)) >= e.queueCap {
		q.mu.Unlock()
		return e.c.inFlight.Load(), false, false
	}
	ch := make(chan struct{}, 1)
	q.waiters = append(q.waiters, ch)
	q.mu.Unlock()
	e.c.queued.Add(1)
	select {
	case <-ch:
		return 0, true, false
	case <-e.done:
		q.mu.Lock()
		for i, w := range q.waiters {
			if w == ch {
				q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
				break
			}
		}
		q.mu.Unlock()
		select {
		case <-ch: // granted just now: give the slot back
			e.releaseSlot()
		default:
		}
		return 0, false, true
	}
}

// releaseSlot gives back one account slot: in ModeQueue to the oldest
// waiter if there is one and the limit allows, else to the count.
func (e *Emulator) releaseSlot() {
	if e.mode != ModeQueue {
		e.c.inFlight.Add(-1)
		return
	}
	q := &e.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.waiters) > 0 && e.c.inFlight.Load() <= e.limit.Load() {
		ch := q.waiters[0]
		q.waiters = q.waiters[1:]
		ch <- struct{}{} // the slot passes on: the count stays
		return
	}
	e.c.inFlight.Add(-1)
}

// admitQueued grants waiting calls the slots a raised limit freed.
func (e *Emulator) admitQueued() {
	q := &e.queue
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.waiters) > 0 && e.c.inFlight.Load() < e.limit.Load() {
		e.c.raisePeak(e.c.inFlight.Add(1))
		ch := q.waiters[0]
		q.waiters = q.waiters[1:]
		ch <- struct{}{}
	}
}

// Waiting returns the calls waiting in ModeQueue's queue now.
func (e *Emulator) Waiting() int {
	e.queue.mu.Lock()
	defer e.queue.mu.Unlock()
	return len(e.queue.waiters)
}

// writeRefusal answers a call over the limit in the emulator's mode.
func (e *Emulator) writeRefusal(ctx *fasthttp.RequestCtx, c *call, inFlight int64) {
	switch e.mode {
	case ModeRefuse:
		limit := e.limit.Load()
		setBody(ctx, fasthttp.StatusTooManyRequests, "text/plain; charset=utf-8", func(b []byte) []byte {
			b = append(b, "Concurrent request limit exceeded. Max concurrent requests: "...)
			b = strconv.AppendInt(b, limit, 10)
			return append(b, '\n')
		})
	case ModeQueue:
		setBody(ctx, fasthttp.StatusServiceUnavailable, "text/plain; charset=utf-8", func(b []byte) []byte {
			return append(b, "pending request queue full"...)
		})
	case ModeSerial:
		ctx.SetStatusCode(fasthttp.StatusBadRequest)
	default:
		writeThrottle(ctx, c, inFlight, e.limit.Load())
	}
}
