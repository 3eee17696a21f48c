package config

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Cluster configures the engine sequoia keeps shared and durable state on:
// NATS JetStream, embedded in the process by default, or an external NATS
// cluster that replicas of one deployment share.
type Cluster struct {
	// NatsURL is the external NATS servers to use, comma-separated
	// (`nats://a:4222,nats://b:4222`). Empty: an embedded NATS JetStream
	// server with no listener, its files under SEQUOIA_STATE_DIR, for one
	// replica on its own.
	NatsURL string `env:"NATS_URL" envDefault:""`
	// Name is the cluster's name: replicas with the same name on the same
	// NATS share one platform budget, their chains and durable work.
	// Several deployments may share one NATS under different names.
	Name string `env:"CLUSTER" envDefault:"sequoia"`
	// StateDir is where the embedded NATS server keeps its files. Empty:
	// `$XDG_STATE_HOME/sequoia`, else `~/.local/state/sequoia`, else a
	// directory under the temporary directory (the container image sets
	// `/var/lib/sequoia`).
	StateDir string `env:"STATE_DIR" envDefault:""`
	// NatsCreds is a NATS credentials file (JWT and NKey seed) for the
	// external NATS.
	NatsCreds string `env:"NATS_CREDS" envDefault:""`
	// NatsCA is a PEM file of the certificate authorities that sign the
	// external NATS servers' certificates (`tls://` URLs).
	NatsCA string `env:"NATS_CA" envDefault:""`
	// NatsCert is a PEM client certificate for NATS servers that ask for
	// one, with SEQUOIA_NATS_KEY.
	NatsCert string `env:"NATS_CERT" envDefault:""`
	// NatsKey is the client certificate's key, a PEM file.
	NatsKey string `env:"NATS_KEY" envDefault:""`
	// NatsReplicas is how many NATS servers keep a copy of each of
	// sequoia's streams and buckets (Events, dead letters, the DAG run
	// journal) on the external NATS: 3 survives the loss of one server. 1
	// with the embedded server.
	NatsReplicas int `env:"NATS_REPLICAS" envDefault:"1"`
	// StateSync is how often the embedded server forces its files to disk
	// (fsync): a duration, or "always". Every accepted write reaches the
	// files (the operating system) before it is acknowledged, so a crash
	// of the process loses nothing; a crash of the machine may lose the
	// writes of the last interval. "always" forces every write to disk
	// before it is acknowledged, at a cost in latency measured in
	// docs/events.md.
	StateSync string `env:"STATE_SYNC" envDefault:"2m"`
}

var clusterName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func (c Cluster) check(bad func(name string, v any, why string)) {
	if !clusterName.MatchString(c.Name) {
		bad("CLUSTER", c.Name, "must be 1 to 32 letters, digits, - or _ (it names NATS streams and buckets)")
	}
	for _, u := range strings.Split(c.NatsURL, ",") {
		if c.NatsURL == "" {
			break
		}
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || p.Host == "" || (p.Scheme != "nats" && p.Scheme != "tls" && p.Scheme != "ws" && p.Scheme != "wss") {
			bad("NATS_URL", c.NatsURL, "must be comma-separated nats://, tls://, ws:// or wss:// URLs")
			break
		}
	}
	for name, path := range map[string]string{"NATS_CREDS": c.NatsCreds, "NATS_CA": c.NatsCA, "NATS_CERT": c.NatsCert, "NATS_KEY": c.NatsKey} {
		if path == "" {
			continue
		}
		if c.NatsURL == "" {
			bad(name, path, "is for an external NATS: set SEQUOIA_NATS_URL too")
			continue
		}
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			bad(name, path, "must be a readable file")
		}
	}
	if c.NatsReplicas < 1 || c.NatsReplicas > 5 {
		bad("NATS_REPLICAS", c.NatsReplicas, "must be 1 to 5")
	} else if c.NatsReplicas > 1 && c.NatsURL == "" {
		bad("NATS_REPLICAS", c.NatsReplicas, "is for an external NATS cluster: set SEQUOIA_NATS_URL too (the embedded server keeps one copy)")
	}
	if _, _, err := c.SyncPolicy(); err != nil {
		bad("STATE_SYNC", c.StateSync, err.Error())
	}
	if (c.NatsCert == "") != (c.NatsKey == "") {
		bad("NATS_CERT", c.NatsCert, "and SEQUOIA_NATS_KEY go together")
	}
}

// StateDirectory is the directory the embedded NATS server keeps its files
// in: StateDir, or the default it stands for when empty.
func (c Cluster) StateDirectory() string {
	if c.StateDir != "" {
		return c.StateDir
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "sequoia")
	}
	if home, err := os.UserHomeDir(); err == nil && home != "" && home != "/" {
		return filepath.Join(home, ".local", "state", "sequoia")
	}
	return filepath.Join(os.TempDir(), "sequoia-state")
}

// SyncPolicy reads StateSync: always, or the interval between two fsyncs
// (empty: 2m, the NATS server's default).
func (c Cluster) SyncPolicy() (always bool, every time.Duration, err error) {
	switch c.StateSync {
	case "always":
		return true, 0, nil
	case "":
		return false, 2 * time.Minute, nil
	}
	d, err := time.ParseDuration(c.StateSync)
	if err != nil || d <= 0 {
		return false, 0, errors.New(`must be "always" or a positive duration (like 2m)`)
	}
	return false, d, nil
}
