package warmpool

import (
	"math/rand/v2"
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
		g := next.Add(1)
		base := int(g) * chains
		// Chain k calls f(k) then f(k+1), so that every function has a
		// successor to learn and pre-warm. Each goroutine takes the
		// chains in an order of its own: in one cycle shared by all, a
		// goroutine that caught up with another stayed in its wake (a
		// convoy), which real traffic does not form.
		for j, k := range rand.New(rand.NewPCG(uint64(g), 0)).Perm(chains / 2) {
			for step := range 2 {
				invs[2*j+step] = realInv("guest/f"+strconv.Itoa((k+step)%functions), "c"+strconv.Itoa(base+k))
			}
		}
		i := 0
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
