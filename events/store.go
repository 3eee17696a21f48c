package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sequoia-qos/sequoia/cluster"
)

// Config configures a Store.
type Config struct {
	// MaxEvents bounds the undelivered events (SEQUOIA_MAX_EVENTS) and
	// MaxBytes their stream, and separately the dead letters' stream
	// (SEQUOIA_EVENT_MAX_BYTES): beyond either, Accept returns ErrFull.
	MaxEvents int
	MaxBytes  int64
	// MaxAge is how long an event is tried (SEQUOIA_EVENT_MAX_AGE).
	MaxAge time.Duration
	// MaxRetries bounds the retries after a function error
	// (SEQUOIA_EVENT_MAX_RETRIES); RetryDelay is the wait before the
	// first, doubled for each next.
	MaxRetries int
	RetryDelay time.Duration
	// DedupWindow is how long an event's key is remembered.
	DedupWindow time.Duration
	// DeadMax bounds the dead letters kept.
	DeadMax int
	// OnFailureURL, when set, receives every dead letter (onfailure.go).
	OnFailureURL string
	// Concurrency bounds this replica's deliveries in progress.
	Concurrency int
	// Lease is the AckWait of a delivery: how long an event held by a
	// replica that stopped answering waits before it is delivered again.
	Lease time.Duration
	// Replicas is the streams' replica count (SEQUOIA_NATS_REPLICAS).
	Replicas int
	// AcceptTimeout bounds Accept's wait for the store; 0 means 5s.
	AcceptTimeout time.Duration
	Log           *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.MaxEvents <= 0 {
		c.MaxEvents = 10000
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 6 * time.Hour
	}
	if c.RetryDelay <= 0 {
		c.RetryDelay = time.Minute
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = 2 * time.Minute
	}
	if c.DeadMax <= 0 {
		c.DeadMax = 10000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 100
	}
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.AcceptTimeout <= 0 {
		c.AcceptTimeout = 5 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Store keeps accepted events in a JetStream stream (the embedded server's
// files, or the cluster's stream) and delivers them from every replica:
// see the package comment.
type Store struct {
	cfg    Config
	e      *cluster.Engine
	js     jetstream.JetStream
	log    *slog.Logger
	m      *Metrics
	prefix string // subject prefix of the events: sequoia.{cluster}.events.

	mu      sync.Mutex
	streams *streams // nil until ensured; REQUIRES: mu
	lastErr error    // REQUIRES: mu

	setup    chan struct{} // kicks the set-up loop
	stopping chan struct{} // closed by Stop
	stopOnce sync.Once
	loops    sync.WaitGroup // set-up, discovery, dispatch, on-failure
	started  atomic.Bool

	disp dispatcher // deliver.go
}

// streams are the JetStream objects a Store uses, once they exist.
type streams struct {
	events jetstream.Stream
	dead   jetstream.Stream
	state  jetstream.KeyValue // retry state of events delivered more than once
	epoch  string             // the events stream's creation time: state keys' prefix
}

// Open returns the store on e and starts making sure its streams exist:
// at once (a few seconds at most) and, while NATS cannot be reached, in
// the background; Accept answers ErrUnavailable until they do. m may be
// nil.
func Open(e *cluster.Engine, cfg Config, m *Metrics) (*Store, error) {
	cfg = cfg.withDefaults()
	js, err := jetstream.New(e.Conn(),
		jetstream.WithPublishAsyncTimeout(cfg.AcceptTimeout),
		jetstream.WithPublishAsyncMaxPending(max(4096, cfg.Concurrency)))
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	s := &Store{cfg: cfg, e: e, js: js, log: cfg.Log, m: m, prefix: e.Subject("events") + ".",
		setup: make(chan struct{}, 1), stopping: make(chan struct{})}
	s.disp.init(s)
	if e.Connected() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.ensure(ctx)
		cancel()
		if err != nil {
			s.log.Warn("events: store not ready yet, retrying", "err", err)
		}
	}
	e.Watch(func(up bool) {
		if up {
			s.kickSetup()
		}
	})
	s.loops.Add(1)
	go s.setupLoop()
	return s, nil
}

// Metrics returns the store's collectors.
func (s *Store) Metrics() *Metrics { return s.m }

func (s *Store) kickSetup() {
	select {
	case s.setup <- struct{}{}:
	default:
	}
}

// setupLoop retries ensure until the streams exist, and again after each
// reconnection (a new NATS cluster may have lost them).
func (s *Store) setupLoop() {
	defer s.loops.Done()
	wait := 250 * time.Millisecond
	for {
		var retry <-chan time.Time
		if s.current() == nil {
			retry = time.After(wait)
		}
		select {
		case <-s.stopping:
			return
		case <-s.setup:
		case <-retry:
		}
		if !s.e.Connected() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := s.ensure(ctx)
		cancel()
		if err != nil {
			wait = min(wait*2, 5*time.Second)
			s.log.Warn("events: store not ready, retrying", "err", err, "in", wait)
			continue
		}
		wait = 250 * time.Millisecond
	}
}

// ensure creates or updates the events' stream, the dead letters' and the
// retry-state bucket.
func (s *Store) ensure(ctx context.Context) error {
	c := s.cfg
	events, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        s.e.Name("events"),
		Description: "sequoia: Lambda Event invocations accepted and not yet delivered",
		Subjects:    []string{s.prefix + "*"},
		// An event leaves the stream when a replica acknowledges it.
		Retention:  jetstream.WorkQueuePolicy,
		Storage:    jetstream.FileStorage,
		Replicas:   c.Replicas,
		MaxMsgs:    int64(c.MaxEvents),
		MaxBytes:   c.MaxBytes,
		Discard:    jetstream.DiscardNew,
		Duplicates: c.DedupWindow,
	})
	if err != nil {
		return s.failed(fmt.Errorf("events stream: %w", err))
	}
	dead, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        s.e.Name("events_dead"),
		Description: "sequoia: Lambda Event invocations given up (dead letters)",
		Subjects:    []string{s.e.Subject("events_dead")},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		MaxMsgs:     int64(c.DeadMax),
		MaxBytes:    c.MaxBytes,
		Discard:     jetstream.DiscardOld,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return s.failed(fmt.Errorf("dead-letter stream: %w", err))
	}
	state, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      s.e.Name("events_state"),
		Description: "sequoia: retry state of Lambda Event invocations delivered more than once",
		History:     1,
		// An entry outlives its event by an hour at most.
		TTL:      c.MaxAge + time.Hour,
		MaxBytes: max(16<<20, min(c.MaxBytes, int64(c.MaxEvents)*5<<10)),
		Storage:  jetstream.FileStorage,
		Replicas: c.Replicas,
	})
	if err != nil {
		return s.failed(fmt.Errorf("events state bucket: %w", err))
	}
	st := &streams{events: events, dead: dead, state: state,
		epoch: strconv.FormatInt(events.CachedInfo().Created.Unix(), 36)}
	s.disp.rep.loadSuspects(st)
	s.mu.Lock()
	s.streams, s.lastErr = st, nil
	s.mu.Unlock()
	s.disp.kick()
	return nil
}

