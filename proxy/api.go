package proxy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/dag"
	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/metrics"
	"github.com/sequoia-qos/sequoia/qos"
)

// The DAG API on the data port:
//
//	GET            /sequoia/v1/dags                names of the registered DAGs
//	PUT|GET|DELETE /sequoia/v1/dags/{name}
//	POST           /sequoia/v1/dags/{name}/runs   synchronous; Prefer: respond-async → 202
//	GET|DELETE     /sequoia/v1/runs/{id}          state; cancel
//
// Writes change what other callers' runs invoke, so PUT and DELETE of a
// DAG need a bearer token (Config.APIAuth: SEQUOIA_API_TOKEN_FILE) and the
// policy's consent (data.sequoia.dag_allowed); without a token source they
// are refused, and DAGs come from SEQUOIA_DAG_DIR alone. Cancelling a run
// needs a token or the Authorization the run was started with. A run's
// tasks carry its caller's Authorization, so the platform checks each one
// as it would a direct call.

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
			p.writeDAG(ctx, name, "put")
		case fasthttp.MethodGet:
			src, ok := p.dags.Get(name)
			if !ok {
				p.apiError(ctx, fasthttp.StatusNotFound, "unknown_dag", "sequoia: no dag named "+strconv.Quote(name))
				return
			}
			ctx.SetContentType("application/json")
			ctx.SetBody(src)
		case fasthttp.MethodDelete:
			p.writeDAG(ctx, name, "delete")
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
			if _, ok := p.authenticate(ctx); !ok && !r.StartedWith(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)) {
				p.unauthorized(ctx, "sequoia: cancelling a run needs a token of SEQUOIA_API_TOKEN_FILE or the Authorization the run was started with")
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

// authenticate returns the caller whose token the request carries.
func (p *Proxy) authenticate(ctx *fasthttp.RequestCtx) (string, bool) {
	if p.cfg.APIAuth == nil {
		return "", false
	}
	return p.cfg.APIAuth.Authenticate(ctx.Request.Header.Peek(fasthttp.HeaderAuthorization))
}

func (p *Proxy) unauthorized(ctx *fasthttp.RequestCtx, msg string) {
	p.m.Reject(metrics.Unauthorized)
	ctx.Response.Header.Set(fasthttp.HeaderWWWAuthenticate, `Bearer realm="sequoia"`)
	p.apiError(ctx, fasthttp.StatusUnauthorized, "unauthorized", msg)
}

// writeDAG registers, replaces (action "put") or deletes ("delete") DAG
// name for a caller with a token, if the policy allows it. Nothing changes
// before both are known. Writes are serialised, so the owner the policy is
// asked about is the one replaced.
func (p *Proxy) writeDAG(ctx *fasthttp.RequestCtx, name, action string) {
	if p.cfg.APIAuth == nil {
		p.m.Reject(metrics.Unauthorized)
		p.apiError(ctx, fasthttp.StatusForbidden, "dag_writes_disabled",
			"sequoia: DAG writes need SEQUOIA_API_TOKEN_FILE, which is not set; register DAGs with SEQUOIA_DAG_DIR")
		return
	}
	caller, ok := p.authenticate(ctx)
	if !ok {
		p.unauthorized(ctx, "sequoia: registering, replacing or deleting a DAG needs Authorization: Bearer TOKEN, a token of SEQUOIA_API_TOKEN_FILE")
		return
	}
	w := DAGWrite{Action: action, DAG: name, Caller: caller}
	var src []byte
	if action == "put" {
		src = ctx.PostBody()
		fns, quals, err := p.dags.Tasks(src)
		if err != nil {
			p.apiError(ctx, fasthttp.StatusBadRequest, "invalid_dag", "sequoia: "+err.Error())
			return
		}
		w.Functions, w.Tenants = p.taskTargets(fns, quals)
	}
	p.dagWrites.Lock()
	defer p.dagWrites.Unlock()
	w.Owner, w.Exists = p.dags.Owner(name)
	if action == "delete" && !w.Exists {
		p.apiError(ctx, fasthttp.StatusNotFound, "unknown_dag", "sequoia: no dag named "+strconv.Quote(name))
		return
	}
	if ok, reason := p.cfg.APIAuth.AllowDAG(w); !ok {
		p.apiError(ctx, fasthttp.StatusForbidden, "dag_write_denied", "sequoia: "+cmp.Or(reason, "denied by policy"))
		return
	}
	if action == "delete" {
		p.dags.Delete(name)
		p.log.Info("dag deleted", "dag", name, "caller", caller)
		ctx.SetStatusCode(fasthttp.StatusNoContent)
		return
	}
	if err := p.dags.PutOwned(name, src, caller); err != nil {
		switch {
		case errors.Is(err, dag.ErrTooManyDAGs):
			p.apiError(ctx, fasthttp.StatusInsufficientStorage, "too_many_dags", "sequoia: "+err.Error())
		default:
			p.apiError(ctx, fasthttp.StatusBadRequest, "invalid_dag", "sequoia: "+err.Error())
		}
		return
	}
	p.log.Info("dag registered", "dag", name, "caller", caller, "replaced", w.Exists)
	ctx.Response.Header.Set("Location", "/sequoia/v1/dags/"+name)
	if w.Exists {
		ctx.SetStatusCode(fasthttp.StatusOK)
	} else {
		ctx.SetStatusCode(fasthttp.StatusCreated)
	}
}

// taskTargets returns the functions tasks invoke (fns, with their Lambda
// qualifiers quals) and their tenants, as the data port names them, each
// sorted without repeats.
func (p *Proxy) taskTargets(fns, quals []string) (functions, tenants []string) {
	for i, f := range fns {
		fn, tenant, err := p.TaskTarget(f, quals[i])
		if err != nil {
			continue // Parse has refused it already
		}
		functions = append(functions, fn)
		if tenant != "" {
			tenants = append(tenants, tenant)
		}
	}
	slices.Sort(functions)
	slices.Sort(tenants)
	return slices.Compact(functions), slices.Compact(tenants)
}

// TaskTarget parses a DAG task's function (and Lambda qualifier) as the
// data port parses an invoke request for this platform, and returns the
// function and tenant it names. A name the platform's invoke API would not
// route to that one function is refused: an OpenWhisk name beyond
// "ns/[pkg/]action", a Lambda name with a '/', an http name of more than
// one path segment, or one that does not start with a letter or a digit
// (such as the platform's own "_stats").
func (p *Proxy) TaskTarget(function, qualifier string) (fn, tenant string, err error) {
	var rt route
	scratch := make([]byte, 0, len(function)+8)
	switch p.cfg.Platform {
	case invocation.OpenWhisk:
		ns, action, ok := strings.Cut(function, "/")
		if !ok {
			ns, action = "_", function
		}
		path := "/api/v1/namespaces/" + ns + "/actions/" + action
		if e := checkRawPath([]byte(path)); e != nil {
			return "", "", errors.New(e.message)
		}
		rt, err = parseOpenWhisk(methodPost, []byte(path), scratch)
	case invocation.Lambda:
		if strings.ContainsAny(function, "/?#%") {
			return "", "", errors.New("a Lambda function name or ARN has no '/', '?', '#' or '%'")
		}
		rt, err = parseLambda(methodPost, []byte("/2015-03-31/functions/"+function+"/invocations"), []byte(qualifier))
	default:
		if function == "" || !(function[0] >= 'a' && function[0] <= 'z' || function[0] >= 'A' && function[0] <= 'Z' || function[0] >= '0' && function[0] <= '9') {
			return "", "", errors.New("an http function's name starts with a letter or a digit")
		}
		rt, err = parseHTTP(httpRoutePath, nil, []byte("/"+function))
		if err == nil && string(rt.function) != function {
			return "", "", errors.New("an http function's name is one path segment: no '/'")
		}
	}
	if err != nil {
		return "", "", err
	}
	if rt.kind != routeInvoke {
		return "", "", errors.New("not an invocation of the platform's API")
	}
	return string(rt.function), string(rt.tenant), nil
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
		case errors.Is(err, qos.ErrRefused) && neverFits(err, "run") != nil:
			nf := neverFits(err, "run")
			p.apiError(ctx, nf.status, nf.code, nf.message)
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
		if p.abandoning.Load() {
			// Cancelled by a shutdown that ran out of time.
			p.abandoned[abandonedInFlight].Add(1)
			ctx.Response.Header.SetCanonical(headerRetry, retryAfterOne)
			p.runError(ctx, fasthttp.StatusServiceUnavailable, "run_abandoned", r.ID, fail)
			return
		}
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
