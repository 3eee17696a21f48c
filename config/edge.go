package config

import (
	"os"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Edge configures what the data port allows its clients: how many
// connections may be open and how long each step of a request may take.
type Edge struct {
	// MaxConns caps the client connections open on the data port; one
	// over the cap is answered 503 with Retry-After and closed. 0 sets it
	// from the file-descriptor limit (RLIMIT_NOFILE, raised to its hard
	// limit at start) less what sequoia needs for the platform's
	// connections and its own files.
	MaxConns int `env:"MAX_CONNS" envDefault:"0"`
	// HeaderTimeout bounds reading a request's line and headers, from its
	// first byte (a new connection's, from its accept). A connection that
	// sent nothing in that time is closed without an answer; one that sent
	// part of a request is answered 408.
	HeaderTimeout time.Duration `env:"HEADER_TIMEOUT" envDefault:"10s"`
	// BodyTimeout bounds reading a request's body once its headers are in,
	// and writing its answer.
	BodyTimeout time.Duration `env:"BODY_TIMEOUT" envDefault:"60s"`
	// IdleTimeout bounds how long a keep-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration `env:"IDLE_TIMEOUT" envDefault:"90s"`
	// RequestStartHeader names the header in which a proxy in front of
	// sequoia (a load balancer, an ingress) says when it received the
	// request: "t=" and a Unix time in seconds (with a fraction),
	// milliseconds or microseconds, as nginx's `t=${msec}`, HAProxy's
	// `t=%[date(0,ms)]` or Heroku's router send it (not HAProxy's
	// `t=%Ts%ms`: on a kept-alive connection that is when the previous
	// request ended). A new chain's budget then runs
	// from that time if it is earlier than sequoia's own reading: the
	// client's clock was running while the proxy held the request. A time
	// in the future, or longer ago than half the chain's budget (clocks
	// out of step), is ignored; it can only shorten the sender's own
	// budget. Empty: none is read.
	RequestStartHeader string `env:"REQUEST_START_HEADER" envDefault:"X-Request-Start"`
}

func (e Edge) check(bad func(name string, v any, why string)) {
	if e.MaxConns < 0 {
		bad("MAX_CONNS", e.MaxConns, "must not be negative (0 sets it from the file-descriptor limit)")
	}
	if h := e.RequestStartHeader; h != "" && !httpguts.ValidHeaderFieldName(h) {
		bad("REQUEST_START_HEADER", h, "not an HTTP header name")
	}
	for name, d := range map[string]time.Duration{"HEADER_TIMEOUT": e.HeaderTimeout, "BODY_TIMEOUT": e.BodyTimeout, "IDLE_TIMEOUT": e.IdleTimeout} {
		if d <= 0 {
			bad(name, d, "must be positive")
		}
	}
}

// API configures who may change sequoia's own state through its API on
// the data port: registering, replacing and deleting DAGs.
type API struct {
	// APITokenFile is a file of bearer tokens (a mounted Kubernetes
	// Secret works): one a line, "NAME TOKEN" or a lone TOKEN (named
	// "api"), at least 16 characters each; read again when it changes.
	// DAG writes need Authorization: Bearer TOKEN with one of them, and
	// the policy's consent (data.sequoia.dag_allowed). Empty: DAG writes
	// are refused, and DAGs come from SEQUOIA_DAG_DIR only.
	APITokenFile string `env:"API_TOKEN_FILE" envDefault:""`
}

func (a API) check(bad func(name string, v any, why string)) {
	if a.APITokenFile == "" {
		return
	}
	if st, err := os.Stat(a.APITokenFile); err != nil || st.IsDir() {
		bad("API_TOKEN_FILE", a.APITokenFile, "must be a readable file")
	}
}
