package config

import (
	"strings"
	"testing"
	"time"
)

func TestDAGDefaultsAndBadValues(t *testing.T) {
	cfg, err := LoadFrom(nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := cfg.DAGs; d.RunRetention != 10*time.Minute || d.MaxRuns != 10000 || d.DAGMaxNodes != 256 || d.DAGMaxNodeBytes != 1<<20 || d.DAGDir != "" {
		t.Errorf("defaults = %+v", d)
	}
	for _, tt := range []struct{ env, name string }{
		{"SEQUOIA_RUN_RETENTION=0s", "SEQUOIA_RUN_RETENTION"},
		{"SEQUOIA_RUN_RETENTION=forever", "SEQUOIA_RUN_RETENTION"},
		{"SEQUOIA_MAX_RUNS=0", "SEQUOIA_MAX_RUNS"},
		{"SEQUOIA_MAX_DAGS=-1", "SEQUOIA_MAX_DAGS"},
		{"SEQUOIA_DAG_MAX_NODES=0", "SEQUOIA_DAG_MAX_NODES"},
		{"SEQUOIA_DAG_MAX_MAP_WIDTH=wide", "SEQUOIA_DAG_MAX_MAP_WIDTH"},
		{"SEQUOIA_DAG_MAX_NODE_BYTES=0", "SEQUOIA_DAG_MAX_NODE_BYTES"},
		{"SEQUOIA_DAG_MAX_RUN_BYTES=10", "SEQUOIA_DAG_MAX_RUN_BYTES"},
		{"SEQUOIA_DAG_DIR=/nonexistent/dags", "SEQUOIA_DAG_DIR"},
	} {
		_, err := LoadFrom([]string{tt.env})
		if err == nil || !strings.Contains(err.Error(), tt.name) {
			t.Errorf("%s: error %v does not name %s", tt.env, err, tt.name)
		}
	}
}
