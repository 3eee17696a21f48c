package events

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Counting repeats. sequoia_events_redelivered_total counts the attempts
// that may run an event at the platform a second time: an attempt is
// counted when it is about to reach the platform (Event.Sending) while an
// earlier attempt of the same event may have run there with its outcome
// not settled in the store (neither acknowledged nor handed back), and no
// attempt was counted against that earlier one yet. Each repeat at the
// platform is so counted once, before it happens; an attempt that never
// reached the platform (it waited for a slot, was throttled, or its
// replica died first) is not one. Retries are not repeats: a function
// error, or an attempt the Deliverer answered Retry (nothing ran, by its
// contract), hands the event back, and the next attempt counts in
// sequoia_events_retried_total instead.
//
// This replica knows its own attempts: owed holds, per event, the latest
// attempt that may have run and is not settled. The earlier attempts of
// other processes come from two places:
//
//   - Alone (the embedded server, which dies with the process and whose
//     delivery counts on disk lag behind), a marker file under the state
//     directory names the events of owed. It is written before an attempt
//     goes out (one write covers the attempts that go out meanwhile), and
//     an event leaves it once its acknowledgement is confirmed by the
//     server, which has then written the event's removal to its files (so
//     that an event the marker no longer names cannot come back after a
//     crash), or as soon as the platform answered that it ran nothing. The
//     next start reads the markers left by dead processes, keeps the
//     events still in the store, and owes them.
//   - In a cluster (the server outlives the replicas), the server's
//     delivery count: a delivery whose count exceeds the hand-backs and
//     the deliveries already counted against (the state bucket's Naks and
//     Blamed) follows one that may have run.
//
// What is counted that did not repeat, and cannot be told apart: alone, a
// crash in the instant between the marker write and the request reaching
// the platform, or between the platform's answer that it ran nothing and
// the marker write that forgets it; two attempts of one event at once in
// a process (a lease lapsed), when the platform answers the earlier
// without running it after the later was counted; in a cluster, a replica
// that died before its attempt went out, or between an answer that it ran
// nothing and its hand-back (knowing would cost a write to the cluster
// before every attempt).

// attempt is one delivery's attempt, as far as counting repeats goes.
type attempt struct {
	seq      uint64
	fn       string // the event's function, for the log
	delivery int    // the server's delivery count, for the log
	// since is the change of owed that named the event: the marker
	// names it once written as of since.
	since uint64
	// unaccounted: deliveries of the event before this one that neither
	// were handed back nor had an attempt counted against them (the
	// cluster's count; unused alone).
	unaccounted int
	// REQUIRES: repeats.mu.
	sent      bool // Sending was called
	unsettled bool // answered, but its acknowledgement is not confirmed
}

// LogRedelivering is the message of the line logged (at info, with the
// function, seq and delivery) for each attempt counted in
// sequoia_events_redelivered_total, before it goes out.
const LogRedelivering = "events: an event that may have run already goes to the platform again"

// inherited stands in owed for an attempt of a process that died.
var inherited = &attempt{}

// repeats is the dispatcher's part that counts repeats.
type repeats struct {
	d *dispatcher

	mu   sync.Mutex
	owed map[uint64]*attempt // REQUIRES: mu
	// changes counts owed's changes: the marker written is as of
	// written.
	changes uint64 // REQUIRES: mu

	markers string     // the markers' directory; "" for none
	wmu     sync.Mutex // one marker write at a time
	marker  *os.File   // this process's; REQUIRES: wmu
	written uint64     // REQUIRES: wmu
	kick    chan struct{}
	warned  atomic.Int64 // when a failed write was last logged
	loaded  sync.Once

	// Tests only: hook is called at the named points of a delivery (it
	// may block); noHeartbeat lets leases lapse during attempts.
	hook        func(point string, seq uint64)
	noHeartbeat bool
}

