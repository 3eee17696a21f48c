package qos

import "testing"

// scenarioConfig applies to a scenario's scheduler what scripts set beyond
// the options every version of the harness knows: the sweepers run only
// when a script says "sweep", and max-headroom.
func scenarioConfig(t *testing.T, cfg *Config, a map[string]string) {
	t.Helper()
	cfg.sweepEvery = -1
	if v, ok := a["max-headroom"]; ok {
		var h harness
		h.t = t
		cfg.MaxHeadroom = h.num(v)
	}
}
