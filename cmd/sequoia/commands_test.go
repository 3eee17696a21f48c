package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/sequoia-qos/sequoia/config"
)

// runBinary runs the built sequoia with args and the environment env
// (none of the caller's SEQUOIA_ variables) and returns its output and exit
// status.
func runBinary(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, config.Prefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// Every command's help goes to standard output, starts with its usage and
// exits 0, whichever way it is asked for.
func TestEveryHelpExitsZero(t *testing.T) {
	for _, cmd := range [][]string{
		{}, {"serve"}, {"config"}, {"emulate"}, {"demo"}, {"version"},
		{"policy"}, {"policy", "check"}, {"policy", "eval"},
		{"bench"}, {"bench", "chains"}, {"bench", "coldstart"}, {"bench", "dags"},
		{"bench", "events"}, {"bench", "cluster"}, {"bench", "chaos"},
	} {
		for _, h := range []string{"--help", "-h", "-help"} {
			args := append(append([]string{}, cmd...), h)
			out, errOut, code := runBinary(t, nil, args...)
			if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage:") {
				t.Errorf("sequoia %s: exit %d, stderr %q, stdout starts %q", strings.Join(args, " "), code, errOut, head(out))
			}
		}
	}
	// Flags are listed where a command has them.
	for _, cmd := range [][]string{{"emulate"}, {"demo"}, {"policy", "eval"}, {"bench", "chains"}, {"bench", "coldstart"}, {"bench", "dags"},
		{"bench", "events"}, {"bench", "cluster"}, {"bench", "chaos"}} {
		out, _, _ := runBinary(t, nil, append(cmd, "--help")...)
		if !strings.Contains(out, "\nflags:\n  -") {
			t.Errorf("sequoia %s --help lists no flags:\n%s", strings.Join(cmd, " "), out)
		}
	}
}

// Errors exit non-zero with one line on standard error and nothing on
// standard output: 2 for a command line that makes no sense, 1 otherwise.
func TestErrorsAreOneLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no command given"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"serve", "extra"}, 2, "serve: takes no arguments"},
		{[]string{"demo", "--nope"}, 2, "demo: flag provided but not defined: -nope"},
		{[]string{"demo", "-chains", "x"}, 2, `demo: invalid value "x" for flag -chains`},
		{[]string{"demo", "-chains", "0"}, 2, "demo: -chains, -steps and -limit must be positive"},
		{[]string{"emulate", "--limit", "0"}, 2, "emulate: --limit must be at least 1"},
		{[]string{"bench"}, 2, "bench: want a benchmark name"},
		{[]string{"bench", "nope"}, 2, `bench: unknown benchmark "nope"`},
		{[]string{"bench", "chains", "-targets", "x"}, 2, `bench chains: unknown target "x"`},
		{[]string{"bench", "chains", "-headroom", "2"}, 2, "bench chains: SEQUOIA_ADMISSION_HEADROOM=2"},
		{[]string{"bench", "coldstart", "-rate", "0"}, 2, "bench coldstart: -chains"},
		{[]string{"bench", "dags", "-width", "0"}, 2, "bench dags: sizes must be positive"},
		{[]string{"bench", "events", "-events", "0"}, 2, "bench events: -events, -clients and -limit must be positive"},
		{[]string{"bench", "cluster", "-replicas", "1"}, 2, "bench cluster: -replicas must be 2 or more"},
		{[]string{"bench", "chaos", "-limit", "0"}, 2, "bench chaos: -limit, -exec, -overload and -outage must be positive"},
		{[]string{"bench", "chaos", "--nope"}, 2, "bench chaos: flag provided but not defined: -nope"},
		{[]string{"policy"}, 2, "policy: no subcommand given"},
		{[]string{"policy", "nope"}, 2, `policy: unknown subcommand "nope"`},
		{[]string{"policy", "check"}, 2, "policy check: want exactly one directory"},
		{[]string{"policy", "check", "/nonexistent/policies"}, 1, "policy check: /nonexistent/policies: no such file or directory"},
		{[]string{"policy", "eval"}, 2, "policy eval: want --input FILE"},
		{[]string{"policy", "eval", "--input", "/nonexistent/in.json"}, 1, "policy eval: /nonexistent/in.json: no such file or directory"},
		{[]string{"version", "x"}, 2, "version: takes no arguments"},
		{[]string{"config", "x"}, 2, "config: takes no arguments"},
	} {
		out, errOut, code := runBinary(t, nil, tc.args...)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		if code != tc.code || out != "" || len(lines) != 1 || !strings.HasPrefix(lines[0], "sequoia: ") || !strings.Contains(lines[0], tc.want) {
			t.Errorf("sequoia %s: exit %d (want %d), stdout %q, stderr %q (want one line with %q)",
				strings.Join(tc.args, " "), code, tc.code, head(out), errOut, tc.want)
		}
	}
}

