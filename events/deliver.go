package events

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
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
// JetStream delivers them again, to any replica.

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

	// With the embedded server, whose consumer state lags its deliveries
	// by up to 100 ms on disk, the events in delivery are written down
	// (a file of this process's under the state directory, one write per
	// pull) before their attempts start, so that after a crash of the
	// process the next start knows which of its deliveries repeat one
	// (suspects). The file survives a crash of the process as the store
	// does (the operating system has it).
	markers string              // the markers' directory; "" for none
	marker  *os.File            // this process's; REQUIRES: mu
	marked  map[uint64]struct{} // REQUIRES: mu
	// lingering are acknowledged events the marker still names for
	// markLinger, unless the store is closing (closing).
	lingering map[uint64]struct{} // REQUIRES: mu
	closing   bool                // REQUIRES: mu
	suspects  map[uint64]struct{} // REQUIRES: mu
	loaded    sync.Once
}

func (d *dispatcher) init(s *Store) {
	d.s = s
	d.slots = make(chan struct{}, s.cfg.Concurrency)
	d.wake = make(chan struct{}, 1)
	d.dirty = map[string]bool{}
	d.consumers = map[string]jetstream.Consumer{}
	d.done = make(chan struct{})
	if dir := s.e.StateDir(); dir != "" {
		d.markers = filepath.Join(dir, "events-inflight")
	}
	d.marked, d.suspects = map[uint64]struct{}{}, map[uint64]struct{}{}
}

func (d *dispatcher) start(dl Deliverer) {
	d.d = dl
	d.s.loops.Add(1)
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
	if got > 0 && d.markers != "" {
		d.mark(msgs)
	}
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
	defer d.unmark(meta.Sequence.Stream)
	var a attempts
	repeat := d.suspect(meta.Sequence.Stream)
	if meta.NumDelivered > 1 {
		a = d.loadAttempts(st, meta.Sequence.Stream)
		// Delivered before and neither acknowledged nor handed back:
		// its replica stopped answering while it ran.
		repeat = repeat || int(meta.NumDelivered)-1 > a.Naks
	}
	if repeat {
		s.m.redelivered.Inc()
	}
	ev, err := decode(msg.Headers(), msg.Data())
	if err != nil {
		d.deadLetter(st, msg, meta, nil, &a, reasonUndecodable, err.Error())
		return
	}
	ev.Seq, ev.Delivery, ev.FunctionErrors = meta.Sequence.Stream, int(meta.NumDelivered), a.FunctionErrors
	if time.Since(ev.Arrival) > s.cfg.MaxAge {
		d.deadLetter(st, msg, meta, ev, &a, reasonAge, "")
		return
	}

	stopBeat := d.heartbeat(msg)
	res := d.d.Deliver(ev, s.stopping)
	stopBeat()

	a.Status, a.Error, a.FunctionError = res.Status, truncate(res.Error, maxErrorText), res.FunctionError
	switch res.Verdict {
	case Delivered:
		d.ack(msg)
		d.forget(st, meta.Sequence.Stream, &a)
		s.m.count("delivered")
	case Stopped:
		d.handBack(st, msg, meta, &a, 0)
	case Rejected:
		d.deadLetter(st, msg, meta, ev, &a, reasonRejected, "")
	case FunctionError:
		a.FunctionErrors++
		if a.FunctionErrors > s.cfg.MaxRetries {
			d.deadLetter(st, msg, meta, ev, &a, reasonRetries, "")
			return
		}
		d.retry(st, msg, meta, ev, &a, "function_error", s.cfg.RetryDelay<<(a.FunctionErrors-1))
	case Retry:
		d.retry(st, msg, meta, ev, &a, res.Reason, res.Delay)
	}
}

// retry hands the event back to be delivered again after delay, or moves
// it to the dead letters if that would be past its age.
func (d *dispatcher) retry(st *streams, msg jetstream.Msg, meta *jetstream.MsgMetadata, ev *Event, a *attempts, reason string, delay time.Duration) {
	if time.Since(ev.Arrival)+delay > d.s.cfg.MaxAge {
		d.deadLetter(st, msg, meta, ev, a, reasonAge, "")
		return
	}
	d.handBack(st, msg, meta, a, delay)
	d.s.m.retry(reason)
}

