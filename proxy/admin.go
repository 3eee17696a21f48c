package proxy

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/sequoia-qos/sequoia/metrics"
)

// Admin is the admin-port server: metrics, health, readiness and status.
type Admin struct {
	srv    *http.Server
	mux    *http.ServeMux
	ready  atomic.Bool
	status func() any
}

// NewAdmin returns the admin server; status renders /sequoia/v1/status.
func NewAdmin(m *metrics.Metrics, status func() any) *Admin {
	a := &Admin{status: status}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if !a.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("draining\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /sequoia/v1/status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(a.status())
	})
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	a.mux = mux
	return a
}

// EnableProfiling serves Go's profiler under /debug/pprof/ (call before
// Serve). Off by default: a profile briefly costs CPU and reveals code
// paths, so it is for an operator measuring the proxy.
func (a *Admin) EnableProfiling() {
	a.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	a.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	a.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	a.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	a.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// Handle serves pattern (a net/http pattern, like "GET /sequoia/v1/...")
// with h on the admin port. Call it before Serve.
func (a *Admin) Handle(pattern string, h http.HandlerFunc) { a.mux.HandleFunc(pattern, h) }

// SetReady sets what /readyz answers.
func (a *Admin) SetReady(ready bool) { a.ready.Store(ready) }

// Serve serves the admin port on ln until Shutdown.
func (a *Admin) Serve(ln net.Listener) error {
	if err := a.srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

// Shutdown stops the admin server.
func (a *Admin) Shutdown(ctx context.Context) error { return a.srv.Shutdown(ctx) }
