package config

import (
	"strings"
	"testing"
	"time"
)

func TestEventsDefaults(t *testing.T) {
	cfg, err := LoadFrom(nil)
	if err != nil {
		t.Fatal(err)
	}
	e, c := cfg.Events, cfg.Cluster
	if e.EventMaxRetries != 2 || e.EventRetryDelay != time.Minute || e.DurableLease != 30*time.Second ||
		e.EventDedupWindow != 2*time.Minute || c.NatsReplicas != 1 || c.StateSync != "2m" {
		t.Errorf("defaults %+v %+v", e, c)
	}
	if always, every, err := c.SyncPolicy(); always || every != 2*time.Minute || err != nil {
		t.Errorf("sync policy %v %v %v", always, every, err)
	}
	if always, _, err := (Cluster{StateSync: "always"}).SyncPolicy(); !always || err != nil {
		t.Errorf("always: %v %v", always, err)
	}
}

func TestEventsBadValuesNameTheVariable(t *testing.T) {
	for _, tt := range []struct{ env, name string }{
		{"SEQUOIA_EVENT_MAX_RETRIES=3", "SEQUOIA_EVENT_MAX_RETRIES"},
		{"SEQUOIA_EVENT_MAX_RETRIES=-1", "SEQUOIA_EVENT_MAX_RETRIES"},
		{"SEQUOIA_EVENT_RETRY_DELAY=0s", "SEQUOIA_EVENT_RETRY_DELAY"},
		{"SEQUOIA_EVENT_DEDUP_WINDOW=-1s", "SEQUOIA_EVENT_DEDUP_WINDOW"},
		{"SEQUOIA_EVENT_MAX_BYTES=1000", "SEQUOIA_EVENT_MAX_BYTES"},
		{"SEQUOIA_EVENT_DEAD_MAX=0", "SEQUOIA_EVENT_DEAD_MAX"},
		{"SEQUOIA_EVENT_ON_FAILURE_URL=ftp://x", "SEQUOIA_EVENT_ON_FAILURE_URL"},
		{"SEQUOIA_EVENT_CONCURRENCY=-2", "SEQUOIA_EVENT_CONCURRENCY"},
		{"SEQUOIA_DURABLE_LEASE=100ms", "SEQUOIA_DURABLE_LEASE"},
		{"SEQUOIA_RUN_JOURNAL_MAX_BYTES=5", "SEQUOIA_RUN_JOURNAL_MAX_BYTES"},
		{"SEQUOIA_NATS_REPLICAS=0", "SEQUOIA_NATS_REPLICAS"},
		{"SEQUOIA_NATS_REPLICAS=3", "SEQUOIA_NATS_REPLICAS"}, // embedded
		{"SEQUOIA_STATE_SYNC=sometimes", "SEQUOIA_STATE_SYNC"},
		{"SEQUOIA_STATE_SYNC=0s", "SEQUOIA_STATE_SYNC"},
		{"SEQUOIA_CLUSTER_SPREAD_RESERVE=-1", "SEQUOIA_CLUSTER_SPREAD_RESERVE"},
		{"SEQUOIA_CLUSTER_SPREAD_RESERVE=NaN", "SEQUOIA_CLUSTER_SPREAD_RESERVE"},
	} {
		_, err := LoadFrom([]string{tt.env})
		if err == nil || !strings.Contains(err.Error(), tt.name) {
			t.Errorf("%s: %v, want an error naming %s", tt.env, err, tt.name)
		}
	}
	if _, err := LoadFrom([]string{"SEQUOIA_NATS_URL=nats://a:4222", "SEQUOIA_NATS_REPLICAS=3", "SEQUOIA_STATE_SYNC=always"}); err != nil {
		t.Errorf("3 replicas on an external NATS: %v", err)
	}
}