func (s *Store) failed(err error) error {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	return err
}

func (s *Store) current() *streams {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.streams
}

// Accept stores ev and returns once the store acknowledged it (the file
// store wrote it; with replicas, a quorum has it), so that the 202 that
// follows is a promise kept. An event whose key was accepted within the
// de-duplication window is not stored again: Accept reports it a
// duplicate. ev.Request may be reused once Accept returns.
//
// Cost: one message to the server and its acknowledgement; accepts from
// concurrent requests share the connection's writes and the server's.
func (s *Store) Accept(ev *Event) (duplicate bool, err error) {
	st := s.current()
	if st == nil || !s.e.Connected() {
		s.m.count("unavailable")
		return false, ErrUnavailable
	}
	msg := encode(ev, s.prefix+token(ev.Function))
	if max := s.e.Conn().MaxPayload(); max > 0 && int64(len(msg.Data)+headerBytes(msg.Header)) > max {
		s.m.count("too_large")
		return false, ErrTooLarge
	}
	f, err := s.js.PublishMsgAsync(msg, jetstream.WithExpectStream(s.e.Name("events")))
	if err != nil {
		return false, s.acceptFailed(err)
	}
	t := time.NewTimer(s.cfg.AcceptTimeout)
	defer t.Stop()
	select {
	case ack := <-f.Ok():
		if ack.Duplicate {
			s.m.count("duplicate")
			return true, nil
		}
	case err := <-f.Err():
		return false, s.acceptFailed(err)
	case <-t.C:
		return false, s.acceptFailed(context.DeadlineExceeded)
	}
	s.m.count("accepted")
	s.disp.activate(token(ev.Function))
	return false, nil
}

