package adaptive

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata expectations with what the code produces")

// TestAIMDScripts runs the scripts in testdata/. Each block is a command,
// a "----" line and the state expected after it, ending at a blank line:
//
//	init ceiling=50 [initial=10 floor=1 backoff=0.9 cooldown=100ms quiet=1s tolerance=1.5 window=100ms]
//	throttle at=120ms [inflight=12] [n=3 every=10ms]
//	success at=2s used=45 [fn=f rtt=40ms sent=10] [n=100 every=1ms]
//
// Times are offsets from the start of the script. A throttle's inflight
// is the calls in flight when it came, itself included; a success's rtt,
// fn and sent give a latency sample (sent: the calls in flight when it was
// sent).
func TestAIMDScripts(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scripts in testdata/")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runScript(t, f) })
	}
}

func runScript(t *testing.T, path string) {
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	var a AIMD
	t0 := time.Unix(1_000_000, 0)
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			out.WriteString(line + "\n")
			continue
		}
		cmd := line
		out.WriteString(cmd + "\n")
		if !sc.Scan() || sc.Text() != "----" {
			t.Fatalf("%s: %q: want a ---- line after the command", path, cmd)
		}
		out.WriteString("----\n")
		var want []string
		for sc.Scan() && sc.Text() != "" {
			want = append(want, sc.Text())
		}
		got := run(t, &a, t0, cmd)
		out.WriteString(got + "\n\n")
		if g, w := got, strings.Join(want, "\n"); g != w && !*rewrite {
			t.Errorf("%s: %s\n got: %s\nwant: %s", path, cmd, g, w)
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func run(t *testing.T, a *AIMD, t0 time.Time, cmd string) string {
	t.Helper()
	fields := strings.Fields(cmd)
	args := map[string]string{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			t.Fatalf("%q: argument %q is not key=value", cmd, f)
		}
		args[k] = v
	}
	dur := func(k string) time.Duration {
		if args[k] == "" {
			return 0
		}
		d, err := time.ParseDuration(args[k])
		if err != nil {
			t.Fatalf("%q: %s: %v", cmd, k, err)
		}
		return d
	}
	num := func(k string, def int) int {
		if args[k] == "" {
			return def
		}
		n, err := strconv.Atoi(args[k])
		if err != nil {
			t.Fatalf("%q: %s: %v", cmd, k, err)
		}
		return n
	}
	switch fields[0] {
	case "init":
		backoff := 0.0
		if args["backoff"] != "" {
			backoff, _ = strconv.ParseFloat(args["backoff"], 64)
		}
		tol := 0.0
		if args["tolerance"] != "" {
			tol, _ = strconv.ParseFloat(args["tolerance"], 64)
		}
		*a = NewAIMD(Config{Ceiling: num("ceiling", 0), Floor: num("floor", 0), Initial: num("initial", 0),
			Backoff: backoff, Cooldown: dur("cooldown"), Quiet: dur("quiet"), Tolerance: tol, Window: dur("window")})
	case "throttle", "success":
		at, every, n := dur("at"), dur("every"), num("n", 1)
		changes := 0
		for i := range n {
			now := t0.Add(at + time.Duration(i)*every)
			var changed bool
			if fields[0] == "throttle" {
				changed = a.Throttle(now, num("inflight", 0))
			} else {
				used := a.Limit()
				if args["used"] != "limit" {
					used = num("used", used)
				}
				changed = a.Success(now, used, Sample{Function: args["fn"], RTT: dur("rtt"), InFlight: num("sent", 0)})
			}
			if changed {
				changes++
			}
		}
		return fmt.Sprintf("%s changed=%d", a.String(), changes)
	default:
		t.Fatalf("unknown command %q", fields[0])
	}
	return a.String()
}
