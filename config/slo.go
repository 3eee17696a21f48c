package config

import (
	"net/url"
	"os"
	"time"
)

// SLO configures service-level objectives (package slo): where they are
// declared, how often they are evaluated, and the webhook their alerts go
// to.
type SLO struct {
	// SLOFile is a JSON file of objectives ({"objectives": [...]}); empty
	// means none. A policy may declare objectives too (its rule slos).
	SLOFile string `env:"SLO_FILE" envDefault:""`
	// SLOInterval is how often the objectives are evaluated: the
	// resolution of their burn rates and the longest a breach waits to
	// be notified.
	SLOInterval time.Duration `env:"SLO_INTERVAL" envDefault:"30s"`
	// SLOWebhookURL receives the objectives' alerts in Alertmanager's
	// webhook format; empty means none (the alerts are still in the
	// metrics and the status).
	SLOWebhookURL string `env:"SLO_WEBHOOK_URL" envDefault:""`
	// SLOWebhookRepeat sends an objective's firing alerts again after
	// this long without a change; 0 means never.
	SLOWebhookRepeat time.Duration `env:"SLO_WEBHOOK_REPEAT" envDefault:"4h"`
	// SLOWebhookTimeout bounds one delivery attempt; failed ones are
	// retried with exponential backoff (1s to 1m).
	SLOWebhookTimeout time.Duration `env:"SLO_WEBHOOK_TIMEOUT" envDefault:"10s"`
}

func (s SLO) check(bad func(name string, v any, why string)) {
	if s.SLOFile != "" {
		if st, err := os.Stat(s.SLOFile); err != nil || st.IsDir() {
			bad("SLO_FILE", s.SLOFile, "must be an existing file")
		}
	}
	if s.SLOInterval < time.Second {
		bad("SLO_INTERVAL", s.SLOInterval, "must be at least 1s")
	}
	if s.SLOWebhookURL != "" {
		u, err := url.Parse(s.SLOWebhookURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("SLO_WEBHOOK_URL", s.SLOWebhookURL, "must be an http:// or https:// URL")
		}
	}
	if s.SLOWebhookRepeat < 0 {
		bad("SLO_WEBHOOK_REPEAT", s.SLOWebhookRepeat, "must not be negative")
	}
	if s.SLOWebhookTimeout <= 0 {
		bad("SLO_WEBHOOK_TIMEOUT", s.SLOWebhookTimeout, "must be positive")
	}
}
