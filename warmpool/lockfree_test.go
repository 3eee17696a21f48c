package warmpool

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/qos"
)

// remembered returns the pool's state of fn, which it must remember.
func remembered(t *testing.T, p *Pool, fn string) *function {
	t.Helper()
	f, ok := p.fns.peek(fn)
	if !ok {
		t.Fatalf("%s not remembered", fn)
	}
	return f
}

// withoutLock runs fn, which must finish while the test holds locks: a
// minute without an answer is a deadlock (the minute detects one; it
// bounds no speed).
func withoutLock(t *testing.T, what string, fn func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("%s: %v", what, err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s waited for a lock the test holds", what)
	}
}

// TestShardCount: bounds below two shards' worth keep one shard (an exact
// LRU); larger ones split in at most 16 shards, each of 64 entries at
// least, whose sizes add up to the bound.
func TestShardCount(t *testing.T) {
	for _, tc := range []struct{ size, want int }{
		{1, 1}, {5, 1}, {127, 1}, {128, 2}, {255, 3}, {256, 4}, {1000, 15}, {1024, 16}, {10000, 16},
	} {
		m := newShards[string](tc.size, nil)
		if got := len(m.s); got != tc.want {
			t.Errorf("size %d: %d shards, want %d", tc.size, got, tc.want)
		}
		total := 0
		for i := range m.s {
			// Fill each shard past its size: what it keeps is its size.
			for k := range tc.size + 1 {
				m.s[i].lru.Add(strconv.Itoa(k), "")
			}
			total += m.s[i].lru.Len()
			if m.s[i].lru.Len() < min(tc.size, minShardEntries) {
				t.Errorf("size %d: shard %d holds %d", tc.size, i, m.s[i].lru.Len())
			}
		}
		if total != tc.size {
			t.Errorf("size %d: shards hold %d in all", tc.size, total)
		}
	}
}

// TestRequestsTakeNoPoolWideLock: while the test holds function a's
// mutex, a's shard, the shard of a's chain and the lock Close takes,
// requests for another function in another shard (in a chain, with a
// successor to learn and pre-warm, in other shards too) still complete.
// Before, every Arrived and Finished took the pool's one mutex.
func TestRequestsTakeNoPoolWideLock(t *testing.T) {
	p := New(Config{Platform: invocation.OpenWhisk, Min: 1, Burst: true, Chains: true,
		MaxFunctions: 1024, MaxChains: 1024}, busySlots{}, &fakeInvoker{})
	defer p.Close()
	if len(p.fns.s) < 2 || len(p.chains.s) < 2 {
		t.Fatalf("%d function shards, %d chain shards; want several", len(p.fns.s), len(p.chains.s))
	}
	// other returns a name with prefix in a shard of m other than key's.
	other := func(m *shards[*function], key, prefix string) string {
		for i := 0; ; i++ {
			if s := prefix + strconv.Itoa(i); m.of(s) != m.of(key) {
				return s
			}
		}
	}
	a := "guest/a"
	b := other(&p.fns, a, "guest/b")
	c := other(&p.fns, a, "guest/c")
	chainA := "chain-a"
	var chainB string
	for i := 0; chainB == ""; i++ {
		if s := "chain-b" + strconv.Itoa(i); p.chains.of(s) != p.chains.of(chainA) {
			chainB = s
		}
	}
	step := func(fn, chain string) {
		inv := realInv(fn, chain)
		p.Arrived(inv)
		p.Finished(inv, time.Millisecond, nil)
	}
	step(a, chainA)
	step(b, chainB+"-0") // teach b → c
	step(c, chainB+"-0")

	fa := remembered(t, p, a)
	fa.mu.Lock()
	p.fns.of(a).mu.Lock()
	p.chains.of(chainA).mu.Lock()
	p.closing.Lock()
	release := sync.OnceFunc(func() {
		p.closing.Unlock()
		p.chains.of(chainA).mu.Unlock()
		p.fns.of(a).mu.Unlock()
		fa.mu.Unlock()
	})
	defer release() // before p.Close, should the test fail
	withoutLock(t, "requests for another function", func() error {
		for range 3 {
			step(b, chainB)
			step(c, chainB)
		}
		return nil
	})
	release()

	fb := remembered(t, p, b)
	fb.mu.Lock()
	defer fb.mu.Unlock()
	if fb.real != 0 || fb.next != c || fb.votes != 4 {
		t.Errorf("b: %d running, next %q (%d votes); want 0 running, next %q (4 votes)", fb.real, fb.next, fb.votes, c)
	}
}

