package events

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkAccept: one Accept (publish, wait for the store's
// acknowledgement) on the embedded server, from parallel goroutines.
func BenchmarkAccept(b *testing.B) {
	e := startEngine(b, b.TempDir(), "")
	s, err := Open(e, Config{MaxEvents: 1_000_000}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Stop(b.Context())
	req := request("f", 1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Accept(&Event{Function: "f", Arrival: time.Now(), Request: req}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDeliver: the store's side of one delivery (pull, lease, mark,
// acknowledge) with a deliverer that does nothing, 8 functions, 50
// deliveries at once.
func BenchmarkDeliver(b *testing.B) {
	e := startEngine(b, b.TempDir(), "")
	s, err := Open(e, Config{MaxEvents: 1_000_000, Concurrency: 50}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Stop(b.Context())
	var done atomic.Int64
	s.Start(DelivererFunc(func(ev *Event, _ <-chan struct{}) Result {
		ev.Sending()
		done.Add(1)
		return Result{Verdict: Delivered}
	}))
	req := request("f", 1)
	b.ReportAllocs()
	for i := range b.N {
		if _, err := s.Accept(&Event{Function: "f" + strconv.Itoa(i%8), Arrival: time.Now(), Request: req}); err != nil {
			b.Fatal(err)
		}
	}
	for done.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
}
