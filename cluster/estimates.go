package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Shared shares what the replicas learned, in the background: each
// publishes its estimates (slot times per function, chain lengths, the
// callers' turnaround, the reserved-concurrency caps it found) in a
// key-value bucket every period, and seeds itself with the others' for
// what it has not learned yet. A replica that starts, or sees a function
// for the first time, starts from what the cluster knows; with the
// embedded server, a restart starts from what the last run knew.
type Shared struct {
	e      *Engine
	src    Learner
	every  time.Duration
	log    *slog.Logger
	kv     jetstream.KeyValue // REQUIRES mu
	mu     sync.Mutex
	merged int // records taken from others, for status

	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	started bool
}

// Learner is what a replica learned, and how it takes what others did.
type Learner interface {
	Learned() Learned
	Learn(from Learned)
}

// Learned is one replica's estimates.
type Learned struct {
	Replica string `json:"replica"`
	// SlotNs is the slot time of an invocation over all functions and
	// TurnaroundNs the callers' time between a chain's steps.
	SlotNs       int64                   `json:"slot_ns,omitempty"`
	TurnaroundNs int64                   `json:"turnaround_ns,omitempty"`
	Functions    map[string]FunctionLore `json:"functions,omitempty"`
	// ReservedCaps are the per-function caps learned from Lambda's
	// reserved-concurrency throttles.
	ReservedCaps map[string]int `json:"reserved_caps,omitempty"`
	At           time.Time      `json:"at"`
}

// FunctionLore is what was learned of one function.
type FunctionLore struct {
	SlotNs int64   `json:"slot_ns,omitempty"`
	Steps  float64 `json:"chain_steps,omitempty"`
}

// sharedTTL is how long a replica's estimates outlive it.
const sharedTTL = 24 * time.Hour

// NewShared returns the sharing of src's estimates every period.
func NewShared(e *Engine, src Learner, every time.Duration, log *slog.Logger) *Shared {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shared{e: e, src: src, every: every, log: log, stop: make(chan struct{}), done: make(chan struct{})}
}

// Start takes what the others (or the last run) learned, within wait, and
// shares in the background until Close.
func (s *Shared) Start(wait time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	s.exchange(ctx, false)
	cancel()
	s.started = true
	go s.run()
}

func (s *Shared) run() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if !s.e.Connected() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), max(s.every/2, time.Second))
			s.exchange(ctx, true)
			cancel()
		}
	}
}

// exchange reads the others' estimates and, if publish, writes this
// replica's.
func (s *Shared) exchange(ctx context.Context, publish bool) {
	s.mu.Lock()
	kv := s.kv
	s.mu.Unlock()
	if kv == nil {
		var err error
		if kv, err = s.e.openBucket(ctx, "estimates", sharedTTL, true); err != nil {
			s.log.Debug("cluster: estimates bucket not yet available", "err", err)
			return
		}
		s.mu.Lock()
		s.kv = kv
		s.mu.Unlock()
	}
	keys, err := kv.ListKeys(ctx)
	s.e.Op("kv_keys", PathBackground)
	if err == nil {
		self := subjectToken(s.e.replica)
		for k := range keys.Keys() {
			if k == self && publish {
				continue
			}
			e, err := kv.Get(ctx, k)
			s.e.Op("kv_get", PathBackground)
			if err != nil {
				continue
			}
			var l Learned
			if json.Unmarshal(e.Value(), &l) != nil {
				continue
			}
			s.src.Learn(l)
			s.mu.Lock()
			s.merged++
			s.mu.Unlock()
		}
	} else if !errors.Is(err, jetstream.ErrNoKeysFound) {
		s.log.Debug("cluster: estimates", "err", err)
	}
	if !publish {
		return
	}
	l := s.src.Learned()
	l.Replica, l.At = s.e.replica, time.Now().UTC()
	b, _ := json.Marshal(l)
	if _, err := kv.Put(ctx, subjectToken(s.e.replica), b); err == nil {
		s.e.Op("kv_put", PathBackground)
	}
}

// Close stops the sharing after publishing once more.
func (s *Shared) Close() {
	s.once.Do(func() {
		close(s.stop)
		if !s.started {
			return
		}
		<-s.done
		if s.e.Connected() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			s.exchange(ctx, true)
			cancel()
		}
	})
}
