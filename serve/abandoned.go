package serve

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// AbandonedError is what Run returns when SEQUOIA_SHUTDOWN_TIMEOUT ran
// out with work unfinished: each kind of work given up, and how much.
// Every part of sequoia that gives up work at shutdown adds its own kind,
// so one error (and one exit status) says all that was lost.
type AbandonedError struct {
	Timeout time.Duration
	Work    []Abandoned
}

// Abandoned is one kind of work given up at shutdown.
type Abandoned struct {
	What  string
	Count int
}

// Add records n of what; nothing when n is 0.
func (e *AbandonedError) Add(what string, n int) {
	if n > 0 {
		e.Work = append(e.Work, Abandoned{What: what, Count: n})
	}
}

func (e *AbandonedError) Error() string {
	parts := make([]string, len(e.Work))
	for i, w := range e.Work {
		parts[i] = fmt.Sprintf("%d %s", w.Count, w.What)
	}
	return fmt.Sprintf("shutdown: SEQUOIA_SHUTDOWN_TIMEOUT (%s) ran out; abandoned %s", e.Timeout, strings.Join(parts, ", "))
}

// Exit statuses of `sequoia serve`.
const (
	ExitOK        = 0
	ExitError     = 1 // start-up failed, or serving failed
	ExitAbandoned = 3 // shut down, but SEQUOIA_SHUTDOWN_TIMEOUT ran out with work unfinished
)

// ExitCode is the exit status for what Run (or New) returned.
func ExitCode(err error) int {
	var ae *AbandonedError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ae):
		return ExitAbandoned
	}
	return ExitError
}
