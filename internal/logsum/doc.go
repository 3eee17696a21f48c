// Package logsum keeps repeated log lines from flooding the log: a
// slog.Handler that passes the first record of each kind (its level and
// message) in an interval and counts the others, then writes one line
// that says how many there were.
//
// A platform outage makes every request fail the same way; without this,
// each would write a WARN line (a 5 s outage once wrote 32 782 of them).
// The failures themselves are counted in metrics (sequoia_requests_total
// by outcome), so the log needs one line per kind and interval, not one
// per request.
//
// Organisation: Handler wraps another handler. Records are keyed by level
// and message, not by their attributes, so "platform unreachable" for two
// functions is one kind; the line that passes keeps its own attributes.
// The summary ("... repeated": N, "interval") is written when the interval
// of the first suppressed record ends, by a timer, so a burst that stops is
// still summed up. Handlers made by WithAttrs and WithGroup share their
// parent's counts. Messages given to New as always pass every time: lines
// kept one per event on purpose (sequoia's Lambda Event redeliveries).
//
// Usage:
//
//	h := logsum.New(slog.NewJSONHandler(os.Stderr, nil), 10*time.Second)
//	defer h.Close() // writes the summaries still pending
//	log := slog.New(h)
package logsum
