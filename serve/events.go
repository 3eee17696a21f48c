package serve

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/sequoia-qos/sequoia/events"
	"github.com/sequoia-qos/sequoia/proxy"
)

// newEvents opens the event store on the engine: the Lambda Event
// invocations the proxy accepts are stored there before the 202, and
// delivered from there by every replica (package events).
func (s *Server) newEvents() error {
	if s.memoryEvents {
		return nil
	}
	c, pc := s.cfg.Events, s.cfg.Platforms
	conc := c.EventConcurrency
	if conc == 0 {
		conc = s.cfg.Limits.MaxConcurrency
	}
	st, err := events.Open(s.engine, events.Config{
		MaxEvents:    pc.MaxEvents,
		MaxBytes:     c.EventMaxBytes,
		MaxAge:       pc.EventMaxAge,
		MaxRetries:   c.EventMaxRetries,
		RetryDelay:   c.EventRetryDelay,
		DedupWindow:  c.EventDedupWindow,
		DeadMax:      c.EventDeadMax,
		OnFailureURL: c.EventOnFailureURL,
		Concurrency:  conc,
		Lease:        c.DurableLease,
		Replicas:     s.cfg.Cluster.NatsReplicas,
		Log:          s.log,
	}, events.NewMetrics(s.metrics.Registry()))
	if err != nil {
		return err
	}
	s.events = st
	return nil
}

// eventQueue is where the proxy puts Events: the store, or nil for the
// proxy's in-process queue (InMemoryEvents).
func (s *Server) eventQueue() proxy.EventQueue {
	if s.events == nil {
		return nil
	}
	return s.events
}

func (s *Server) eventsStatus() *events.Status {
	if s.events == nil {
		return nil
	}
	st := s.events.Status()
	return &st
}

// serveDead answers GET /sequoia/v1/events/dead on the admin port: the
// dead letters, newest first, ?limit (at most 100, default 20) at a time,
// from ?before (the previous page's next_before).
func (s *Server) serveDead(w http.ResponseWriter, r *http.Request) {
	if s.events == nil {
		http.Error(w, "no event store (in-memory events)", http.StatusNotFound)
		return
	}
	q := r.URL.Query()
	limit, before := 20, uint64(0)
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > events.MaxDeadPage {
			http.Error(w, "limit must be 1 to "+strconv.Itoa(events.MaxDeadPage), http.StatusBadRequest)
			return
		}
		limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			http.Error(w, "before must be a positive sequence (a page's next_before)", http.StatusBadRequest)
			return
		}
		before = n
	}
	dead, next, err := s.events.Dead(r.Context(), limit, before)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, events.ErrUnavailable) {
			code = http.StatusServiceUnavailable
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, err.Error(), code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Dead       []events.DeadLetter `json:"dead"`
		NextBefore uint64              `json:"next_before,omitempty"`
	}{dead, next})
}

// stopDurable begins stopping the durable work, at the start of the
// shutdown: Event deliveries stop (those waiting for a slot go back to the
// store) and async DAG runs are suspended (in the journal, for another
// replica or the next start). The returned function waits, until ctx
// ends, for the work at the platform, and adds to ae what it abandoned
// there (delivered or run again later, maybe twice; with InMemoryEvents,
// lost).
func (s *Server) stopDurable(ctx context.Context) (wait func(ae *AbandonedError)) {
	evc, runc := make(chan int, 1), make(chan int, 1)
	memory := s.events == nil
	go func() {
		if memory {
			evc <- s.proxy.MemoryEvents().Stop(ctx) // all lost
			return
		}
		evc <- s.events.Stop(ctx)
	}()
	go func() { runc <- s.dags.Suspend(ctx) }()
	return func(ae *AbandonedError) {
		evs, runs := <-evc, <-runc
		s.runs.Close() // the other replicas take the suspended runs at once
		if evs > 0 {
			s.log.Warn("shutdown: Lambda Event deliveries abandoned at the platform", "abandoned", evs)
			what := "Lambda Event deliveries abandoned in flight (they will be delivered again)"
			if memory {
				what = "Lambda Event invocations not delivered (kept in memory: lost)"
			}
			ae.Add(what, evs)
		}
		if runs > 0 {
			s.log.Warn("shutdown: async DAG runs abandoned with a task at the platform", "abandoned", runs)
			ae.Add("async DAG runs abandoned with a task in flight (it runs again when they resume)", runs)
		}
	}
}
