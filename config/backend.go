package config

import (
	"net/url"
	"time"
)

// Backend configures the platform sequoia fronts.
type Backend struct {
	// Kind is the platform's API: `openwhisk`, `lambda` or `http` (Knative
	// and plain HTTP functions).
	Kind string `env:"BACKEND" envDefault:"http"`
	// URL is the platform's base URL, scheme and host only. It is the only
	// place sequoia ever forwards to.
	URL string `env:"BACKEND_URL" envDefault:"http://127.0.0.1:8081"`
	// Timeout is the longest single invocation at the platform, connection
	// included; past it the client gets 504.
	Timeout time.Duration `env:"BACKEND_TIMEOUT" envDefault:"5m"`
	// HTTPRoute says how an `http` backend's function is named: by `host`
	// (the Host header's first label), by `path` (the first path segment),
	// or `auto` (Host when it is a DNS name with a dot, else the path).
	HTTPRoute string `env:"HTTP_ROUTE" envDefault:"auto"`
}

func (b Backend) check(bad func(name string, v any, why string)) {
	switch b.Kind {
	case "openwhisk", "lambda", "http":
	default:
		bad("BACKEND", b.Kind, "must be openwhisk, lambda or http")
	}
	checkBaseURL("BACKEND_URL", b.URL, bad)
	if b.Timeout <= 0 {
		bad("BACKEND_TIMEOUT", b.Timeout, "must be positive")
	}
	switch b.HTTPRoute {
	case "auto", "host", "path":
	default:
		bad("HTTP_ROUTE", b.HTTPRoute, "must be auto, host or path")
	}
}

// checkBaseURL checks a platform's base URL: absolute http(s), no path or
// query (sequoia forwards the client's).
func checkBaseURL(name, raw string, bad func(name string, v any, why string)) {
	if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad(name, raw, "must be an absolute http:// or https:// URL")
	} else if u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		bad(name, raw, "must have no path or query: sequoia forwards the client's")
	}
}
