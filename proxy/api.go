package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/dag"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/qos"
)

// The DAG API on the data port (issue 8):
//
//	GET            /sequoia/v1/dags                names of the registered DAGs
//	PUT|GET|DELETE /sequoia/v1/dags/{name}
//	POST           /sequoia/v1/dags/{name}/runs   synchronous; Prefer: respond-async → 202
//	GET|DELETE     /sequoia/v1/runs/{id}          state; cancel

// ServeDAGs makes the proxy answer the DAG API with s. Call it before
// Serve; without it /sequoia/v1/ answers 404.
func (p *Proxy) ServeDAGs(s *dag.Service) { p.dags = s }

// Invoker returns what the proxy invokes the platform with (the upstream
// client, reporting to the adaptive limit when there is one), for DAG runs
// to share.
func (p *Proxy) Invoker() qos.Invoker { return p.plat.iv }

// runRequest is the body of POST .../runs.
type runRequest struct {
	Input      json.RawMessage `json:"input"`
	DeadlineMs int64           `json:"deadline_ms"`
}

func (p *Proxy) serveAPI(ctx *fasthttp.RequestCtx) {
	rest := string(ctx.Path()[len(apiPrefix):])
	m := string(ctx.Method())
	switch {
	case rest == "dags" || rest == "dags/":
		if m != fasthttp.MethodGet {
			p.methodNotAllowed(ctx, "GET")
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, map[string][]string{"dags": p.dags.Names()})
	case strings.HasPrefix(rest, "dags/"):
		name, runs, hasRuns := strings.Cut(rest[len("dags/"):], "/")
		if !dag.ValidName(name) || hasRuns && runs != "runs" {
			p.apiError(ctx, fasthttp.StatusNotFound, "not_found", "sequoia: no such sequoia API endpoint")
			return
		}
		if hasRuns {
			if m != fasthttp.MethodPost {
				p.methodNotAllowed(ctx, "POST")
				return
			}
			p.startRun(ctx, name)
			return
		}
		switch m {
		case fasthttp.MethodPut:
			p.putDAG(ctx, name)
		case fasthttp.MethodGet:
			src, ok := p.dags.Get(name)
			if !ok {
				p.apiError(ctx, fasthttp.StatusNotFound, "unknown_dag", "sequoia: no dag named "+strconv.Quote(name))
				return
			}
			ctx.SetContentType("application/json")
			ctx.SetBody(src)
		case fasthttp.MethodDelete:
			if !p.dags.Delete(name) {
				p.apiError(ctx, fasthttp.StatusNotFound, "unknown_dag", "sequoia: no dag named "+strconv.Quote(name))
				return
			}
			ctx.SetStatusCode(fasthttp.StatusNoContent)
		default:
			p.methodNotAllowed(ctx, "PUT, GET, DELETE")
		}
	case strings.HasPrefix(rest, "runs/"):
		id := rest[len("runs/"):]
		r, local := p.dags.Run(id)
		switch m {
		case fasthttp.MethodGet:
			// A run of another replica, or of this one before a
			// restart, is read from the journal.
			snap, ok := p.dags.Snapshot(id)
			if !ok {
				p.apiError(ctx, fasthttp.StatusNotFound, "unknown_run", "sequoia: no run "+strconv.Quote(id)+" (finished runs are kept for SEQUOIA_RUN_RETENTION)")
				return
			}
			writeJSON(ctx, fasthttp.StatusOK, snap)
		case fasthttp.MethodDelete:
			if !local {
				if _, ok := p.dags.Snapshot(id); ok {
					p.apiError(ctx, fasthttp.StatusConflict, "run_elsewhere", "sequoia: the run is held by another replica (or has ended there); cancel it there")
					return
				}
				p.apiError(ctx, fasthttp.StatusNotFound, "unknown_run", "sequoia: no run "+strconv.Quote(id)+" (finished runs are kept for SEQUOIA_RUN_RETENTION)")
				return
			}
			if !r.Cancel() {
				p.apiError(ctx, fasthttp.StatusConflict, "run_ended", "sequoia: the run has already ended")
				return
			}
			// Nothing more is invoked; a call in flight runs to its end,
			// which is waited for a little, not for as long as it takes.
			t := time.NewTimer(cancelWait)
			defer t.Stop()
			select {
			case <-r.Done():
				writeJSON(ctx, fasthttp.StatusOK, r.Snapshot())
			case <-t.C:
				writeJSON(ctx, fasthttp.StatusAccepted, r.Snapshot())
			}
		default:
			p.methodNotAllowed(ctx, "GET, DELETE")
		}
	default:
		p.reject(ctx, metrics.NotFound, errNoAPI)
	}
}

func (p *Proxy) putDAG(ctx *fasthttp.RequestCtx, name string) {
	_, existed := p.dags.Get(name)
	if err := p.dags.Put(name, ctx.PostBody()); err != nil {
		switch {
		case errors.Is(err, dag.ErrTooManyDAGs):
			p.apiError(ctx, fasthttp.StatusInsufficientStorage, "too_many_dags", "sequoia: "+err.Error())
		default:
			p.apiError(ctx, fasthttp.StatusBadRequest, "invalid_dag", "sequoia: "+err.Error())
		}
		return
	}
	ctx.Response.Header.Set("Location", "/sequoia/v1/dags/"+name)
	if existed {
		ctx.SetStatusCode(fasthttp.StatusOK)
	} else {
		ctx.SetStatusCode(fasthttp.StatusCreated)
	}
}

var preferAsync = []byte("respond-async")

// cancelWait bounds how long DELETE /sequoia/v1/runs/{id} waits for the
// run to stop before answering 202 with its state so far.
const cancelWait = 2 * time.Second

