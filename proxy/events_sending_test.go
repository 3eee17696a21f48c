package proxy

import (
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/events"
	"github.com/sequoia-qos/sequoia/invocation"
)

// TestEventSending: Deliver tells the event store that an attempt goes out
// before the platform sees its request, and never for an attempt that did
// not leave sequoia (no slot before the stop): the store counts repeats
// from it (events.Event.Sending).
func TestEventSending(t *testing.T) {
	b := startScripted(t, map[string][]answer{"ev": {lambdaThrottle, ok200}})
	_, sched, p := startRetryProxyP(t, invocation.Lambda, "http://"+b.addr, 1,
		RetryConfig{BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}, nil)
	ev := &events.Event{Function: "ev", Arrival: time.Now(), Delivery: 1,
		Request: []byte(lambdaInvoke("ev", "X-Amz-Invocation-Type: RequestResponse\r\n"))}
	var seen []int // the platform's calls when Sending was called
	ev.OnSending(func() { seen = append(seen, b.count("ev")) })

	if res := p.Deliver(ev, nil); res.Verdict != events.Retry || len(seen) != 1 || seen[0] != 0 || b.count("ev") != 1 {
		t.Fatalf("throttled attempt: %+v; Sending at %v calls, %d calls after; want Retry, Sending once before the call", res, seen, b.count("ev"))
	}
	if res := p.Deliver(ev, nil); res.Verdict != events.Delivered || len(seen) != 2 || seen[1] != 1 {
		t.Fatalf("second attempt: %+v; Sending at %v calls; want Delivered, Sending before the second call", res, seen)
	}

	// The only slot is held; the stop comes while the attempt waits.
	held := &invocation.Invocation{Function: "other", Arrival: time.Now()}
	if _, err := sched.Acquire(held, nil); err != nil {
		t.Fatal(err)
	}
	defer sched.Release(held)
	stop := make(chan struct{})
	close(stop)
	if res := p.Deliver(ev, stop); res.Verdict != events.Stopped || len(seen) != 2 || b.count("ev") != 2 {
		t.Errorf("attempt without a slot: %+v; Sending at %v; %d calls; want Stopped, no Sending", res, seen, b.count("ev"))
	}
}
