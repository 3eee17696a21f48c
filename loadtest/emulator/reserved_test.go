package emulator

import "testing"

// TestReservedConcurrency: a function with reserved concurrency runs at
// most that many at once; the excess gets Lambda's reserved-concurrency
// throttle while other functions still run.
func TestReservedConcurrency(t *testing.T) {
	e, base := start(t, Config{Limit: 10})
	e.SetReserved("capped", 2)
	hold := `{"exec_ms":60000}`
	for range 2 {
		wantStatus(t, do(t, "POST", base+"/2015-03-31/functions/capped/invocations", hold, "X-Amz-Invocation-Type", "Event"), 202)
	}
	r := do(t, "POST", base+"/2015-03-31/functions/capped/invocations", "")
	wantStatus(t, r, 429)
	if got, want := string(r.body), `{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}`; got != want {
		t.Errorf("reserved throttle body = %s, want %s", got, want)
	}
	if got := r.header.Get("X-Amzn-ErrorType"); got != "TooManyRequestsException" {
		t.Errorf("X-Amzn-ErrorType = %q", got)
	}
	wantStatus(t, do(t, "POST", base+"/2015-03-31/functions/other/invocations", ""), 200)
	s := e.Stats()
	if c := s.Functions["capped"]; c.Throttles != 1 || c.InFlight != 2 || c.PeakConcurrency != 2 {
		t.Errorf("capped = %+v", c.Counters)
	}
	if s.InFlight != 2 || s.Throttles != 1 {
		t.Errorf("account = %+v", s.Counters)
	}
	// Removing the reservation lets it run again.
	e.SetReserved("capped", 0)
	wantStatus(t, do(t, "POST", base+"/2015-03-31/functions/capped/invocations", ""), 200)
}