// acceptFailed maps a publish error to Accept's.
func (s *Store) acceptFailed(err error) error {
	var api *jetstream.APIError
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		s.m.count("too_large")
		return ErrTooLarge
	case errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum ||
		api.ErrorCode == errCodeStoreFailed && strings.Contains(api.Description, "too large")):
		s.m.count("too_large")
		return ErrTooLarge
	case errors.As(err, &api) && api.ErrorCode == errCodeStoreFailed &&
		(strings.Contains(api.Description, "maximum messages") || strings.Contains(api.Description, "maximum bytes")):
		s.m.count("refused")
		return ErrFull
	}
	s.m.count("unavailable")
	s.log.Warn("events: the store did not accept an event", "err", err)
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// errCodeStoreFailed is JetStream's "store failed" (JSStreamStoreFailedF),
// which a stream full with DiscardNew answers.
const errCodeStoreFailed jetstream.ErrorCode = 10077

// headerBytes is about what h takes on the wire.
func headerBytes(h nats.Header) int {
	n := 16
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// Start starts delivering with d, from this replica: the discovery of
// functions with undelivered events, fair pulling among them, and the
// on-failure forwarder when configured. Call it once.
func (s *Store) Start(d Deliverer) {
	if !s.started.CompareAndSwap(false, true) {
		return
	}
	s.disp.start(d)
	if s.cfg.OnFailureURL != "" {
		s.loops.Add(1)
		go s.forwardFailures()
	}
}

// Stop stops accepting deliveries: events waiting for a slot go back to
// the store untouched, and Stop waits, until ctx ends, for those at the
// platform to finish and be acknowledged. It returns how many it
// abandoned: still at the platform, they will be delivered again (once
// the lease lapses) and may run twice. Undelivered events stay in the
// store. Call it before closing the engine.
func (s *Store) Stop(ctx context.Context) (abandoned int) {
	s.stopOnce.Do(func() { close(s.stopping) })
	abandoned = s.disp.wait(ctx)
	s.loops.Wait()
	return abandoned
}

// Status is the store's part of /sequoia/v1/status.
type Status struct {
	Ready      bool    `json:"ready"`
	Pending    int64   `json:"pending"`
	OldestAgeS float64 `json:"oldest_age_seconds"`
	InDelivery int64   `json:"in_delivery"`
	Functions  int     `json:"functions_with_backlog"`
	LastError  string  `json:"last_error,omitempty"`
}

// Status returns the store's state now.
func (s *Store) Status() Status {
	s.mu.Lock()
	st := Status{Ready: s.streams != nil}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	s.mu.Unlock()
	st.Pending = s.m.pending.Load()
	st.OldestAgeS = float64(s.m.oldestNano.Load()) / 1e9
	st.InDelivery = s.m.delivering.Load()
	st.Functions = s.disp.activeCount()
	return st
}

// Undelivered reads the store's count of events accepted and neither
// delivered nor dead-lettered, now (the gauge lags by up to a second).
func (s *Store) Undelivered(ctx context.Context) (int, error) {
	st := s.current()
	if st == nil {
		return 0, ErrUnavailable
	}
	info, err := st.events.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int(info.State.Msgs), nil
}