func (p *Proxy) startRun(ctx *fasthttp.RequestCtx, name string) {
	var rq runRequest
	if body := ctx.PostBody(); len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rq); err != nil {
			p.apiError(ctx, fasthttp.StatusBadRequest, "bad_request", `sequoia: the run request is {"input": ..., "deadline_ms": N}: `+err.Error())
			return
		}
	}
	if rq.DeadlineMs < 0 {
		p.apiError(ctx, fasthttp.StatusBadRequest, "bad_request", "sequoia: deadline_ms must not be negative")
		return
	}
	rr := dag.RunRequest{Input: rq.Input, Budget: time.Duration(rq.DeadlineMs) * time.Millisecond, Class: p.cfg.DefaultClass}
	if h := ctx.Request.Header.Peek("X-Sequoia-Deadline-Ms"); rr.Budget == 0 && len(h) > 0 {
		n, err := strconv.ParseInt(string(h), 10, 64)
		if err != nil || n < 0 {
			p.apiError(ctx, fasthttp.StatusBadRequest, "bad_request", "sequoia: X-Sequoia-Deadline-Ms must be a non-negative integer")
			return
		}
		rr.Budget = time.Duration(n) * time.Millisecond
	}
	if c, ok := qos.ParseClass(ctx.Request.Header.Peek("X-Sequoia-Priority")); ok {
		rr.Class = c
	}
	if a := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization); len(a) > 0 {
		rr.Auth = append([]byte(nil), a...)
	}
	// A run answered 202 is journaled first: another replica, or the next
	// start, finishes it if this process dies.
	async := bytes.Contains(ctx.Request.Header.Peek("Prefer"), preferAsync)
	rr.Durable = async
	r, err := p.dags.Start(name, rr)
	if err != nil {
		switch {
		case errors.Is(err, dag.ErrUnknownDAG):
			p.apiError(ctx, fasthttp.StatusNotFound, "unknown_dag", "sequoia: no dag named "+strconv.Quote(name))
		case errors.Is(err, dag.ErrTooLarge):
			p.apiError(ctx, fasthttp.StatusRequestEntityTooLarge, "input_too_large", "sequoia: "+err.Error()+" (SEQUOIA_DAG_MAX_NODE_BYTES)")
		case errors.Is(err, dag.ErrInvalid):
			p.apiError(ctx, fasthttp.StatusBadRequest, "bad_request", "sequoia: "+err.Error())
		case errors.Is(err, qos.ErrRefused):
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, strconv.Itoa(qos.RetryAfterSeconds(err)))
			p.apiError(ctx, fasthttp.StatusTooManyRequests, "run_refused", "sequoia: this run cannot finish within its deadline given the work admitted ahead of it; retry after Retry-After seconds")
		case errors.Is(err, dag.ErrJournal):
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
			p.apiError(ctx, fasthttp.StatusServiceUnavailable, "journal_unavailable", "sequoia: the run journal did not record the run, so it was not started; retry later")
		case errors.Is(err, dag.ErrTooManyRuns):
			ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
			p.apiError(ctx, fasthttp.StatusTooManyRequests, "too_many_runs", "sequoia: too many runs in progress (SEQUOIA_MAX_RUNS)")
		default:
			p.apiError(ctx, fasthttp.StatusInternalServerError, "internal", "sequoia: "+err.Error())
		}
		return
	}
	loc := "/sequoia/v1/runs/" + r.ID
	ctx.Response.Header.Set("Location", loc)
	ctx.Response.Header.Set("X-Sequoia-Run-Id", r.ID)
	ctx.Response.Header.Set("X-Sequoia-Chain-Id", r.ID)
	if async {
		ctx.Response.Header.Set("Preference-Applied", "respond-async")
		writeJSON(ctx, fasthttp.StatusAccepted, map[string]string{"id": r.ID, "status": string(dag.Running), "location": loc})
		return
	}
	<-r.Done()
	st, out, fail := r.Result()
	switch st {
	case dag.Succeeded:
		ctx.SetStatusCode(fasthttp.StatusOK)
		ctx.SetContentType("application/json")
		ctx.SetBody(out)
	case dag.Canceled:
		p.runError(ctx, fasthttp.StatusConflict, "run_canceled", r.ID, fail)
	case dag.TimedOut:
		p.runError(ctx, fasthttp.StatusGatewayTimeout, "run_deadline", r.ID, fail)
	default:
		p.runError(ctx, fasthttp.StatusBadGateway, "node_failed", r.ID, fail)
	}
}

func (p *Proxy) runError(ctx *fasthttp.RequestCtx, status int, code, id string, f *dag.Failure) {
	body := map[string]any{"code": code, "run_id": id}
	if f != nil {
		body["error"] = f.Error()
		if f.Node != "" {
			body["node"] = f.Node
		}
		if f.Status != 0 {
			body["status"] = f.Status
		}
		if f.ErrorName != "" { // a state machine's Error and Cause
			body["error_name"], body["cause"] = f.ErrorName, f.Cause
		}
	}
	writeJSON(ctx, status, body)
}

func (p *Proxy) apiError(ctx *fasthttp.RequestCtx, status int, code, msg string) {
	writeJSON(ctx, status, map[string]string{"error": msg, "code": code})
}

func (p *Proxy) methodNotAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set(fasthttp.HeaderAllow, allow)
	p.apiError(ctx, fasthttp.StatusMethodNotAllowed, "method_not_allowed", "sequoia: allowed methods: "+allow)
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = fasthttp.StatusInternalServerError, []byte(`{"error":"sequoia: cannot encode the answer","code":"internal"}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}