// countInvoker answers every warm-up after a short pause, and counts those
// that began after the test said the pool was closed.
type countInvoker struct {
	calls, late atomic.Int64
	closed      atomic.Bool
}

func (c *countInvoker) Invoke(inv *invocation.Invocation) error {
	c.calls.Add(1)
	if c.closed.Load() {
		c.late.Add(1)
	}
	time.Sleep(time.Duration(c.calls.Load()%50) * time.Microsecond)
	inv.Resp.SetStatusCode(200)
	return nil
}

// TestConcurrentUse runs requests for many functions in chains, Tick,
// Status and Warm from several goroutines, and Close from two while they
// run (run it with -race). Afterwards every function's count of running
// invocations and of warm-ups in flight is back to 0, the warm-ups the
// pool counted are those sent and reported, and none began once Close
// had returned.
func TestConcurrentUse(t *testing.T) {
	const functions, workers, steps = 200, 6, 3
	sched := qos.New(qos.Config{Limit: 16, QueueCapacity: 10, QueueTimeout: time.Minute})
	defer sched.Close()
	iv := &countInvoker{}
	rep := &reasons{}
	p := New(Config{Platform: invocation.OpenWhisk, Min: 2, Burst: true, Chains: true,
		KeepAlive: 20 * time.Millisecond, Hold: time.Millisecond, HoldMin: time.Millisecond, HoldMax: 4 * time.Millisecond,
		MaxFunctions: 512, MaxChains: 128, Reporter: rep}, sched, iv)
	if len(p.fns.s) < 2 || len(p.chains.s) < 2 {
		t.Fatalf("%d function shards, %d chain shards; want several", len(p.fns.s), len(p.chains.s))
	}
	fn := func(i int) string { return "guest/f" + strconv.Itoa(i%functions) }

	var arrived atomic.Int64 // arrivals before Close began
	closing := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			after := 0 // requests since Close began
			for i := 0; after < 200; i++ {
				select {
				case <-closing:
					after++
				default:
					arrived.Add(1)
				}
				chain := "c" + strconv.Itoa(w) + "-" + strconv.Itoa(i/steps)
				inv := realInv(fn(w*37+i/steps+i%steps), chain)
				p.Arrived(inv)
				var err error
				if i%17 == 0 {
					err = errors.New("failed")
				}
				p.Finished(inv, time.Duration(i%5)*time.Millisecond, err)
			}
		}()
	}
	stop := make(chan struct{})
	var others sync.WaitGroup
	others.Add(2)
	go func() {
		defer others.Done()
		for {
			select {
			case <-stop:
				return
			default:
				p.Tick()
			}
		}
	}()
	go func() {
		defer others.Done()
		for {
			select {
			case <-stop:
				return
			default:
				_ = p.Status(10)
				p.Warm(func(string, int) {})
			}
		}
	}()
	for arrived.Load() < 20000 {
		time.Sleep(time.Millisecond)
	}
	close(closing)
	var closers sync.WaitGroup
	for range 2 {
		closers.Add(1)
		go func() { defer closers.Done(); p.Close() }()
	}
	closers.Wait()
	iv.closed.Store(true)
	wg.Wait()
	close(stop)
	others.Wait()

	if n := iv.late.Load(); n != 0 {
		t.Errorf("%d warm-ups began after Close returned", n)
	}
	if iv.calls.Load() == 0 {
		t.Error("no warm-up sent: the test exercised no send")
	}
	var sent int64
	for _, f := range p.fns.values() {
		f.mu.Lock()
		if f.real != 0 || f.warming != 0 {
			t.Errorf("%s: %d running, %d warming; want 0", f.name, f.real, f.warming)
		}
		for _, n := range f.sent {
			sent += n
		}
		f.mu.Unlock()
	}
	st := p.Status(functions)
	if st.Functions != functions || st.Shown != functions {
		t.Errorf("status: %d functions, %d shown; want %d", st.Functions, st.Shown, functions)
	}
	rep.mu.Lock()
	reported := int64(rep.n[KeepAlive] + rep.n[Burst] + rep.n[Chain])
	rep.mu.Unlock()
	if calls := iv.calls.Load(); sent != calls || reported != calls {
		t.Errorf("warm-ups: %d counted, %d reported, %d sent; want them equal", sent, reported, calls)
	}
	for i := 1; i < len(st.List); i++ {
		if st.List[i-1].Function == st.List[i].Function {
			t.Fatalf("status lists %s twice", st.List[i].Function)
		}
	}
}
