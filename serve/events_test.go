package serve

import (
	"context"
	"testing"
	"time"
)

// waitEventsDone waits (a minute at most) until every Event s accepted is
// delivered or dead-lettered.
func waitEventsDone(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := s.events.Undelivered(context.Background())
		if err == nil && n == 0 && s.events.Status().InDelivery == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events still undelivered: %d (%v)", n, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
