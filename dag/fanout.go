package dag

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/qos"
)

// scope is where a flow runs. ctx ends when the flow is no longer wanted:
// the run stopped, or the fan-out it is a branch of finished or failed.
// tail, when set, is the hook of a k-of-n branch whose flow this is the
// last step of: the task there calls it on success while it still holds
// its slot.
type scope struct {
	ctx  context.Context
	tail func()
	path string // where the flow was entered, in a journaled run (Run.instance)
}

// at is sc for a flow entered at path.
func (sc scope) at(path string) scope {
	sc.path = path
	return sc
}

func (r *Run) root() scope { return scope{ctx: r.ctx} }

// scopeWatch is a scope as the scheduler's Watcher: a queued invocation
// leaves its queue when the scope ends, and one granted a slot after that
// gives it back uninvoked (qos.Withdrawer).
type scopeWatch struct{ ctx context.Context }

func (w scopeWatch) WatchGone() <-chan struct{} { return w.ctx.Done() }
func (w scopeWatch) StopWatch()                 {}
func (w scopeWatch) Withdrawn() bool            { return w.ctx.Err() != nil }

var _ qos.Withdrawer = scopeWatch{}

// nodeInvoker invokes one attempt of a task once the scheduler granted
// it a slot: it counts the attempt on the run's node and, for the last
// task of a k-of-n branch, reports a success before the scheduler
// releases the slot, so that a branch queued behind it is withdrawn
// rather than granted that slot.
type nodeInvoker struct {
	iv       qos.Invoker
	platform invocation.Platform
	tail     func() // nil: not a k-of-n branch's last task
	run      *Run
	node     string
}

func (t *nodeInvoker) Invoke(inv *invocation.Invocation) error {
	t.run.mu.Lock()
	t.run.nodes[t.node].Invocations++
	t.run.mu.Unlock()
	err := t.iv.Invoke(inv)
	if err == nil && t.tail != nil && inv.Resp != nil {
		if v, _ := platform.Classify(t.platform, inv.Resp); v == platform.Done && inv.Resp.StatusCode() < fasthttp.StatusMultipleChoices {
			t.tail()
		}
	}
	return err
}

// fan is one fan-out: n items on up to width goroutines.
type fan struct {
	n, width int
	// need is the successes the fan-out needs: n (all) unless it is a
	// k-of-n (min_successes) or tolerates failures (ASL's tolerated
	// failure count). It fails once more than n-need items failed.
	need int
	// early finishes the fan-out at the need-th success: items not
	// started never start, queued invocations leave their queue, and the
	// output holds the need successes' outputs in item order. Without
	// early every item runs and the output holds them all.
	early bool
	// steps is the planned invocations of item i, given back to
	// admission when the item never starts; nil: none.
	steps func(i int) int
	// failed is the output in place of a tolerated failure (nil: null).
	failed func(i int, err error) []byte
}

// FanFailure is a fan-out that can no longer reach the successes it needs.
type FanFailure struct {
	Failed, N, Need int
	Last            error // the failure that made it fail
}

func (e *FanFailure) Error() string {
	return fmt.Sprintf("%d of %d branches failed, so %d successes cannot be reached: %v", e.Failed, e.N, e.Need, e.Last)
}

func (e *FanFailure) Unwrap() error { return e.Last }

// Item states in a fan-out.
const (
	itemWaiting uint8 = iota
	itemWon           // counts towards need
	itemLate          // succeeded once the fan-out had its successes: discarded
	itemFailed
)

// fanState is the bookkeeping of one fan-out, under its mutex.
type fanState struct {
	f      fan
	cancel context.CancelFunc

	mu          sync.Mutex
	outs        [][]byte
	state       []uint8
	wins, fails int
	pendingWins int   // won through a tail hook, output not yet recorded
	started     int   // items taken by a worker
	first       error // what the fan-out failed with
	ended       bool  // the result is decided
	joined      chan struct{}
}

// won marks item i a success (its tail hook, or its end); it reports
// whether it counts.
// REQUIRES: st.mu
func (st *fanState) wonLocked(i int) bool {
	if st.state[i] != itemWaiting {
		return st.state[i] == itemWon
	}
	if st.ended || st.f.early && st.wins >= st.f.need {
		st.state[i] = itemLate
		return false
	}
	st.state[i] = itemWon
	st.wins++
	if st.f.early && st.wins == st.f.need {
		st.cancel() // nothing more starts; queued invocations withdraw
	}
	return true
}

func (st *fanState) tail(i int) {
	st.mu.Lock()
	if st.state[i] == itemWaiting && st.wonLocked(i) {
		st.pendingWins++
	}
	st.mu.Unlock()
}

