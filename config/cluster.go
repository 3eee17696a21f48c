package config

import (
	"bytes"
	"errors"
	"fmt"
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
	// docs/benchmarks.md.
	StateSync string `env:"STATE_SYNC" envDefault:"2m"`
	// LeaseTTL bounds how long a replica's lease of the platform budget
	// outlives its last word: the slots of a replica killed without a
	// goodbye are in use at the others within it (they take them back
	// two SEQUOIA_LEASE_INTERVALs short of it); a replica cut off from
	// NATS keeps its lease until three intervals short of it, then falls
	// back to a safe share (the budget divided by the replicas it last
	// knew).
	LeaseTTL time.Duration `env:"LEASE_TTL" envDefault:"5s"`
	// LeaseInterval is how often a replica tells the others its demand
	// and moves its lease towards its share: an idle replica's slots reach
	// a busy one within about two intervals. At most a fifth of
	// SEQUOIA_LEASE_TTL.
	LeaseInterval time.Duration `env:"LEASE_INTERVAL" envDefault:"200ms"`
	// KeyFile is a file (a mounted secret) holding the key, 32 bytes or
	// more, that signs the admission tickets carried by the chain ids
	// sequoia assigns, so that any replica honours a chain another
	// admitted without a look-up. Empty: the first replica makes one and
	// stores it in NATS for the others.
	KeyFile string `env:"CLUSTER_KEY_FILE" envDefault:""`
	// SpreadReserve is how much a replica keeps in reserve when it admits
	// a chain, beyond SEQUOIA_ADMISSION_HEADROOM, for the load balancer's
	// spread of chains' later steps over the replicas, in standard
	// deviations of that spread (docs/cluster.md): more, fewer chains
	// dropped mid-chain and fewer admitted. 0: none. Unused by a replica
	// alone.
	SpreadReserve float64 `env:"CLUSTER_SPREAD_RESERVE" envDefault:"4"`
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
	if c.LeaseTTL < 500*time.Millisecond || c.LeaseTTL > time.Minute {
		bad("LEASE_TTL", c.LeaseTTL, "must be between 500ms and 1m")
	}
	if c.LeaseInterval < 10*time.Millisecond || c.LeaseInterval > c.LeaseTTL/5 {
		bad("LEASE_INTERVAL", c.LeaseInterval, "must be at least 10ms and at most a fifth of SEQUOIA_LEASE_TTL")
	}
	if !(c.SpreadReserve >= 0 && c.SpreadReserve <= 10) {
		bad("CLUSTER_SPREAD_RESERVE", c.SpreadReserve, "must be between 0 and 10 (standard deviations)")
	}
	if c.KeyFile != "" {
		if b, err := os.ReadFile(c.KeyFile); err != nil {
			bad("CLUSTER_KEY_FILE", c.KeyFile, "must be a readable file")
		} else if len(bytes.TrimSpace(b)) < 32 {
			bad("CLUSTER_KEY_FILE", c.KeyFile, "must hold a key of 32 bytes or more")
		}
	}
}

// Key reads the ticket key from KeyFile (surrounding white space
// trimmed); nil without a file.
func (c Cluster) Key() ([]byte, error) {
	if c.KeyFile == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("SEQUOIA_CLUSTER_KEY_FILE: %w", err)
	}
	return bytes.TrimSpace(b), nil
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
