package loadtest

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

//go:embed k6/bench_chains.js
var k6Script []byte

// K6Version is the k6 release loadtest/k6/run.sh installs.
const K6Version = "v1.8.1"

// ErrNoK6 says no k6 binary was found.
var ErrNoK6 = errors.New("k6 is missing (loadtest/k6/run.sh installs it: go install go.k6.io/k6@" + K6Version + ")")

// FindK6 returns the k6 binary to use: path if set, else $K6, else the one
// loadtest/k6/run.sh caches (K6_CACHE_DIR, or the user's cache directory),
// else k6 on the PATH; ErrNoK6 if there is none.
func FindK6(path string) (string, error) {
	if path != "" {
		p, err := exec.LookPath(path)
		if err != nil {
			return "", fmt.Errorf("%w: %s not found", ErrNoK6, path)
		}
		return p, nil
	}
	cands := []string{os.Getenv("K6"), os.Getenv("K6_CACHE_DIR")}
	if cands[1] != "" {
		cands[1] = filepath.Join(cands[1], "k6")
	} else if dir, err := os.UserCacheDir(); err == nil {
		cands[1] = filepath.Join(dir, "sequoia", "k6", K6Version, "k6")
	}
	cands = append(cands, "k6")
	for _, c := range cands {
		if c == "" {
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p, nil
		}
	}
	return "", ErrNoK6
}

// RunChainsK6 runs one burst of spec's chains with k6 (the k6 binary at
// bin): spec.Chains virtual users start at once, each one chain on a
// connection of its own, giving up when spec.Deadline passes (enforced
// whenever it is set). Only BaseURL, Chains, Steps, Deadline, Untold and
// Exec are used. The summary has no makespan of the burst itself: k6's
// run, its start-up included.
func RunChainsK6(ctx context.Context, bin string, spec ChainSpec) (Summary, error) {
	if spec.Steps <= 0 {
		spec.Steps = 2
	}
	dir, err := os.MkdirTemp("", "sequoia-k6-")
	if err != nil {
		return Summary{}, err
	}
	defer os.RemoveAll(dir)
	script, summary := filepath.Join(dir, "bench_chains.js"), filepath.Join(dir, "summary.json")
	if err := os.WriteFile(script, k6Script, 0o600); err != nil {
		return Summary{}, err
	}
	untold := "0"
	if spec.Untold {
		untold = "1"
	}
	cmd := exec.CommandContext(ctx, bin, "run", "--quiet", "--no-usage-report", "--no-color",
		"-e", "BASE_URL="+spec.BaseURL, "-e", "CHAINS="+strconv.Itoa(spec.Chains), "-e", "STEPS="+strconv.Itoa(spec.Steps),
		"-e", "DEADLINE_MS="+strconv.FormatInt(spec.Deadline.Milliseconds(), 10), "-e", "UNTOLD="+untold,
		"-e", "EXEC_MS="+strconv.FormatInt(spec.Exec.Milliseconds(), 10), "-e", "SUMMARY="+summary, script)
	cmd.Env = append(os.Environ(), "K6_NO_USAGE_REPORT=true")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Summary{}, fmt.Errorf("k6: %w: %s", err, tail(out, 2000))
	}
	b, err := os.ReadFile(summary)
	if err != nil {
		return Summary{}, fmt.Errorf("k6: no summary: %w", err)
	}
	return parseK6Summary(b, spec)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// k6Metric is one metric of k6's summary: counters have count, trends
// their summaryTrendStats (milliseconds).
type k6Metric struct {
	Values map[string]float64 `json:"values"`
}

type k6Summary struct {
	Metrics map[string]k6Metric `json:"metrics"`
	State   struct {
		Duration float64 `json:"testRunDurationMs"`
	} `json:"state"`
}

// parseK6Summary reads what bench_chains.js's handleSummary wrote.
func parseK6Summary(b []byte, spec ChainSpec) (Summary, error) {
	var k k6Summary
	if err := json.Unmarshal(b, &k); err != nil {
		return Summary{}, fmt.Errorf("k6 summary: %w", err)
	}
	count := func(name string) int { return int(k.Metrics[name].Values["count"]) }
	ms := func(name, stat string) time.Duration {
		return time.Duration(k.Metrics[name].Values[stat] * float64(time.Millisecond))
	}
	s := Summary{
		Chains: spec.Chains, Completed: count("chains_completed"), Refused: count("chains_refused"),
		Dropped: count("chains_dropped"), Failed: count("chains_failed"), Throttles: int64(count("client_429s")),
		DroppedBy504: count("chains_dropped_504"),
		P50:          ms("chain_latency", "p(50)"), P99: ms("chain_latency", "p(99)"),
		Makespan: time.Duration(k.State.Duration * float64(time.Millisecond)),
	}
	if got := s.Completed + s.Refused + s.Dropped + s.Failed; got != spec.Chains {
		return s, fmt.Errorf("k6 summary: %d chains accounted for, want %d", got, spec.Chains)
	}
	if spec.Exec > 0 {
		stats := func(name string) QueueStats {
			return QueueStats{Requests: count(name), Mean: ms(name, "avg"), P50: ms(name, "p(50)"), P99: ms(name, "p(99)")}
		}
		s.Queue = &Queueing{Answered: stats("queue_answered"), All: stats("queue_all")}
	}
	return s, nil
}
