package config

import (
	"strings"
	"testing"
)

func TestUnknownVariableNamesTheClosest(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"SEQUOIA_MAX_CONCURENCY=5", "SEQUOIA_MAX_CONCURENCY is not a sequoia variable: did you mean SEQUOIA_MAX_CONCURRENCY?"},
		{"SEQUOIA_QUEUE_TIMOUT=5s", "did you mean SEQUOIA_QUEUE_TIMEOUT?"},
		{"SEQUOIA_BACKEND_ULR=http://x", "did you mean SEQUOIA_BACKEND_URL?"},
		{"SEQUOIA_SOMETHING_ELSE_ENTIRELY=1", "SEQUOIA_SOMETHING_ELSE_ENTIRELY is not a sequoia variable (`sequoia serve --help` lists them)"},
	} {
		_, err := LoadFrom([]string{tc.env})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.env, err, tc.want)
		}
	}
	// A misspelt variable is refused even when everything else is right,
	// and reported with the other problems.
	_, err := LoadFrom([]string{"SEQUOIA_MAX_CONCURENCY=5", "SEQUOIA_QUEUE_TIMEOUT=soon"})
	if err == nil || !strings.Contains(err.Error(), "SEQUOIA_MAX_CONCURENCY") || !strings.Contains(err.Error(), "SEQUOIA_QUEUE_TIMEOUT") {
		t.Errorf("err = %v, want both problems", err)
	}
}

func TestServiceLinkVariablesAreIgnored(t *testing.T) {
	env := []string{
		"SEQUOIA_SERVICE_HOST=10.0.0.1", "SEQUOIA_SERVICE_PORT=80", "SEQUOIA_SERVICE_PORT_HTTP=80",
		"SEQUOIA_PORT=tcp://10.0.0.1:80", "SEQUOIA_PORT_80_TCP=tcp://10.0.0.1:80", "SEQUOIA_PORT_80_TCP_PROTO=tcp",
		"SEQUOIA_PORT_80_TCP_PORT=80", "SEQUOIA_PORT_80_TCP_ADDR=10.0.0.1",
		"SEQUOIA_ADMIN_SERVICE_HOST=10.0.0.2", "SEQUOIA_ADMIN_PORT_9090_TCP=tcp://10.0.0.2:9090",
		"OTHER=1", "sequoia_lower=1",
	}
	if _, err := LoadFrom(env); err != nil {
		t.Errorf("Kubernetes service links: %v", err)
	}
	if errs := Unknown([]string{"SEQUOIA_PORTS=1"}); len(errs) != 1 {
		t.Errorf("SEQUOIA_PORTS: %v, want it reported", errs)
	}
}

// TestProblemsReportedOnceAboutWhatWasSet: one bad value gives one line,
// about the variable set, not about others checked against it.
func TestProblemsReportedOnceAboutWhatWasSet(t *testing.T) {
	for _, tc := range []struct {
		env  []string
		want []string // the lines, in order
	}{
		{[]string{"SEQUOIA_BACKEND=azure"}, []string{"SEQUOIA_BACKEND=azure: must be openwhisk, lambda or http"}},
		{[]string{"SEQUOIA_MAX_CONCURRENCY=-1"}, []string{"SEQUOIA_MAX_CONCURRENCY=-1: must be positive"}},
		{[]string{"SEQUOIA_MAX_CONCURRENCY=0", "SEQUOIA_PREWARM_MIN=3"}, []string{"SEQUOIA_MAX_CONCURRENCY=0: must be positive"}},
		{[]string{"SEQUOIA_MAX_CONCURRENCY=2", "SEQUOIA_PREWARM_MIN=3"}, []string{"SEQUOIA_PREWARM_MIN=3: must not exceed SEQUOIA_MAX_CONCURRENCY"}},
		// Left at their defaults, the holds conflict with the keep-alive
		// set: reported once, about the keep-alive.
		{[]string{"SEQUOIA_PLATFORM_KEEPALIVE=20ms"}, []string{
			"SEQUOIA_PLATFORM_KEEPALIVE=20ms: SEQUOIA_PREWARM_HOLD (25ms, its default) must not be negative nor reach SEQUOIA_PLATFORM_KEEPALIVE"}},
		{[]string{"SEQUOIA_RETRY_BASE_BACKOFF=2s"}, []string{
			"SEQUOIA_RETRY_BASE_BACKOFF=2s: SEQUOIA_RETRY_MAX_BACKOFF (1s, its default) must not be less than SEQUOIA_RETRY_BASE_BACKOFF"}},
		{[]string{"SEQUOIA_LOG_LEVEL=loud", "SEQUOIA_BACKEND=azure", "SEQUOIA_LISTEN=80"}, []string{
			"SEQUOIA_LISTEN=80: not a host:port address", "SEQUOIA_LOG_LEVEL=loud: must be debug, info, warn or error",
			"SEQUOIA_BACKEND=azure: must be openwhisk, lambda or http"}},
	} {
		_, err := LoadFrom(tc.env)
		if err == nil {
			t.Errorf("%v: no error", tc.env)
			continue
		}
		if got := strings.Split(err.Error(), "\n"); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%v:\n got %q\nwant %q", tc.env, got, tc.want)
		}
	}
}

