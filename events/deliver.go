package events

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Delivery. Every replica runs one dispatcher over the same stream. Each
// function's events have a subject of their own and a durable pull
// consumer of their own; the dispatcher keeps the functions that have
// events waiting in a ring and pulls from them in turn, a few events at a
// time, whenever it has a free delivery slot (Config.Concurrency): one
// function's backlog never holds another's events back behind it, as a
// single shared consumer would. A function enters the ring when this
// replica accepts one of its events, or when the stream's per-subject
// counts (read every second) show it has some, whoever accepted them; it
// leaves when a pull finds nothing.
//
// A delivery holds its event un-acknowledged while it runs, renewing the
// lease every third of it; it acknowledges the event once the platform
// ran it, or hands it back with a delay (a retry), or moves it to the dead
// letters. A replica that dies holding events lets their lease lapse, and
// JetStream delivers them again, to any replica: repeats.go counts those
// that may run twice.

// maxFetch bounds the events pulled from one function in one turn; a
// turn takes the free slots' share of one function, at least one.
const maxFetch = 32

type dispatcher struct {
	s     *Store
	d     Deliverer
	slots chan struct{} // one per delivery in progress
	wake  chan struct{} // a function became active, or the streams exist

	mu    sync.Mutex
	dirty map[string]bool // the active functions' tokens: true if an event arrived since the last pull; REQUIRES: mu
	ring  []string        // the active tokens in turn order; REQUIRES: mu
	next  int             // REQUIRES: mu

	// Used by the dispatch goroutine only.
	consumers map[string]jetstream.Consumer
	of        *streams // consumers belong to these streams

	deliveries sync.WaitGroup
	done       chan struct{} // closed when the dispatch loop returns

	rep repeats // repeats.go
}

func (d *dispatcher) init(s *Store) {
	d.s = s
	d.slots = make(chan struct{}, s.cfg.Concurrency)
	d.wake = make(chan struct{}, 1)
	d.dirty = map[string]bool{}
	d.consumers = map[string]jetstream.Consumer{}
	d.done = make(chan struct{})
	d.rep.init(d)
}

func (d *dispatcher) start(dl Deliverer) {
	d.d = dl
	d.s.loops.Add(2)
	go d.rep.markerLoop()
	go d.discoverLoop()
	go d.dispatchLoop()
}

func (d *dispatcher) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// activate puts the function of token tok in the ring. Cost: a lock and a
// map write.
func (d *dispatcher) activate(tok string) {
	d.mu.Lock()
	if _, ok := d.dirty[tok]; !ok {
		d.ring = append(d.ring, tok)
	}
	d.dirty[tok] = true
	d.mu.Unlock()
	d.kick()
}

// deactivate takes tok out of the ring, unless an event arrived for it
// since its last pull.
func (d *dispatcher) deactivate(tok string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dirty, ok := d.dirty[tok]; !ok || dirty {
		return
	}
	delete(d.dirty, tok)
	if i := slices.Index(d.ring, tok); i >= 0 {
		d.ring = slices.Delete(d.ring, i, i+1)
		if d.next > i {
			d.next--
		}
	}
}

func (d *dispatcher) activeCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.ring)
}

// nextToken returns the next active function's token in turn, waiting
// for one; false once the store stops.
func (d *dispatcher) nextToken() (string, bool) {
	for {
		d.mu.Lock()
		if len(d.ring) > 0 {
			d.next %= len(d.ring)
			tok := d.ring[d.next]
			d.next++
			d.dirty[tok] = false
			d.mu.Unlock()
			return tok, true
		}
		d.mu.Unlock()
		select {
		case <-d.wake:
		case <-d.s.stopping:
			return "", false
		}
	}
}

// discoverLoop reads, every second, which functions have events in the
// store (whoever accepted them, before a restart included) and the gauges.
func (d *dispatcher) discoverLoop() {
	defer d.s.loops.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		d.discover()
		select {
		case <-d.s.stopping:
			return
		case <-t.C:
		}
	}
}

func (d *dispatcher) discover() {
	st := d.s.current()
	if st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := st.events.Info(ctx, jetstream.WithSubjectFilter(d.s.prefix+"*"))
	if err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			d.s.kickSetup()
		}
		return
	}
	m := d.s.m
	m.pending.Store(int64(info.State.Msgs))
	if info.State.Msgs > 0 && !info.State.FirstTime.IsZero() {
		m.oldestNano.Store(int64(max(0, time.Since(info.State.FirstTime))))
	} else {
		m.oldestNano.Store(0)
	}
	for subj, n := range info.State.Subjects {
		if n > 0 {
			d.activate(strings.TrimPrefix(subj, d.s.prefix))
		}
	}
}

