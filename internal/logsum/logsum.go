package logsum

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Handler summarises repeated records (see the package comment).
type Handler struct {
	next  slog.Handler
	state *state
}

// state is shared by a Handler and those derived from it.
type state struct {
	every time.Duration
	// always are messages every record of which passes: records kept one
	// per event on purpose (a count read from the log).
	always map[string]bool

	mu     sync.Mutex
	kinds  map[kind]*window // REQUIRES: mu
	closed bool             // REQUIRES: mu
	// armed counts the summaries whose timer is set and not yet written.
	armed int        // REQUIRES: mu
	done  *sync.Cond // signalled when armed drops
}

type kind struct {
	level slog.Level
	msg   string
}

// window is one kind's current interval.
type window struct {
	start      time.Time
	suppressed int
	next       slog.Handler // the handler the first record went through
	timer      *time.Timer
}

// New returns a Handler that writes to next and lets one record of each
// kind through per interval every; every record whose message is one of
// always passes.
func New(next slog.Handler, every time.Duration, always ...string) *Handler {
	s := &state{every: every, kinds: map[kind]*window{}, always: map[string]bool{}}
	for _, m := range always {
		s.always[m] = true
	}
	s.done = sync.NewCond(&s.mu)
	return &Handler{next: next, state: s}
}

// Enabled reports whether next handles level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle writes r if it is the first of its kind in the interval, else
// counts it.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	s := h.state
	if s.always[r.Message] {
		return h.next.Handle(ctx, r)
	}
	k := kind{r.Level, r.Message}
	now := r.Time
	if now.IsZero() {
		now = time.Now()
	}
	s.mu.Lock()
	w := s.kinds[k]
	if w == nil || now.Sub(w.start) >= s.every && w.suppressed == 0 || s.closed {
		if w == nil {
			w = &window{}
			s.kinds[k] = w
		}
		w.start, w.next = now, h.next
		s.mu.Unlock()
		return h.next.Handle(ctx, r)
	}
	w.suppressed++
	if w.timer == nil {
		s.armed++
		w.timer = time.AfterFunc(max(s.every-now.Sub(w.start), 0), func() { s.flush(k) })
	}
	s.mu.Unlock()
	return nil
}

// flush writes the summary of kind k's interval and starts a new one.
func (s *state) flush(k kind) {
	s.mu.Lock()
	w := s.kinds[k]
	n, next := w.suppressed, w.next
	w.suppressed, w.timer = 0, nil
	w.start = time.Now()
	s.mu.Unlock()
	if n > 0 {
		r := slog.NewRecord(time.Now(), k.level, k.msg, 0)
		r.AddAttrs(slog.Int("repeated", n), slog.Duration("interval", s.every))
		_ = next.Handle(context.Background(), r)
	}
	s.mu.Lock()
	s.armed--
	s.done.Broadcast()
	s.mu.Unlock()
}

// Close writes the summaries still pending and returns once they are
// written; records after it pass unsummarised.
func (h *Handler) Close() {
	s := h.state
	s.mu.Lock()
	s.closed = true
	var pending []kind
	for k, w := range s.kinds {
		if w.timer != nil && w.timer.Stop() {
			pending = append(pending, k)
		}
	}
	s.mu.Unlock()
	for _, k := range pending {
		s.flush(k)
	}
	s.mu.Lock()
	for s.armed > 0 {
		s.done.Wait() // a timer that fired before Stop is writing
	}
	s.mu.Unlock()
}

// WithAttrs returns a Handler whose records carry attrs, sharing h's
// counts.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), state: h.state}
}

// WithGroup returns a Handler whose attributes go in group name, sharing
// h's counts.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), state: h.state}
}

var _ slog.Handler = (*Handler)(nil)