func TestSecretsAreNeverPrinted(t *testing.T) {
	const key = "23bc46b1-71f6-4ed5-8c54-816aa4f8c502:123zO3xZCLrMN6v2BKK1dXYFpXlPkccOFqm12CdAsMgRU4VrNZ9lyGVCGuMDGIwP"
	env := []string{"SEQUOIA_OVERFLOW_OPENWHISK_AUTH=" + key, "SEQUOIA_NATS_URL=nats://u:hunter2@a:4222,nats://b:4222",
		"SEQUOIA_BACKEND_URL=http://user:pw@platform:8081"}
	_, err := LoadFrom(env)
	if err == nil || strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "123zO3") {
		t.Errorf("err = %v: want an error (no SEQUOIA_OVERFLOW_URL) that hides the key", err)
	}
	cfg, _ := LoadFrom(nil)
	cfg.Platforms.OverflowOpenWhiskAuth = key
	cfg.Cluster.NatsURL = "nats://u:hunter2@a:4222,nats://b:4222"
	cfg.Backend.URL = "http://user:pw@platform:8081"
	var b strings.Builder
	if err := WriteSettings(&b, Settings(cfg, env)); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, secret := range []string{"123zO3", "hunter2", ":pw@"} {
		if strings.Contains(out, secret) {
			t.Errorf("settings print %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{"SEQUOIA_OVERFLOW_OPENWHISK_AUTH='(hidden)'", "SEQUOIA_NATS_URL=nats://u:xxxxx@a:4222,nats://b:4222"} {
		if !strings.Contains(out, want) {
			t.Errorf("settings lack %q:\n%s", want, out)
		}
	}
}

func TestSettingsShowEffectiveValues(t *testing.T) {
	env := []string{"SEQUOIA_MAX_CONCURRENCY=20", "SEQUOIA_PREWARM_FUNCTIONS=b=2,a=1"}
	cfg, err := LoadFrom(env)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Setting{}
	for _, s := range Settings(cfg, env) {
		got[s.Name] = s
	}
	if len(got) != len(Variables()) {
		t.Errorf("%d settings, %d variables", len(got), len(Variables()))
	}
	for name, want := range map[string]Setting{
		"SEQUOIA_MAX_CONCURRENCY":   {Value: "20", Set: true},
		"SEQUOIA_PREWARM_FUNCTIONS": {Value: "a=1,b=2", Set: true},
		"SEQUOIA_QUEUE_TIMEOUT":     {Value: "30s"},
		"SEQUOIA_BATCH_SHARE":       {Value: "0.2"},
		"SEQUOIA_POLICY_DIR":        {Value: ""},
	} {
		if g := got[name]; g.Value != want.Value || g.Set != want.Set {
			t.Errorf("%s = %q (set %v), want %q (set %v)", name, g.Value, g.Set, want.Value, want.Set)
		}
	}
	// Every value printed loads back to the same configuration.
	var back []string
	for _, s := range Settings(cfg, env) {
		back = append(back, s.Name+"="+s.Value)
	}
	again, err := LoadFrom(back)
	if err != nil {
		t.Fatalf("printed settings do not load back: %v", err)
	}
	if again.Limits != cfg.Limits || again.Scheduling != cfg.Scheduling || again.WarmPool.PrewarmFunctions["a"] != 1 {
		t.Errorf("printed settings load back differently")
	}
}
