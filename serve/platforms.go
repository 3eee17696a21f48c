package serve

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/platform"
	"github.com/sequoia-qos/sequoia/proxy"
	"github.com/sequoia-qos/sequoia/qos"
	"github.com/sequoia-qos/sequoia/qos/adaptive"
)

// platformParts is what speaking to a real platform adds to the server:
// the Lambda signer, the adaptive concurrency limit and the retry policy.
type platformParts struct {
	signer   *platform.Signer
	limit    *adaptive.Limit // nil when SEQUOIA_ADAPTIVE=false
	feedback proxy.Feedback  // limit, or nil
	retry    proxy.RetryConfig
	overflow qos.Invoker     // SEQUOIA_OVERFLOW_URL's client or translator, or nil
	rates    proxy.RatePacer // OpenWhisk's per-namespace rate throttles, or nil
}

// limiter is where the adaptive limit applies its limit and reads what
// is in use: the lease's side of this replica (cluster.go), which caps it.
type limiter interface {
	SetLimit(n int)
	InFlight() int
}

func newPlatformParts(cfg config.Config, kind invocation.Platform, sched limiter, m *metrics.Metrics, log *slog.Logger) (platformParts, error) {
	pc := cfg.Platforms
	parts := platformParts{retry: proxy.RetryConfig{
		MaxAttempts:        pc.RetryMaxAttempts,
		BaseBackoff:        pc.RetryBaseBackoff,
		MaxBackoff:         pc.RetryMaxBackoff,
		MaxElapsed:         pc.RetryMaxElapsed,
		Idempotent:         pc.Idempotent,
		BackgroundEstimate: pc.BackgroundEstimate,
		EventMaxAge:        pc.EventMaxAge,
		MaxEvents:          pc.MaxEvents,
		EventMaxRetries:    cfg.Events.EventMaxRetries, // for InMemoryEvents only
		EventRetryDelay:    cfg.Events.EventRetryDelay,
	}}
	if kind == invocation.Lambda {
		u, err := url.Parse(cfg.Backend.URL)
		if err != nil {
			return parts, fmt.Errorf("SEQUOIA_BACKEND_URL: %w", err)
		}
		parts.signer, err = platform.NewLambdaSigner(context.Background(), platform.SignerConfig{
			Region: pc.LambdaRegion, Host: u.Host,
		})
		if err != nil {
			return parts, fmt.Errorf("SEQUOIA_BACKEND=lambda: %w", err)
		}
	}
	if pc.OverflowURL != "" {
		var err error
		if parts.overflow, err = newOverflow(cfg, kind); err != nil {
			return parts, err
		}
	}
	if kind == invocation.OpenWhisk {
		// Namespaces OpenWhisk throttled for their per-minute rate are
		// paced at the rate it states; two quiet minutes end it.
		parts.rates = adaptive.NewRates(cfg.Limits.MaxFunctions, 2*time.Minute)
	}
	if pc.Adaptive && kind == invocation.Lambda {
		// Reserved-concurrency throttles become per-function caps that
		// probe back up at the adaptive limit's pace (proxy/reserved.go).
		parts.retry.ReservedQuiet = pc.AdaptiveQuiet
	}
	if pc.Adaptive {
		tolerance := pc.AdaptiveTolerance
		if tolerance == 0 {
			tolerance = -1 // off
		}
		parts.limit = adaptive.New(adaptive.Config{
			Ceiling:   cfg.Limits.MaxConcurrency,
			Initial:   pc.AdaptiveInitial,
			Backoff:   pc.AdaptiveBackoff,
			Cooldown:  pc.AdaptiveCooldown,
			Quiet:     pc.AdaptiveQuiet,
			Tolerance: tolerance,
		}, sched.SetLimit, sched.InFlight, log)
		parts.feedback = parts.limit
		m.Registry().MustRegister(parts.limit.Collectors(metrics.Namespace)...)
	}
	return parts, nil
}

// newOverflow returns the invoker of SEQUOIA_OVERFLOW_URL: a client that
// forwards the request as it is when the overflow speaks the primary's
// API, else a translator (platform/translate.go).
func newOverflow(cfg config.Config, kind invocation.Platform) (qos.Invoker, error) {
	pc := cfg.Platforms
	to, _ := pc.OverflowKind(cfg.Backend.Kind) // checked by config
	u, err := url.Parse(pc.OverflowURL)
	if err != nil {
		return nil, fmt.Errorf("SEQUOIA_OVERFLOW_URL: %w", err)
	}
	var signer *platform.Signer
	if to == invocation.Lambda {
		if signer, err = platform.NewLambdaSigner(context.Background(), platform.SignerConfig{
			Region: pc.LambdaRegion, Host: u.Host,
		}); err != nil {
			return nil, fmt.Errorf("SEQUOIA_OVERFLOW_URL (lambda): %w", err)
		}
	}
	var auth string
	if to == invocation.OpenWhisk && pc.OverflowOpenWhiskAuth != "" {
		auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(pc.OverflowOpenWhiskAuth))
	}
	c, err := platform.New(platform.Config{
		URL: pc.OverflowURL, Kind: to, Timeout: cfg.Backend.Timeout,
		MaxConns: cfg.Limits.MaxConcurrency + 64, Signer: signer, Authorization: auth,
	})
	if err != nil {
		return nil, fmt.Errorf("SEQUOIA_OVERFLOW_URL: %w", err)
	}
	if to == kind {
		return c, nil
	}
	names, err := pc.OverflowNames(cfg.Backend.Kind)
	if err != nil {
		return nil, fmt.Errorf("SEQUOIA_OVERFLOW_FUNCTIONS: %w", err)
	}
	return platform.NewTranslator(platform.TranslatorConfig{
		From: kind, To: to, Client: c, Names: names, HTTPDomain: pc.OverflowHTTPDomain,
	})
}

// adaptiveStatus is the adaptive limit's part of /sequoia/v1/status.
func adaptiveStatus(l *adaptive.Limit, ceiling int) any {
	if l == nil {
		return map[string]any{"enabled": false, "ceiling": ceiling}
	}
	return struct {
		Enabled bool `json:"enabled"`
		Ceiling int  `json:"ceiling"`
		adaptive.Status
	}{true, ceiling, l.Status()}
}