func (r *repeats) init(d *dispatcher) {
	r.d = d
	r.owed = map[uint64]*attempt{}
	r.kick = make(chan struct{}, 1)
	if dir := d.s.e.StateDir(); dir != "" {
		r.markers = filepath.Join(dir, "events-inflight")
	}
}

func (r *repeats) at(point string, seq uint64) {
	if r.hook != nil {
		r.hook(point, seq)
	}
}

// sending is Event.Sending for attempt at, whose event's state is state:
// it counts the attempt if it repeats one that may have run, and (alone)
// returns once the marker names the event. Cost after the first call of
// an attempt: a lock. The first: a lock, and a marker write unless the
// event was owed already (which a concurrent attempt's write may cover).
func (r *repeats) sending(at *attempt, state *attempts) {
	r.mu.Lock()
	if at.sent {
		r.mu.Unlock()
		return
	}
	at.sent = true
	prev, owed := r.owed[at.seq]
	if owed {
		at.since = prev.since
	} else {
		r.changes++
		at.since = r.changes
	}
	r.owed[at.seq] = at
	r.mu.Unlock()
	repeat := owed
	if r.markers == "" && at.unaccounted > 0 {
		// The earlier deliveries are accounted for from now on: the
		// hand-back that may follow this attempt records it, for the
		// replica that gets the event next (any other outcome ends the
		// event, or makes a delivery that is counted anyway).
		repeat = true
		state.Blamed += at.unaccounted
		at.unaccounted = 0
	}
	if repeat {
		r.d.s.m.redelivered.Inc()
		// Written before the attempt goes out, like the count: a log
		// outlives a SIGKILL that loses the count (bench events reads it).
		r.d.s.log.Info(LogRedelivering, "function", at.fn, "seq", at.seq, "delivery", at.delivery)
	}
	// Also when the event was owed already: the write naming it may
	// still be under way.
	r.write(at.since)
}

// settle forgets attempt at: its outcome is settled in the store. The
// marker catches up soon after: until then, it names an event the store
// no longer has, which a next start forgets.
func (r *repeats) settle(at *attempt) {
	if r.forget(at) && r.markers != "" {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// ranNothing forgets attempt at, which the platform answered without
// running it, and returns once the marker no longer names its event
// (unless another attempt of it is owed): the event stays in the store,
// and its next attempt is no repeat. Cost: a marker write.
func (r *repeats) ranNothing(at *attempt) {
	if !r.forget(at) {
		return
	}
	r.mu.Lock()
	want := r.changes
	r.mu.Unlock()
	r.write(want)
}

func (r *repeats) forget(at *attempt) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.owed[at.seq] != at {
		return false
	}
	delete(r.owed, at.seq)
	r.changes++
	return true
}

// unsure keeps attempt at owed although it ended: its acknowledgement was
// not confirmed, so the event may come back. prune forgets it once the
// event left the store.
func (r *repeats) unsure(at *attempt) {
	r.mu.Lock()
	at.unsettled = true
	r.mu.Unlock()
}

// isOwed reports whether the event of seq is owed (tests).
func (r *repeats) isOwed(seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.owed[seq]
	return ok
}

// write writes the marker as of change want at least: the events owed, on
// one line, at the start of this process's file (a longer line written
// before may follow it). Waiting writers share one write.
func (r *repeats) write(want uint64) {
	if r.markers == "" {
		return
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.written >= want {
		return
	}
	r.mu.Lock()
	v := r.changes
	b := make([]byte, 0, 12*len(r.owed)+1)
	for seq := range r.owed {
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, ',')
	}
	r.mu.Unlock()
	if err := r.writeLocked(append(b, '\n')); err != nil {
		// Delivery goes on; only the count of a repeat after a crash is
		// at stake. Logged once a minute at most.
		if now := time.Now().UnixNano(); now-r.warned.Load() > int64(time.Minute) {
			r.warned.Store(now)
			r.d.s.log.Warn("events: cannot write the events in delivery down; a crash now would not count their repeats", "err", err)
		}
		return
	}
	r.written = v
}

// writeLocked writes line at the start of the marker. REQUIRES: wmu.
func (r *repeats) writeLocked(line []byte) error {
	if r.marker == nil {
		if err := os.MkdirAll(r.markers, 0o700); err != nil {
			return err
		}
		f, err := os.OpenFile(filepath.Join(r.markers, keyToken(r.d.s.e.Replica())), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		r.marker = f
	}
	_, err := r.marker.WriteAt(line, 0)
	return err
}

// markerLoop writes the marker after events left it, and every second
// forgets the owed events the store no longer has.
func (r *repeats) markerLoop() {
	defer r.d.s.loops.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-r.d.s.stopping:
			return
		case <-r.kick:
			r.mu.Lock()
			want := r.changes
			r.mu.Unlock()
			r.write(want)
		case <-t.C:
			r.prune()
		}
	}
}

