package config

import (
	"net"
	"time"
)

// Serving configures the inbound servers and the process around them.
type Serving struct {
	// Listen is the data port's address, where clients call the
	// platform's invoke API. The default listens on every interface.
	Listen string `env:"LISTEN" envDefault:":8080"`
	// AdminListen is the admin port's address: metrics, health, readiness
	// and status. Loopback by default, so that nothing is exposed by
	// accident.
	AdminListen string `env:"ADMIN_LISTEN" envDefault:"127.0.0.1:9090"`
	// AdminPprof serves Go's profiler under `/debug/pprof/` on the admin
	// port.
	AdminPprof bool `env:"ADMIN_PPROF" envDefault:"false"`
	// MaxBodyBytes is the largest request body; larger ones are answered
	// 413. The default is Lambda's 6 MiB synchronous payload limit.
	MaxBodyBytes int `env:"MAX_BODY_BYTES" envDefault:"6291456"`
	// ShutdownTimeout is how long, after SIGTERM, queued and in-flight
	// invocations may take to finish.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT" envDefault:"30s"`
	// DrainDelay is how long, after SIGTERM, `/readyz` fails before the
	// data listener closes, so that load balancers stop sending first.
	DrainDelay time.Duration `env:"DRAIN_DELAY" envDefault:"0s"`
	// LogLevel is `debug`, `info`, `warn` or `error`.
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`
	// LogFormat is `json` or `text` (log/slog).
	LogFormat string `env:"LOG_FORMAT" envDefault:"json"`
}

func (s Serving) check(bad func(name string, v any, why string)) {
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		bad("LISTEN", s.Listen, "not a host:port address")
	}
	if _, _, err := net.SplitHostPort(s.AdminListen); err != nil {
		bad("ADMIN_LISTEN", s.AdminListen, "not a host:port address")
	}
	if s.MaxBodyBytes <= 0 {
		bad("MAX_BODY_BYTES", s.MaxBodyBytes, "must be positive")
	}
	if s.ShutdownTimeout < 0 {
		bad("SHUTDOWN_TIMEOUT", s.ShutdownTimeout, "must not be negative")
	}
	if s.DrainDelay < 0 {
		bad("DRAIN_DELAY", s.DrainDelay, "must not be negative")
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("LOG_LEVEL", s.LogLevel, "must be debug, info, warn or error")
	}
	if s.LogFormat != "json" && s.LogFormat != "text" {
		bad("LOG_FORMAT", s.LogFormat, "must be json or text")
	}
}
