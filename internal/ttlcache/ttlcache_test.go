package ttlcache

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// clock is a settable time for tests.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestGetAddRemove(t *testing.T) {
	var evicted []string
	clk := &clock{}
	c := newCache(100, time.Minute, func(k string, v int) { evicted = append(evicted, k+"="+strconv.Itoa(v)) }, clk.now)
	defer c.Close()
	if _, ok := c.Get("a"); ok {
		t.Fatal("empty cache has a")
	}
	c.Add("a", 1)
	if v, ok := c.Get("a"); !ok || v != 1 {
		t.Fatalf("Get(a) = %d, %v", v, ok)
	}
	c.Add("a", 2) // a replacement is not an eviction
	if v, _ := c.Get("a"); v != 2 || len(evicted) != 0 {
		t.Fatalf("after replace: %d, evicted %v", v, evicted)
	}
	c.ReplaceAt("a", 3, clk.now()) // a replacement that evicts
	if v, _ := c.Get("a"); v != 3 || len(evicted) != 1 || evicted[0] != "a=2" {
		t.Fatalf("after ReplaceAt: %d, evicted %v", v, evicted)
	}
	evicted = nil
	if !c.Remove("a") || c.Remove("a") {
		t.Fatal("Remove should report presence once")
	}
	if len(evicted) != 1 || evicted[0] != "a=3" {
		t.Fatalf("evicted = %v, want [a=3]", evicted)
	}
}

func TestExpiry(t *testing.T) {
	var mu sync.Mutex
	var evicted []string
	clk := &clock{}
	c := newCache(100, time.Minute, func(k string, _ int) { mu.Lock(); evicted = append(evicted, k); mu.Unlock() }, clk.now)
	defer c.Close()
	c.Add("old", 1)
	clk.advance(30 * time.Second)
	c.Add("new", 2)
	clk.advance(31 * time.Second) // old is 61 s old, new 31 s
	if _, ok := c.Get("old"); ok {
		t.Error("an expired entry is still returned")
	}
	if _, ok := c.Get("new"); !ok {
		t.Error("a live entry is gone")
	}
	c.expire()
	mu.Lock()
	if len(evicted) != 1 || evicted[0] != "old" {
		t.Errorf("swept %v, want [old]", evicted)
	}
	mu.Unlock()
	if c.Len() != 1 {
		t.Errorf("Len = %d, want 1", c.Len())
	}
	// A replaced key's expiry starts again.
	c.Add("new", 3)
	clk.advance(59 * time.Second)
	c.expire()
	if v, ok := c.Get("new"); !ok || v != 3 {
		t.Errorf("re-added entry: %d, %v", v, ok)
	}
}

func TestSweeperRuns(t *testing.T) {
	gone := make(chan string, 1)
	c := New(10, 20*time.Millisecond, func(k string, _ int) { gone <- k })
	defer c.Close()
	c.Add("k", 1)
	if k := <-gone; k != "k" { // the test's own timeout bounds the wait
		t.Fatalf("swept %q", k)
	}
}

func TestCapacity(t *testing.T) {
	var n atomic.Int64
	c := New(shards*2, time.Hour, func(string, int) { n.Add(1) })
	defer c.Close()
	for i := range 10000 {
		c.Add(strconv.Itoa(i), i)
	}
	if l := c.Len(); l > shards*2 {
		t.Errorf("Len = %d, want ≤ %d", l, shards*2)
	}
	if got := int64(c.Len()) + n.Load(); got != 10000 {
		t.Errorf("kept + evicted = %d, want 10000", got)
	}
	// The newest entry survives its shard's evictions.
	if _, ok := c.Get("9999"); !ok {
		t.Error("newest entry evicted")
	}
}

func TestConcurrent(t *testing.T) {
	var evicted atomic.Int64
	c := New(1000, 5*time.Millisecond, func(string, int) { evicted.Add(1) })
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				k := strconv.Itoa(g*100000 + i)
				c.Add(k, i)
				if v, ok := c.Get(k); ok && v != i {
					t.Errorf("Get(%s) = %d", k, v)
				}
				if i%3 == 0 {
					c.Remove(k)
				}
			}
		})
	}
	wg.Wait()
	c.Close()
	c.expire()
	if c.Len() != 0 {
		// Everything is older than 5 ms by now only if the run took that
		// long, so sweep with a far-future clock instead.
		c.now = func() time.Time { return time.Now().Add(time.Hour) }
		c.expire()
	}
	if c.Len() != 0 || evicted.Load() != 16000 {
		t.Errorf("Len = %d, evicted = %d; want 0, 16000", c.Len(), evicted.Load())
	}
}

func BenchmarkAddGet(b *testing.B) {
	c := New(100000, 5*time.Minute, func(string, int) {})
	defer c.Close()
	benchAddGet(b, func(k string) { c.Add(k, 1) }, func(k string) { c.Get(k) })
}

// BenchmarkExpirableAddGet is the baseline: golang-lru's expirable LRU,
// which the chain tables used before (one lock, TTL buckets).
func BenchmarkExpirableAddGet(b *testing.B) {
	c := expirable.NewLRU[string, int](100000, func(string, int) {}, 5*time.Minute)
	benchAddGet(b, func(k string) { c.Add(k, 1) }, func(k string) { c.Get(k) })
}

// benchAddGet adds and gets new keys shaped like sequoia's chain ids from
// parallel goroutines.
func benchAddGet(b *testing.B, add, get func(string)) {
	b.ReportAllocs()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, 32)
		for pb.Next() {
			buf = strconv.AppendInt(append(buf[:0], "sq-0123456789abcdef-"...), n.Add(1), 36)
			k := string(buf)
			add(k)
			get(k)
		}
	})
}