// prune forgets the owed events of dead processes, and those whose
// acknowledgement was not confirmed, that left the store: they cannot
// come back.
func (r *repeats) prune() {
	st := r.d.s.current()
	if st == nil {
		return
	}
	r.mu.Lock()
	var check []uint64
	for seq, at := range r.owed {
		if at == inherited || at.unsettled {
			check = append(check, seq)
		}
	}
	r.mu.Unlock()
	for _, seq := range check {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := st.events.GetMsg(ctx, seq)
		cancel()
		if !errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		r.mu.Lock()
		if at := r.owed[seq]; at == inherited || at != nil && at.unsettled {
			delete(r.owed, seq)
			r.changes++
		}
		r.mu.Unlock()
	}
	if len(check) > 0 && r.markers != "" {
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// loadSuspects reads the markers the previous processes on these files
// left (the embedded server: this process is alone on them), owes the
// events still in the store, writes them under this process's marker and
// removes the others' files. Once, before the first pull.
func (r *repeats) loadSuspects(st *streams) {
	if r.markers == "" {
		return
	}
	r.loaded.Do(func() {
		files, _ := filepath.Glob(filepath.Join(r.markers, "*"))
		mine := filepath.Join(r.markers, keyToken(r.d.s.e.Replica()))
		var old []string
		n := 0
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
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err = st.events.GetMsg(ctx, seq)
				cancel()
				// Only an event the store no longer has is forgotten: an
				// answer that does not say so (a timeout) keeps it.
				if errors.Is(err, jetstream.ErrMsgNotFound) {
					continue
				}
				r.mu.Lock()
				if _, ok := r.owed[seq]; !ok {
					r.owed[seq] = inherited
					r.changes++
					n++
				}
				r.mu.Unlock()
			}
		}
		r.mu.Lock()
		want := r.changes
		r.mu.Unlock()
		r.write(want)
		for _, f := range old {
			_ = os.Remove(f)
		}
		if n > 0 {
			r.d.s.log.Info("events: deliveries in flight when the last process stopped; their next attempts count as redelivered", "events", n)
		}
	})
}

// close writes the marker a last time once deliveries stopped: the
// attempts abandoned at the platform, if any; else it removes the file.
// An abandoned attempt that goes out later writes it again.
func (r *repeats) close() {
	if r.markers == "" {
		return
	}
	r.mu.Lock()
	want := r.changes
	r.mu.Unlock()
	r.write(want)
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if r.marker == nil {
		return
	}
	name := r.marker.Name()
	_ = r.marker.Close()
	r.marker = nil
	r.mu.Lock()
	empty := len(r.owed) == 0
	r.mu.Unlock()
	if empty {
		_ = os.Remove(name)
	}
}

// putAttempts writes the event's state to the bucket; a failure loses
// only counts.
func (d *dispatcher) putAttempts(st *streams, seq uint64, a *attempts) {
	b, _ := json.Marshal(a)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := st.state.Put(ctx, stateKey(st, seq), b); err != nil {
		d.s.log.Warn("events: cannot record an event's attempts", "err", err)
		return
	}
	a.stored = true
}