// dispatchLoop pulls events from the active functions in turn, as slots
// free up, and starts a delivery for each.
func (d *dispatcher) dispatchLoop() {
	defer close(d.done)
	for {
		select {
		case d.slots <- struct{}{}:
		case <-d.s.stopping:
			return
		}
		share := 1
		if a := d.activeCount(); a > 0 {
			share = max(1, (cap(d.slots)-len(d.slots)+1)/a)
		}
		n := 1
	more:
		for n < min(share, maxFetch) {
			select {
			case d.slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		got := d.pull(n)
		for range n - got {
			<-d.slots
		}
		select {
		case <-d.s.stopping:
			return
		default:
		}
	}
}

// pull fetches up to n events of the next active function and starts
// their deliveries; it returns how many it started.
func (d *dispatcher) pull(n int) int {
	tok, ok := d.nextToken()
	if !ok {
		return 0
	}
	st := d.s.current()
	if st == nil {
		d.pause()
		return 0
	}
	c, err := d.consumer(st, tok)
	if err != nil {
		d.s.log.Warn("events: cannot pull", "err", err)
		d.pause()
		return 0
	}
	batch, err := c.FetchNoWait(n)
	var msgs []jetstream.Msg
	if err == nil {
		for msg := range batch.Messages() {
			msgs = append(msgs, msg)
		}
		err = batch.Error()
	}
	got := len(msgs)
	for _, msg := range msgs {
		d.s.m.delivering.Add(1)
		d.deliveries.Add(1)
		go d.deliver(st, msg)
	}
	if err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
			delete(d.consumers, tok)
		} else {
			d.s.log.Warn("events: pull failed", "err", err)
			d.pause()
		}
	}
	if got == 0 {
		d.deactivate(tok)
	}
	return got
}

// pause waits a little after an error, so that a lost connection does not
// spin the loop.
func (d *dispatcher) pause() {
	select {
	case <-time.After(250 * time.Millisecond):
	case <-d.s.stopping:
	}
}

// consumer returns the durable consumer of the function of token tok,
// creating it (the same on every replica) the first time.
func (d *dispatcher) consumer(st *streams, tok string) (jetstream.Consumer, error) {
	if d.of != st {
		d.of, d.consumers = st, map[string]jetstream.Consumer{}
	}
	if c, ok := d.consumers[tok]; ok {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cfg := d.s.cfg
	c, err := st.events.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       "fn_" + tok,
		Description:   "sequoia: one function's Lambda Event invocations",
		FilterSubject: d.s.prefix + tok,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.Lease,
		// Retries are handed back with their own delay; an event's age
		// bounds them, not a count.
		MaxDeliver:    -1,
		MaxAckPending: cfg.MaxEvents,
		// A function without events for an hour loses its consumer; the
		// next event creates it again.
		InactiveThreshold: time.Hour + cfg.Lease,
	})
	if err != nil {
		return nil, err
	}
	d.consumers[tok] = c
	return c, nil
}

// attempts is what a delivery keeps in the state bucket, for an event
// handed back for a retry: the next delivery reads it.
type attempts struct {
	Naks           int    `json:"n"`            // hand-backs (retries, stops) so far
	Blamed         int    `json:"b,omitempty"`  // deliveries an attempt was counted redelivered against
	FunctionErrors int    `json:"f,omitempty"`  // attempts whose function failed
	Status         int    `json:"s,omitempty"`  // the last answer's status
	Error          string `json:"e,omitempty"`  // the last failure
	FunctionError  string `json:"fe,omitempty"` // the last X-Amz-Function-Error
	stored         bool
}

func stateKey(st *streams, seq uint64) string {
	return "e." + st.epoch + "." + strconv.FormatUint(seq, 10)
}

