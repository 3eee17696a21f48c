package config

import (
	"os"
	"time"
)

// DAGs configures DAG runs (package dag): where DAGs are loaded from at
// start, how big they and their runs may be, and how long finished runs
// are kept.
type DAGs struct {
	// DAGDir is a directory of DAGs registered at start, one per `*.json`
	// file, named after the file; an invalid one stops start-up. Empty
	// means none (register them with `PUT /sequoia/v1/dags/{name}` and a
	// token of SEQUOIA_API_TOKEN_FILE).
	DAGDir string `env:"DAG_DIR" envDefault:""`
	// RunRetention is how long a finished run's state and output stay
	// readable at `GET /sequoia/v1/runs/{id}`.
	RunRetention time.Duration `env:"RUN_RETENTION" envDefault:"10m"`
	// MaxRuns bounds the runs in progress (more are answered 429) and,
	// separately, the finished runs kept (the oldest is forgotten first).
	MaxRuns int `env:"MAX_RUNS" envDefault:"10000"`
	// MaxDAGs bounds the registered DAGs.
	MaxDAGs int `env:"MAX_DAGS" envDefault:"1000"`
	// DAGMaxNodes bounds the nodes of one DAG (and the steps of one
	// sequence).
	DAGMaxNodes int `env:"DAG_MAX_NODES" envDefault:"256"`
	// DAGMaxMapWidth bounds the items one map node fans out to, the
	// branches of a parallel, and a run's fan-out goroutines.
	DAGMaxMapWidth int `env:"DAG_MAX_MAP_WIDTH" envDefault:"1000"`
	// DAGMaxNodeBytes bounds a run's input and each node's output; a
	// larger run input is answered 413.
	DAGMaxNodeBytes int `env:"DAG_MAX_NODE_BYTES" envDefault:"1048576"`
	// DAGMaxRunBytes bounds the outputs of all of a run's tasks together.
	DAGMaxRunBytes int `env:"DAG_MAX_RUN_BYTES" envDefault:"16777216"`
}

func (d DAGs) check(bad func(name string, v any, why string)) {
	if d.DAGDir != "" {
		if st, err := os.Stat(d.DAGDir); err != nil || !st.IsDir() {
			bad("DAG_DIR", d.DAGDir, "must be an existing directory")
		}
	}
	if d.RunRetention <= 0 {
		bad("RUN_RETENTION", d.RunRetention, "must be positive")
	}
	for name, v := range map[string]int{"MAX_RUNS": d.MaxRuns, "MAX_DAGS": d.MaxDAGs, "DAG_MAX_NODES": d.DAGMaxNodes,
		"DAG_MAX_MAP_WIDTH": d.DAGMaxMapWidth, "DAG_MAX_NODE_BYTES": d.DAGMaxNodeBytes, "DAG_MAX_RUN_BYTES": d.DAGMaxRunBytes} {
		if v <= 0 {
			bad(name, v, "must be positive")
		}
	}
	if d.DAGMaxRunBytes < d.DAGMaxNodeBytes {
		bad("DAG_MAX_RUN_BYTES", d.DAGMaxRunBytes, "must not be less than SEQUOIA_DAG_MAX_NODE_BYTES")
	}
}
