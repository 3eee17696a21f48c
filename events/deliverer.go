package events

import (
	"errors"
	"time"
)

// Deliverer makes one attempt at delivering an event: the proxy, which
// runs it through the scheduler (batch class, under the budget) at the
// platform. It calls ev.Sending just before the event's request goes to
// a platform (an attempt that never does is taken as having run nothing,
// and its repeat is not counted). It must return Stopped, having run
// nothing, if stop closes while the event still waits for a slot.
type Deliverer interface {
	Deliver(ev *Event, stop <-chan struct{}) Result
}

// DelivererFunc adapts a function to Deliverer.
type DelivererFunc func(ev *Event, stop <-chan struct{}) Result

// Deliver calls f.
func (f DelivererFunc) Deliver(ev *Event, stop <-chan struct{}) Result { return f(ev, stop) }

// Verdict is what one attempt came to.
type Verdict uint8

// Verdicts.
const (
	// Delivered: the platform (or the overflow platform) ran the event.
	Delivered Verdict = iota
	// FunctionError: the function ran and failed (or the platform timed
	// out on it); retried up to SEQUOIA_EVENT_MAX_RETRIES times.
	FunctionError
	// Retry: nothing ran (a throttle, a platform 503, no slot at
	// sequoia): try again after Result.Delay, until the event's age.
	Retry
	// Rejected: the platform refused the event for good (a 4xx other
	// than a throttle), or it cannot be sent: a dead letter.
	Rejected
	// Stopped: sequoia is shutting down and the event left its queue
	// before it ran; it goes back to the store as it was.
	Stopped
)

// Result is one attempt's outcome.
type Result struct {
	Verdict Verdict
	// Reason labels a Retry (sequoia_events_retried_total): a throttle
	// (throttled_concurrency, ...), unavailable, unreachable, queued or
	// refused.
	Reason string
	// Delay is the wait before a Retry's next attempt.
	Delay time.Duration
	// Status is the platform's HTTP status, 0 if it did not answer;
	// Error says what went wrong (the platform's answer, truncated), and
	// FunctionError is Lambda's X-Amz-Function-Error; all three go with a
	// dead letter.
	Status        int
	Error         string
	FunctionError string
}

// Errors of Accept.
var (
	// ErrFull: SEQUOIA_MAX_EVENTS undelivered events, or
	// SEQUOIA_EVENT_MAX_BYTES, reached (429).
	ErrFull = errors.New("events: too many undelivered events")
	// ErrTooLarge: the event is larger than one stored message may be
	// (413).
	ErrTooLarge = errors.New("events: event too large for the store")
	// ErrUnavailable: the store did not acknowledge the event in time; it
	// may or may not be stored (503: a retry with the same key is safe).
	ErrUnavailable = errors.New("events: the store is unavailable")
)

// maxErrorText bounds Result.Error as kept with a dead letter.
const maxErrorText = 4096

// truncate cuts s to n bytes.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