// deliver runs one delivery of msg and settles it: acknowledged, handed
// back for a retry, or moved to the dead letters.
func (d *dispatcher) deliver(st *streams, msg jetstream.Msg) {
	defer func() {
		d.s.m.delivering.Add(-1)
		<-d.slots
		d.deliveries.Done()
	}()
	s := d.s
	meta, err := msg.Metadata()
	if err != nil {
		s.log.Warn("events: a message without metadata", "err", err)
		_ = msg.Term()
		return
	}
	seq := meta.Sequence.Stream
	var a attempts
	at := &attempt{seq: seq}
	if meta.NumDelivered > 1 {
		a = d.loadAttempts(st, seq)
		at.unaccounted = max(0, int(meta.NumDelivered)-1-a.Naks-a.Blamed)
	}
	ev, err := decode(msg.Headers(), msg.Data())
	if err != nil {
		d.deadLetter(st, msg, meta, nil, &a, reasonUndecodable, err.Error())
		return
	}
	ev.Seq, ev.Delivery, ev.FunctionErrors = seq, int(meta.NumDelivered), a.FunctionErrors
	if time.Since(ev.Arrival) > s.cfg.MaxAge {
		d.deadLetter(st, msg, meta, ev, &a, reasonAge, "")
		return
	}
	at.fn, at.delivery = ev.Function, ev.Delivery
	ev.OnSending(func() { d.rep.sending(at, &a) })

	stopBeat := d.heartbeat(msg)
	res := d.d.Deliver(ev, s.stopping)
	stopBeat()
	d.rep.at("answered", seq)

	// An attempt that ran nothing is forgotten at once; one that ran, once
	// its outcome is settled in the store.
	a.Status, a.Error, a.FunctionError = res.Status, truncate(res.Error, maxErrorText), res.FunctionError
	settled := true
	switch res.Verdict {
	case Delivered:
		settled = d.ack(msg)
		d.forget(st, seq, &a)
		s.m.count("delivered")
	case Stopped:
		d.rep.ranNothing(at)
		d.handBack(st, msg, meta, &a, 0)
	case Rejected:
		d.rep.ranNothing(at)
		settled = d.deadLetter(st, msg, meta, ev, &a, reasonRejected, "")
	case FunctionError:
		a.FunctionErrors++
		if a.FunctionErrors > s.cfg.MaxRetries {
			settled = d.deadLetter(st, msg, meta, ev, &a, reasonRetries, "")
			break
		}
		settled = d.retry(st, msg, meta, ev, &a, "function_error", s.cfg.RetryDelay<<(a.FunctionErrors-1))
	case Retry:
		d.rep.ranNothing(at)
		d.retry(st, msg, meta, ev, &a, res.Reason, res.Delay)
	}
	if settled {
		d.rep.settle(at)
	} else {
		d.rep.unsure(at)
	}
	d.rep.at("settled", seq)
}

// retry hands the event back to be delivered again after delay, or moves
// it to the dead letters if that would be past its age. It reports
// whether the event's fate is settled in the store (see deadLetter).
func (d *dispatcher) retry(st *streams, msg jetstream.Msg, meta *jetstream.MsgMetadata, ev *Event, a *attempts, reason string, delay time.Duration) (settled bool) {
	if time.Since(ev.Arrival)+delay > d.s.cfg.MaxAge {
		return d.deadLetter(st, msg, meta, ev, a, reasonAge, "")
	}
	d.handBack(st, msg, meta, a, delay)
	d.s.m.retry(reason)
	return true
}

// handBack records the hand-back, then gives the event back to the store,
// to be delivered again (to any replica) after delay.
func (d *dispatcher) handBack(st *streams, msg jetstream.Msg, meta *jetstream.MsgMetadata, a *attempts, delay time.Duration) {
	// Recorded first: a delivery that follows a hand-back is not a repeat.
	// Not fatal if it fails: the retry happens, counted as a repeat.
	d.rep.at("handing back", meta.Sequence.Stream)
	a.Naks++
	d.putAttempts(st, meta.Sequence.Stream, a)
	d.rep.at("recorded", meta.Sequence.Stream)
	var err error
	if delay > 0 {
		err = msg.NakWithDelay(delay)
	} else {
		err = msg.Nak()
	}
	if err != nil {
		d.s.log.Warn("events: cannot hand an event back; it returns when its lease lapses", "err", err)
		return
	}
	// Pull its function again when the event is due, rather than at the
	// next discovery.
	tok := strings.TrimPrefix(msg.Subject(), d.s.prefix)
	time.AfterFunc(delay+time.Millisecond, func() { d.activate(tok) })
}