// record is item i's end.
func (st *fanState) record(i int, out []byte, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	viaTail := st.state[i] == itemWon
	if viaTail {
		st.pendingWins--
	}
	switch {
	case err == nil:
		if st.wonLocked(i) {
			st.outs[i] = out
		}
	case errors.Is(err, errStopped):
		// Withdrawn: the fan-out or the run stopped it. Not a failure.
		if viaTail {
			st.wins--
		}
	default:
		if viaTail {
			st.wins-- // won at the platform, failed after (e.g. a size limit)
		}
		st.state[i] = itemFailed
		st.fails++
		if st.f.failed != nil {
			st.outs[i] = st.f.failed(i, err)
		}
		if !st.ended && st.fails > st.f.n-st.f.need {
			st.ended = true
			st.first = err
			if st.f.need < st.f.n {
				st.first = &FanFailure{Failed: st.fails, N: st.f.n, Need: st.f.need, Last: err}
			}
			st.cancel()
			if st.f.early {
				close(st.joined)
			}
		}
	}
	if st.f.early && !st.ended && st.wins >= st.f.need && st.pendingWins == 0 {
		st.ended = true
		close(st.joined)
	}
}

// fanOut runs item(0..n-1), each in a scope of its own that ends when the
// fan-out has its result, and joins their outputs in a JSON array. Without
// early, the caller works as one of up to width goroutines and the fan-out
// ends when every item started has ended; with early, it ends at the
// need-th success or at the failure that makes it unreachable, and items
// still in flight finish on their own, discarded. Goroutines beyond the
// caller come from the run's budget (takeWorkers).
func (r *Run) fanOut(sc scope, f fan, item func(scope, int) ([]byte, error)) ([]byte, error) {
	if f.n == 0 || f.need == 0 && f.early {
		return []byte("[]"), nil
	}
	ctx, cancel := context.WithCancel(sc.ctx)
	defer cancel()
	st := &fanState{f: f, cancel: cancel, outs: make([][]byte, f.n), state: make([]uint8, f.n), joined: make(chan struct{})}
	var next atomic.Int64
	var running atomic.Int64
	worker := func() {
		for ctx.Err() == nil {
			i := int(next.Add(1) - 1)
			if i >= f.n {
				break
			}
			st.mu.Lock()
			st.started++
			st.mu.Unlock()
			isc := scope{ctx: ctx}
			if f.early {
				isc.tail = func() { st.tail(i) }
			}
			out, err := item(isc, i)
			st.record(i, out, err)
		}
		if running.Add(-1) == 0 {
			st.mu.Lock()
			if !st.ended || !f.early {
				if !st.ended && f.early {
					st.ended = true // stopped from outside before a result
				}
				close(st.joined)
			}
			st.mu.Unlock()
		}
	}
	if f.early {
		// The caller waits for the result only: it must not be stuck in
		// an item when the need-th success comes.
		extra := r.takeWorkers(f.width)
		if extra == 0 { // the budget is spent: one goroutine over it
			extra = 1
			r.workers.Add(1)
		}
		running.Store(int64(extra))
		for range extra {
			go func() {
				worker()
				r.workers.Add(-1)
			}()
		}
	} else {
		// The caller works too, so a run whose goroutine budget is
		// spent still progresses, one item at a time.
		extra := r.takeWorkers(f.width - 1)
		running.Store(int64(extra + 1))
		for range extra {
			go func() {
				worker()
				r.workers.Add(-1)
			}()
		}
		worker()
	}
	select {
	case <-st.joined:
	case <-sc.ctx.Done():
		if f.early {
			return nil, errStopped
		}
		<-st.joined
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if f.steps != nil && st.started < f.n {
		skipped := 0
		for i := st.started; i < f.n; i++ {
			skipped += f.steps(i)
		}
		r.skipSteps(skipped)
	}
	if st.first != nil {
		return nil, st.first
	}
	if f.early && st.wins < f.need || !f.early && st.wins+st.fails < f.n {
		return nil, errStopped // stopped from outside
	}
	size := 1 + f.n
	for _, o := range st.outs {
		size += len(o)
	}
	b := make([]byte, 0, size)
	b = append(b, '[')
	first := true
	for i, o := range st.outs {
		if f.early && st.state[i] != itemWon {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		if o == nil {
			o = []byte("null")
		}
		b = append(b, o...)
	}
	return append(b, ']'), nil
}

// skipSteps gives back steps admission reserved for the run that it will
// never make.
func (r *Run) skipSteps(n int) {
	if sk, ok := r.svc.sched.(interface{ SkipRunSteps(string, int) }); ok && n > 0 {
		sk.SkipRunSteps(r.ID, n)
	}
}
