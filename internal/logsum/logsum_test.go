package logsum

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestRepeatsAreCountedAndSummarised(t *testing.T) {
	var out lines
	h := New(slog.NewJSONHandler(&out, nil), time.Hour)
	log := slog.New(h)
	for i := range 1000 {
		log.Warn("platform unreachable", "function", "f", "i", i)
		log.With("component", "x").Warn("platform unreachable", "function", "g")
	}
	log.Info("platform unreachable") // another level: another kind
	log.Warn("something else")
	h.Close()
	recs := out.records(t)
	if len(recs) != 4 {
		t.Fatalf("%d lines, want 4 (first, other level, other message, summary): %v", len(recs), recs)
	}
	if recs[0]["function"] != "f" || recs[0]["i"] != float64(0) {
		t.Errorf("first line = %v, want the first record with its attributes", recs[0])
	}
	sum := recs[3]
	if sum["msg"] != "platform unreachable" || sum["level"] != "WARN" || sum["repeated"] != float64(1999) {
		t.Errorf("summary = %v, want the 1999 others counted", sum)
	}
}

func TestSummaryWhenTheIntervalEnds(t *testing.T) {
	var out lines
	h := New(slog.NewJSONHandler(&out, nil), 20*time.Millisecond)
	log := slog.New(h)
	for range 5 {
		log.Error("boom")
	}
	// The timer writes the summary without another record; poll for it.
	deadline := time.Now().Add(time.Minute)
	for len(out.records(t)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no summary written")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := out.records(t)[1]["repeated"]; got != float64(4) {
		t.Errorf("repeated = %v, want 4", got)
	}
	h.Close()
}

func TestAfterClosePassesEverything(t *testing.T) {
	var out lines
	h := New(slog.NewJSONHandler(&out, nil), time.Hour)
	h.Close()
	log := slog.New(h)
	log.Warn("x")
	log.Warn("x")
	if n := len(out.records(t)); n != 2 {
		t.Errorf("%d lines, want 2", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	var out lines
	h := New(slog.NewJSONHandler(&out, nil), time.Millisecond)
	log := slog.New(h)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				log.Warn("flood")
			}
		})
	}
	wg.Wait()
	h.Close()
	// Every record is either written or counted in a summary.
	total := 0
	for _, r := range out.records(t) {
		if n, ok := r["repeated"].(float64); ok {
			total += int(n)
		} else {
			total++
		}
	}
	if total != 4000 {
		t.Errorf("%d records accounted for, want 4000", total)
	}
}

// TestAlwaysPasses: records whose message New was told to let through all
// pass, one line each, beside a kind that is summarised.
func TestAlwaysPasses(t *testing.T) {
	var out lines
	h := New(slog.NewJSONHandler(&out, nil), time.Hour, "event redelivered")
	log := slog.New(h)
	for i := range 50 {
		log.Info("event redelivered", "seq", i)
		log.Warn("platform unreachable")
	}
	h.Close()
	n := 0
	for _, r := range out.records(t) {
		if r["msg"] == "event redelivered" {
			if r["seq"] != float64(n) {
				t.Errorf("line %d = %v", n, r)
			}
			n++
		}
	}
	if n != 50 {
		t.Errorf("%d redelivery lines, want all 50", n)
	}
	if recs := out.records(t); len(recs) != 52 {
		t.Errorf("%d lines, want 52 (50, the first warning, its summary)", len(recs))
	}
}