// handBack records the hand-back, then gives the event back to the store,
// to be delivered again (to any replica) after delay.
func (d *dispatcher) handBack(st *streams, msg jetstream.Msg, meta *jetstream.MsgMetadata, a *attempts, delay time.Duration) {
	a.Naks++
	b, _ := json.Marshal(a)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := st.state.Put(ctx, stateKey(st, meta.Sequence.Stream), b); err != nil {
		// Not fatal: the retry happens, its count may be lost.
		d.s.log.Warn("events: cannot record a retry", "err", err)
	}
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

// ack acknowledges msg. It does not wait for the server's confirmation:
// the connection keeps the order of what is sent on it, so the next marker
// or pull reaches the server after it; an acknowledgement lost with a
// crash makes a repeat, counted as such (the marker still names it).
func (d *dispatcher) ack(msg jetstream.Msg) {
	if meta, err := msg.Metadata(); err == nil {
		d.linger(meta.Sequence.Stream)
	}
	if err := msg.Ack(); err != nil {
		d.s.log.Warn("events: acknowledgement lost; the event will be delivered again", "err", err)
	}
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

// mark writes down, before their attempts start, the events in delivery,
// with msgs among them: the whole set, in one write.
func (d *dispatcher) mark(msgs []jetstream.Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range msgs {
		if meta, err := m.Metadata(); err == nil {
			d.marked[meta.Sequence.Stream] = struct{}{}
		}
	}
	if d.marker == nil {
		if err := os.MkdirAll(d.markers, 0o700); err != nil {
			d.s.log.Warn("events: cannot mark the events in delivery; a crash now would not count their repeats", "err", err)
			return
		}
		f, err := os.OpenFile(filepath.Join(d.markers, keyToken(d.s.e.Replica())), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			d.s.log.Warn("events: cannot mark the events in delivery; a crash now would not count their repeats", "err", err)
			return
		}
		d.marker = f
	}
	b := make([]byte, 0, 12*(len(d.marked)+len(d.lingering))+1)
	for seq := range d.marked {
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, ',')
	}
	if !d.closing {
		for seq := range d.lingering {
			if _, ok := d.marked[seq]; !ok {
				b = strconv.AppendUint(b, seq, 10)
				b = append(b, ',')
			}
		}
	}
	// The line ends the set; a longer one written before may follow it.
	if _, err := d.marker.WriteAt(append(b, '\n'), 0); err != nil {
		d.s.log.Warn("events: cannot mark the events in delivery; a crash now would not count their repeats", "err", err)
	}
}

// markLinger is how long an acknowledged event stays named in the marker.
// The embedded server writes what an acknowledgement changed (the
// consumer's state, the message's removal) to its files a little later, so
// an event acknowledged just before a crash can come back; while the
// marker still names it, its repeat is counted. Naming an event longer
// costs nothing: only an event that does come back counts. A clean stop
// names none: the server writes its state when it shuts down.
const markLinger = 2 * time.Second

func (d *dispatcher) unmark(seq uint64) {
	if d.markers == "" {
		return
	}
	d.mu.Lock()
	delete(d.marked, seq)
	d.mu.Unlock()
}

// linger keeps acknowledged event seq named in the marker for markLinger.
func (d *dispatcher) linger(seq uint64) {
	if d.markers == "" {
		return
	}
	d.mu.Lock()
	if d.lingering == nil {
		d.lingering = map[uint64]struct{}{}
	}
	d.lingering[seq] = struct{}{}
	d.mu.Unlock()
	time.AfterFunc(markLinger, func() {
		d.mu.Lock()
		delete(d.lingering, seq)
		d.mu.Unlock()
	})
}

// suspect reports (once) whether a process that died had event seq in
// delivery.
func (d *dispatcher) suspect(seq uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.suspects[seq]
	delete(d.suspects, seq)
	return ok
}

// loadSuspects reads the markers the previous processes on these files
// left (the embedded server: this process is alone on them), carries over
// those still in the store, and removes the others' files. Once, before
// the first pull.
func (d *dispatcher) loadSuspects(st *streams) {
	if d.markers == "" {
		return
	}
	d.loaded.Do(func() {
		files, _ := filepath.Glob(filepath.Join(d.markers, "*"))
		mine := filepath.Join(d.markers, keyToken(d.s.e.Replica()))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var old []string
		for _, f := range files {
			if f == mine {
				continue
			}
			old = append(old, f)
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			line, _, _ := strings.Cut(string(b), "\n")
			for _, field := range strings.Split(line, ",") {
				seq, err := strconv.ParseUint(field, 10, 64)
				if err != nil {
					continue
				}
				// Still in the store: not delivered yet.
				if _, err := st.events.GetMsg(ctx, seq); err == nil {
					d.mu.Lock()
					d.suspects[seq], d.marked[seq] = struct{}{}, struct{}{}
					d.mu.Unlock()
				}
			}
		}
		// Carried over under this process's marker until delivered, in
		// case it dies before.
		d.mark(nil)
		for _, f := range old {
			_ = os.Remove(f)
		}
		d.mu.Lock()
		n := len(d.suspects)
		d.mu.Unlock()
		if n > 0 {
			d.s.log.Info("events: deliveries in flight when the last process stopped; they run again", "events", n)
		}
	})
}

// closeMarker writes down the abandoned deliveries (none: it removes the
// file) once deliveries stopped.
func (d *dispatcher) closeMarker() {
	if d.markers == "" {
		return
	}
	d.mu.Lock()
	d.closing = true
	d.mu.Unlock()
	d.mark(nil)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.marker == nil {
		return
	}
	name := d.marker.Name()
	_ = d.marker.Close()
	d.marker = nil
	if len(d.marked) == 0 {
		_ = os.Remove(name)
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
	// Only the abandoned are suspects at the next start.
	d.closeMarker()
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
// tried again later: it is never dropped.
func (d *dispatcher) deadLetter(st *streams, msg jetstream.Msg, meta *jetstream.MsgMetadata, ev *Event, a *attempts, reason, why string) {
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
		_ = msg.NakWithDelay(5 * time.Second)
		return
	}
	d.ack(msg)
	d.forget(st, meta.Sequence.Stream, a)
	s.m.deadLetter(reason)
	fn := ""
	if ev != nil {
		fn = ev.Function
	}
	s.log.Warn("events: event dead-lettered", "function", fn, "reason", reason,
		"attempts", meta.NumDelivered, "last_status", a.Status, "last_error", truncate(a.Error, 200))
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
