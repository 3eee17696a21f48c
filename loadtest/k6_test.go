package loadtest

import (
	"testing"
	"time"
)

const k6Sample = `{"metrics":{
 "chains_completed":{"type":"counter","values":{"count":6,"rate":3}},
 "chains_refused":{"type":"counter","values":{"count":3,"rate":1}},
 "chains_dropped":{"type":"counter","values":{"count":1,"rate":1}},
 "chains_dropped_504":{"type":"counter","values":{"count":1,"rate":1}},
 "client_429s":{"type":"counter","values":{"count":3,"rate":1}},
 "chain_latency":{"type":"trend","values":{"avg":500,"p(50)":450.5,"p(99)":990,"count":6}},
 "queue_answered":{"type":"trend","values":{"avg":100,"p(50)":90,"p(99)":300,"count":13}},
 "queue_all":{"type":"trend","values":{"avg":80,"p(50)":50,"p(99)":300,"count":17}}},
 "state":{"testRunDurationMs":1234.5}}`

func TestParseK6Summary(t *testing.T) {
	s, err := parseK6Summary([]byte(k6Sample), ChainSpec{Chains: 10, Exec: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s.Completed != 6 || s.Refused != 3 || s.Dropped != 1 || s.DroppedBy504 != 1 || s.Failed != 0 || s.Throttles != 3 {
		t.Errorf("counts %+v", s)
	}
	if s.P50 != 450500*time.Microsecond || s.P99 != 990*time.Millisecond || s.Makespan != 1234500*time.Microsecond {
		t.Errorf("p50 %v, p99 %v, makespan %v", s.P50, s.P99, s.Makespan)
	}
	if s.Queue == nil || s.Queue.Answered.Requests != 13 || s.Queue.All.Mean != 80*time.Millisecond || s.Queue.All.P99 != 300*time.Millisecond {
		t.Errorf("queueing %+v", s.Queue)
	}
	// A summary that does not account for every chain is an error.
	if _, err := parseK6Summary([]byte(k6Sample), ChainSpec{Chains: 11}); err == nil {
		t.Error("10 chains accounted for out of 11: want an error")
	}
	if _, err := parseK6Summary([]byte("{"), ChainSpec{Chains: 1}); err == nil {
		t.Error("malformed JSON: want an error")
	}
}

// FuzzParseK6Summary: any bytes give a summary or an error, never a panic.
func FuzzParseK6Summary(f *testing.F) {
	f.Add([]byte(k6Sample), 10)
	f.Add([]byte(`{"metrics":{"chains_completed":{"values":{"count":-1}}}}`), 0)
	f.Fuzz(func(t *testing.T, b []byte, chains int) {
		_, _ = parseK6Summary(b, ChainSpec{Chains: chains, Exec: time.Millisecond})
	})
}
