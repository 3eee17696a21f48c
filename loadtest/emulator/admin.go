package emulator

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// maxSetting caps the durations accepted by the config endpoint, far from
// any overflow.
const maxSetting = 1000 * time.Hour

// Settings is the JSON form of the run-time settings, served by
// GET /emulator/config and after each POST /emulator/config.
type Settings struct {
	Limit         int     `json:"limit"`
	ExecMs        float64 `json:"exec_ms"`
	ColdStartMs   float64 `json:"cold_start_ms"`
	KeepAliveMs   float64 `json:"keepalive_ms"`
	RatePerMinute int     `json:"rate_per_minute"`
	FailWarmups   bool    `json:"fail_warmups"`
	// Mode and Queue are fixed at start (sequoia emulate --mode, --queue).
	Mode  string `json:"mode"`
	Queue int    `json:"queue"`
}

func (e *Emulator) settings() Settings {
	c := e.Config()
	return Settings{
		Limit:         c.Limit,
		ExecMs:        durationToMs(c.ExecTime),
		ColdStartMs:   durationToMs(c.ColdStart),
		KeepAliveMs:   durationToMs(c.KeepAlive),
		RatePerMinute: c.RatePerMinute,
		FailWarmups:   c.FailWarmups,
		Mode:          c.Mode.String(),
		Queue:         c.Queue,
	}
}

// serveAdmin answers the emulator's own endpoints under /emulator/:
//
//	GET  /emulator/stats   Stats as JSON
//	POST /emulator/reset   Reset, then Stats as JSON
//	GET  /emulator/config  Settings as JSON
//	POST /emulator/config  apply ?limit=&exec_ms=&cold_start_ms=&keepalive_ms=
//	                       &rate_per_minute=&fail_warmups=, then Settings
func (e *Emulator) serveAdmin(ctx *fasthttp.RequestCtx, name []byte) {
	switch string(name) {
	case "stats":
		if !ctx.IsGet() && !ctx.IsHead() {
			writeError(ctx, fasthttp.StatusMethodNotAllowed, "use GET", false)
			return
		}
		writeJSON(ctx, e.Stats())
	case "reset":
		if !ctx.IsPost() {
			writeError(ctx, fasthttp.StatusMethodNotAllowed, "use POST", false)
			return
		}
		e.Reset()
		writeJSON(ctx, e.Stats())
	case "config":
		switch {
		case ctx.IsGet() || ctx.IsHead():
		case ctx.IsPost():
			if err := e.applyArgs(ctx.QueryArgs()); err != nil {
				writeError(ctx, fasthttp.StatusBadRequest, err.Error(), false)
				return
			}
		default:
			writeError(ctx, fasthttp.StatusMethodNotAllowed, "use GET or POST", false)
			return
		}
		writeJSON(ctx, e.settings())
	default:
		writeError(ctx, fasthttp.StatusNotFound, "no such emulator endpoint; try stats, reset or config", false)
	}
}

// applyArgs validates every parameter first and applies them only if all
// are good, so a bad request changes nothing.
func (e *Emulator) applyArgs(args *fasthttp.Args) error {
	var apply []func()
	for k, v := range args.All() {
		key, val := string(k), string(v)
		switch key {
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return fmt.Errorf("limit: want an integer >= 1, got %q", val)
			}
			apply = append(apply, func() { e.SetLimit(n) })
		case "exec_ms", "cold_start_ms", "keepalive_ms":
			ms, err := strconv.ParseFloat(val, 64)
			if err != nil || ms < 0 || math.IsNaN(ms) || math.IsInf(ms, 0) || (key == "keepalive_ms" && ms == 0) {
				return fmt.Errorf("%s: want a number of milliseconds >= 0 (> 0 for keepalive_ms), got %q", key, val)
			}
			d := time.Duration(min(ms, float64(maxSetting/time.Millisecond)) * float64(time.Millisecond))
			switch key {
			case "exec_ms":
				apply = append(apply, func() { e.SetExecTime(d) })
			case "cold_start_ms":
				apply = append(apply, func() { e.SetColdStart(d) })
			default:
				apply = append(apply, func() { e.SetKeepAlive(d) })
			}
		case "rate_per_minute":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return fmt.Errorf("rate_per_minute: want an integer >= 0, got %q", val)
			}
			apply = append(apply, func() { e.SetRatePerMinute(n) })
		case "fail_warmups":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return fmt.Errorf("fail_warmups: want true or false, got %q", val)
			}
			apply = append(apply, func() { e.SetFailWarmups(b) })
		default:
			return fmt.Errorf("unknown parameter %q; known: limit, exec_ms, cold_start_ms, keepalive_ms, rate_per_minute, fail_warmups", key)
		}
	}
	for _, f := range apply {
		f()
	}
	if len(apply) > 0 {
		s := e.settings()
		e.log.Info("emulator settings changed", "limit", s.Limit, "exec_ms", s.ExecMs,
			"cold_start_ms", s.ColdStartMs, "keepalive_ms", s.KeepAliveMs,
			"rate_per_minute", s.RatePerMinute, "fail_warmups", s.FailWarmups)
	}
	return nil
}

func writeJSON(ctx *fasthttp.RequestCtx, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(ctx, fasthttp.StatusInternalServerError, err.Error(), false)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType(contentJSON)
	ctx.SetBody(b)
}

func durationToMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
