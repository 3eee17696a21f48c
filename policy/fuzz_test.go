package policy

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeDecision: any bytes either decode into a decision that
// survives a round trip through its JSON form, or are refused; never a
// panic.
func FuzzDecodeDecision(f *testing.F) {
	for _, s := range []string{
		`{"allow": true}`,
		`{"allow": false, "reason": "no"}`,
		`{"class": "batch", "priority": -3, "concurrency_cap": 4, "chain_deadline_ms": 1500, "chain_steps": 2, "queue_timeout_ms": 10, "idempotent": true, "prewarm": 1}`,
		`{"priority": 1e40}`, `{"chain_steps": 1.5}`, `[]`, `null`, `{"x": 1}`, `{"allow": true} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeDecision(data, nil)
		if err != nil {
			return
		}
		out, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("marshal %+v: %v", d, err)
		}
		again, err := DecodeDecision(out, nil)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
		out2, _ := json.Marshal(again)
		if string(out) != string(out2) {
			t.Fatalf("round trip: %s then %s", out, out2)
		}
	})
}

// FuzzParseDocument: any bytes either parse into an input document whose
// snapshot converts to an OPA value, or are refused.
func FuzzParseDocument(f *testing.F) {
	for _, s := range []string{
		`{"function": "f", "tenant": "t", "step": 1, "chain_deadline_ms": 100, "snapshot": {"limit": 5, "functions": {"f": {"p50_ms": 3}}}}`,
		`{}`, `{"step": -1}`, `{"chain_deadline_ms": 1e30}`, `{"bogus": 1}`, `{"snapshot": {"queues": {"pending": {"batch": 2}}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in, snap, err := ParseDocument(data)
		if err != nil {
			return
		}
		if in.Step < 0 || in.ChainSteps < 0 || in.ChainDeadline < 0 {
			t.Fatalf("accepted negative values: %+v", in)
		}
		if _, err := snap.value(); err != nil {
			t.Fatalf("snapshot of %q does not convert: %v", data, err)
		}
	})
}