// serve --help lists every variable with its default, from the same
// source as docs/configuration.md.
func TestServeHelpListsEveryVariable(t *testing.T) {
	out, _, code := runBinary(t, nil, "serve", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, v := range config.Variables() {
		def := v.Default
		if def == "" {
			def = "empty"
		}
		if !strings.Contains(out, "\n  "+v.Name+" (default "+def+")\n") {
			t.Errorf("serve --help lacks %s (default %s)", v.Name, def)
		}
	}
	for _, c := range config.Reference() {
		for _, v := range c.Variables {
			words := strings.Fields(strings.ReplaceAll(v.Doc, "`", ""))
			if !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(words, " ")) {
				t.Errorf("serve --help lacks the meaning of %s", v.Name)
			}
		}
	}
}

// A misspelt variable stops serve, naming the closest; sequoia config
// says the same without starting anything.
func TestMisspeltVariableStopsServe(t *testing.T) {
	env := []string{"SEQUOIA_MAX_CONCURENCY=5", "SEQUOIA_STATE_DIR=" + t.TempDir()}
	for _, cmd := range []string{"serve", "config"} {
		out, errOut, code := runBinary(t, env, cmd)
		if code != 1 || out != "" || !strings.Contains(errOut, "SEQUOIA_MAX_CONCURENCY is not a sequoia variable: did you mean SEQUOIA_MAX_CONCURRENCY?") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", cmd, code, head(out), errOut)
		}
	}
}

// sequoia config prints the effective configuration, secrets hidden.
func TestConfigPrintsEffectiveValues(t *testing.T) {
	const key = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:verysecretkey"
	env := []string{"SEQUOIA_MAX_CONCURRENCY=20", "SEQUOIA_OVERFLOW_URL=http://127.0.0.1:9", "SEQUOIA_OVERFLOW_BACKEND=openwhisk",
		"SEQUOIA_OVERFLOW_OPENWHISK_AUTH=" + key}
	out, errOut, code := runBinary(t, env, "config")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"\nSEQUOIA_MAX_CONCURRENCY=20\n", "\nSEQUOIA_QUEUE_TIMEOUT=30s\n", "\nSEQUOIA_OVERFLOW_OPENWHISK_AUTH='(hidden)'\n", "(set; default 100)"} {
		if !strings.Contains(out, want) {
			t.Errorf("sequoia config lacks %q", want)
		}
	}
	if strings.Contains(out, "verysecretkey") {
		t.Error("sequoia config prints the OpenWhisk key")
	}
	for _, v := range config.Variables() {
		if !strings.Contains(out, "\n"+v.Name+"=") {
			t.Errorf("sequoia config lacks %s", v.Name)
		}
	}
}

func TestVersionText(t *testing.T) {
	got := versionText(&debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/sequoia-qos/sequoia", Version: "v0.2.0"},
		Settings: []debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "GOARCH", Value: "arm64"},
			{Key: "vcs.revision", Value: "ca7f1fc"}, {Key: "vcs.time", Value: "2026-12-05T00:00:00Z"}, {Key: "vcs.modified", Value: "true"}}})
	for _, want := range []string{"sequoia v0.2.0\n", "go1.26.8", "linux/arm64", "ca7f1fc (with local changes)", "2026-12-05T00:00:00Z"} {
		if !strings.Contains(got, want) {
			t.Errorf("version text lacks %q:\n%s", want, got)
		}
	}
	out, _, code := runBinary(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "sequoia ") || !strings.Contains(out, "github.com/sequoia-qos/sequoia") {
		t.Errorf("sequoia version: exit %d, %q", code, out)
	}
}

func head(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
