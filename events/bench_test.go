package events

import (
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
