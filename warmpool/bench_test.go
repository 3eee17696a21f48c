package warmpool

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/invocation"
)

// busySlots refuses every warm-up, as a loaded pool does: what the
// benchmark measures is the bookkeeping every request pays.
type busySlots struct{}

func (busySlots) TryAcquireIdle(int) bool       { return false }
func (busySlots) ReleaseIdle()                  {}
func (busySlots) Limit() int                    { return 100 }
func (busySlots) Estimate(string) time.Duration { return 10 * time.Millisecond }

// BenchmarkArrivedFinished is the warm pool's cost per proxied request:
// Arrived before it queues, Finished after it, over 64 functions called
// in chains of two, from every CPU at once.
func BenchmarkArrivedFinished(b *testing.B) {
	const functions, chains = 64, 1024
	p := New(Config{Platform: invocation.OpenWhisk, Min: 1, Burst: true, Chains: true}, busySlots{}, &fakeInvoker{})
	defer p.Close()
	var next atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine its own invocations: fasthttp headers are not
		// safe to read from two goroutines at once.
		invs := make([]*invocation.Invocation, chains)
		base := int(next.Add(1)) * chains
		for i := range invs {
			// Chain i calls f(i) then f(i+1), so that every function has a
			// successor to learn and pre-warm.
			invs[i] = realInv("guest/f"+strconv.Itoa((i/2+i%2)%functions), "c"+strconv.Itoa(base+i/2))
		}
		// Goroutines start far apart in the sequence (their functions 27
		// or more apart for up to 2 goroutines), as requests for one
		// function do not come in lockstep.
		i := (base / chains * 2 * 37) % len(invs)
		for pb.Next() {
			inv := invs[i]
			p.Arrived(inv)
			p.Finished(inv, time.Millisecond, nil)
			if i++; i == len(invs) {
				i = 0
			}
		}
	})
}