// ack acknowledges msg and reports whether the event cannot come back.
// Alone, it waits for the server's confirmation: the embedded server has
// then removed the event from its files (it writes a removal in place),
// so a crash after it cannot bring the event back, and the marker may
// forget it. In a cluster the server outlives this replica, and an
// acknowledgement lost with it makes a delivery the server counts: it
// does not wait.
func (d *dispatcher) ack(msg jetstream.Msg) (settled bool) {
	if d.rep.markers == "" {
		if err := msg.Ack(); err != nil {
			d.s.log.Warn("events: acknowledgement lost; the event will be delivered again", "err", err)
		}
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := msg.DoubleAck(ctx); err != nil {
		d.s.log.Warn("events: acknowledgement not confirmed; the event may be delivered again", "err", err)
		return false
	}
	return true
}

func (d *dispatcher) loadAttempts(st *streams, seq uint64) attempts {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var a attempts
	e, err := st.state.Get(ctx, stateKey(st, seq))
	if err != nil {
		return a
	}
	if json.Unmarshal(e.Value(), &a) == nil {
		a.stored = true
	}
	return a
}

// forget drops the event's retry state, if it has any.
func (d *dispatcher) forget(st *streams, seq uint64, a *attempts) {
	if !a.stored && a.Naks == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = st.state.Purge(ctx, stateKey(st, seq))
}

// heartbeat renews msg's lease every third of it until the returned
// function is called. Cost: a timer; a delivery shorter than a third of
// the lease sends nothing.
func (d *dispatcher) heartbeat(msg jetstream.Msg) (stop func()) {
	if d.rep.noHeartbeat {
		return func() {}
	}
	every := d.s.cfg.Lease / 3
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	t = time.AfterFunc(every, func() {
		_ = msg.InProgress()
		mu.Lock()
		if !stopped {
			t.Reset(every)
		}
		mu.Unlock()
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}

// wait waits, until ctx ends, for the deliveries in progress, and returns
// how many are still running. REQUIRES: the store is stopping.
func (d *dispatcher) wait(ctx context.Context) int {
	if d.d != nil {
		<-d.done // no delivery starts after this
	}
	all := make(chan struct{})
	go func() { d.deliveries.Wait(); close(all) }()
	left := 0
	select {
	case <-all:
	case <-ctx.Done():
		left = int(d.s.m.delivering.Load())
	}
	// Only the abandoned are owed at the next start.
	d.rep.close()
	return left
}

// Headers of a dead letter, besides the event's own.
const (
	hdrDeadReason     = "Sequoia-Dead-Reason"
	hdrDeadAt         = "Sequoia-Dead-At" // Unix nanoseconds
	hdrDeadSeq        = "Sequoia-Event-Seq"
	hdrAttempts       = "Sequoia-Attempts"
	hdrFunctionErrors = "Sequoia-Function-Errors"
	hdrLastStatus     = "Sequoia-Last-Status"
	hdrLastError      = "Sequoia-Last-Error"
	hdrLastFnError    = "Sequoia-Last-Function-Error"
)

// deadLetter moves the event to the dead letters, then acknowledges it.
// If the dead letter cannot be written, the event is handed back and
// tried again later: it is never dropped. It reports whether the event's
// fate is settled in the store (see ack).
func (d *dispatcher) deadLetter(st *streams, msg jetstream.Msg, meta *jetstream.MsgMetadata, ev *Event, a *attempts, reason, why string) (settled bool) {
	s := d.s
	h := nats.Header{}
	for k, vs := range msg.Headers() {
		if !strings.HasPrefix(k, "Nats-") {
			h[k] = vs
		}
	}
	if why != "" {
		a.Error = why
	}
	h.Set(hdrDeadReason, reason)
	h.Set(hdrDeadAt, strconv.FormatInt(time.Now().UnixNano(), 10))
	h.Set(hdrDeadSeq, strconv.FormatUint(meta.Sequence.Stream, 10))
	h.Set(hdrAttempts, strconv.FormatUint(meta.NumDelivered, 10))
	h.Set(hdrFunctionErrors, strconv.Itoa(a.FunctionErrors))
	if a.Status != 0 {
		h.Set(hdrLastStatus, strconv.Itoa(a.Status))
	}
	if a.Error != "" {
		h.Set(hdrLastError, headerSafe(a.Error))
	}
	if a.FunctionError != "" {
		h.Set(hdrLastFnError, headerSafe(a.FunctionError))
	}
	out := &nats.Msg{Subject: s.e.Subject("events_dead"), Header: h, Data: msg.Data()}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := s.js.PublishMsg(ctx, out, jetstream.WithExpectStream(s.e.Name("events_dead")),
		jetstream.WithMsgID("dead."+st.epoch+"."+strconv.FormatUint(meta.Sequence.Stream, 10)))
	if err != nil {
		s.log.Warn("events: cannot write a dead letter; the event stays in the store", "err", err)
		d.handBack(st, msg, meta, a, 5*time.Second)
		return true
	}
	settled = d.ack(msg)
	d.forget(st, meta.Sequence.Stream, a)
	s.m.deadLetter(reason)
	fn := ""
	if ev != nil {
		fn = ev.Function
	}
	s.log.Warn("events: event dead-lettered", "function", fn, "reason", reason,
		"attempts", meta.NumDelivered, "last_status", a.Status, "last_error", truncate(a.Error, 200))
	return settled
}

// headerSafe makes s fit in a NATS header value: one line.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}
