package platform

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/internal/fnmap"
	"github.com/sequoia-qos/sequoia/invocation"
)

// Translator carries invocations to an overflow platform whose API is not
// the primary's: it builds the overflow platform's own invoke request from
// the client's, and writes the overflow platform's answer back in the
// primary's shape, so that the client's SDK decodes it as it would the
// primary's.
//
// The request is built afresh, never copied: the function is named by a
// fnmap.Resolver, the JSON body is carried as it is (OpenWhisk parameters
// and Lambda payloads are both JSON), the invocation type follows (Lambda
// Event, OpenWhisk non-blocking, http "Prefer: respond-async"), and the
// credentials are sequoia's own, which the overflow's Client adds (its
// Signer for Lambda, its Authorization from SEQUOIA_OVERFLOW_OPENWHISK_AUTH
// for OpenWhisk, none for http). Of the client's headers only
// X-Sequoia-Chain-Id, traceparent, tracestate and Idempotency-Key go on;
// the client's Authorization, which belongs to the primary, never does.
// The request goes through the overflow's Client, bound to
// SEQUOIA_OVERFLOW_URL: no other address is ever contacted.
//
// Cost: a body check (json.Valid), a few small allocations for the path,
// and a pooled request and response; the answer is copied once into the
// client's response. It runs only on the overflow path.
type Translator struct {
	from, to invocation.Platform
	c        *Client
	names    *fnmap.Resolver
	domain   string // http: services are reached as Host {service}.{domain}
	pool     sync.Pool
}

// Abort cuts the overflow platform's calls in progress (Client.Abort).
func (t *Translator) Abort() int { return t.c.Abort() }

// TranslatorConfig configures NewTranslator.
type TranslatorConfig struct {
	// From is the primary's API, the one clients speak.
	From invocation.Platform
	// To is the overflow platform's API; Client forwards to it, with
	// sequoia's credentials (an OpenWhisk Client needs its Authorization).
	To     invocation.Platform
	Client *Client
	// Names maps function names; it must be built for From and To.
	Names *fnmap.Resolver
	// HTTPDomain, when set, reaches http services by Host
	// {service}.{HTTPDomain} (Knative); else by path /{service}.
	HTTPDomain string
}

// NewTranslator checks cfg and returns a Translator.
func NewTranslator(cfg TranslatorConfig) (*Translator, error) {
	if cfg.From == cfg.To {
		return nil, errors.New("overflow: the primary and the overflow speak the same API: nothing to translate")
	}
	if cfg.Client == nil || cfg.Names == nil {
		return nil, errors.New("overflow: a client and a name resolver are required")
	}
	t := &Translator{from: cfg.From, to: cfg.To, c: cfg.Client, names: cfg.Names, domain: cfg.HTTPDomain}
	if cfg.To == invocation.OpenWhisk && cfg.Client.auth == nil {
		return nil, errors.New("overflow: an OpenWhisk overflow needs sequoia's own API key as its client's Authorization (SEQUOIA_OVERFLOW_OPENWHISK_AUTH)")
	}
	t.pool.New = func() any { return new(exchange) }
	return t, nil
}

// UntranslatableError says why an invocation cannot be carried to the
// overflow platform's API. Nothing was sent.
type UntranslatableError struct {
	To  invocation.Platform
	Why string
}

func (e *UntranslatableError) Error() string {
	return "overflow to " + e.To.String() + ": " + e.Why
}

// OverflowError is an answer of the overflow platform that is neither a
// result nor the function's own error: a throttle, an unavailable
// platform, or a refusal (bad credentials, unknown function). Verdict
// says which; Detail is the platform's message, shortened.
type OverflowError struct {
	To         invocation.Platform
	Status     int
	Verdict    Verdict
	RetryAfter time.Duration
	Detail     string
}

func (e *OverflowError) Error() string {
	return "the overflow platform (" + e.To.String() + ") answered " + strconv.Itoa(e.Status) + ": " + e.Detail
}

// exchange is one pooled outbound request and its answer.
type exchange struct {
	req  fasthttp.Request
	resp fasthttp.Response
}

// call is what the client asked, read in its own API's terms.
type call struct {
	async      bool // Lambda Event, OpenWhisk non-blocking, http respond-async
	resultOnly bool // OpenWhisk blocking with result=true: answer the result alone
	body       []byte
}

var (
	headerPrefer         = []byte("Prefer")
	headerInvocationType = []byte("X-Amz-Invocation-Type")
	respondAsync         = []byte("respond-async")
	eventType            = []byte("Event")
	overflowHeader       = "X-Sequoia-Overflow"
	forwardedHeaders     = [...]string{"X-Sequoia-Chain-Id", "Traceparent", "Tracestate", "Idempotency-Key"}
	latest               = []byte("$LATEST")
	headerActivation     = "X-Openwhisk-Activation-Id"
	headerExecVersion    = "X-Amz-Executed-Version"
)

// Invoke carries inv to the overflow platform and writes the answer into
// inv.Resp in the primary's shape. It returns an *UntranslatableError when
// inv cannot be expressed in the overflow's API, an *OverflowError when
// the overflow platform refused it, and ErrTimeout or ErrUnreachable when
// it gave no answer; inv.Resp is then untouched.
func (t *Translator) Invoke(inv *invocation.Invocation) error {
	c, err := t.readCall(inv)
	if err != nil {
		return err
	}
	target, err := t.names.Resolve(inv.Function, inv.Qualifier)
	if err != nil {
		return &UntranslatableError{To: t.to, Why: err.Error()}
	}
	x := t.pool.Get().(*exchange)
	defer func() {
		x.req.Reset()
		x.resp.Reset()
		t.pool.Put(x)
	}()
	t.buildRequest(&x.req, inv, target, c)
	start := time.Now()
	out := invocation.Invocation{Function: target.Name, Req: &x.req, Resp: &x.resp}
	if err := t.c.Invoke(&out); err != nil {
		return err
	}
	a, err := t.readAnswer(&x.resp)
	if err != nil {
		return err
	}
	t.writeAnswer(inv, c, a, start, time.Now())
	return nil
}

// readCall reads the client's request in the primary's terms.
func (t *Translator) readCall(inv *invocation.Invocation) (call, error) {
	req := inv.Req
	var c call
	switch t.from {
	case invocation.OpenWhisk:
		if !bytes.HasPrefix(req.URI().Path(), owNamespacesPath) {
			return c, t.untranslatable("web actions answer with their own HTTP response, which has no equivalent on another platform")
		}
		args := req.URI().QueryArgs()
		blocking := args.GetBool("blocking")
		c.async = !blocking
		c.resultOnly = blocking && args.GetBool("result")
	case invocation.Lambda:
		switch it := req.Header.PeekBytes(headerInvocationType); {
		case len(it) == 0 || string(it) == "RequestResponse":
		case bytes.Equal(it, eventType):
			c.async = true
		default:
			return c, t.untranslatable("invocation type " + strconv.Quote(string(it)) + " has no equivalent")
		}
	default:
		if !req.Header.IsPost() {
			return c, t.untranslatable("only POST invocations can be carried to another platform's invoke API")
		}
		p := bytes.TrimSuffix(req.URI().Path(), slash)
		if len(p) > 0 && string(p[1:]) != inv.Function {
			return c, t.untranslatable("the path " + strconv.Quote(string(req.URI().Path())) + " says more than the function, and another platform's invoke API cannot carry it")
		}
		if len(req.URI().QueryString()) > 0 {
			return c, t.untranslatable("the query string cannot be carried to another platform's invoke API")
		}
		c.async = bytes.Contains(req.Header.PeekBytes(headerPrefer), respondAsync)
	}
	c.body = bytes.TrimSpace(req.Body())
	if len(c.body) > 0 && !json.Valid(c.body) {
		return c, t.untranslatable("the body is not JSON, and another platform's invoke API takes JSON")
	}
	if t.to == invocation.OpenWhisk {
		if len(c.body) == 0 {
			c.body = emptyObject
		} else if c.body[0] != '{' {
			return c, t.untranslatable("OpenWhisk parameters must be a JSON object")
		}
	}
	return c, nil
}

func (t *Translator) untranslatable(why string) error {
	return &UntranslatableError{To: t.to, Why: why}
}

var (
	owNamespacesPath = []byte("/api/v1/namespaces/")
	slash            = []byte("/")
	emptyObject      = []byte("{}")
	contentJSON      = []byte("application/json")
)

// buildRequest writes the overflow platform's invoke request for target.
func (t *Translator) buildRequest(req *fasthttp.Request, inv *invocation.Invocation, target fnmap.Target, c call) {
	req.Header.SetMethod(fasthttp.MethodPost)
	for _, h := range forwardedHeaders {
		if v := inv.Req.Header.Peek(h); len(v) > 0 {
			req.Header.SetBytesV(h, v)
		}
	}
	if inv.Chain != "" {
		req.Header.Set("X-Sequoia-Chain-Id", inv.Chain)
	}
	var path []byte
	switch t.to {
	case invocation.OpenWhisk:
		path = append(path, owNamespacesPath...)
		path = append(path, url.PathEscape(target.Namespace)...)
		path = append(path, "/actions/"...)
		if target.Package != "" {
			path = append(path, url.PathEscape(target.Package)...)
			path = append(path, '/')
		}
		path = append(path, url.PathEscape(target.Name)...)
		if c.async {
			path = append(path, "?blocking=false"...)
		} else {
			path = append(path, "?blocking=true&result=true"...)
		}
		req.Header.SetContentTypeBytes(contentJSON)
	case invocation.Lambda:
		path = append(path, "/2015-03-31/functions/"...)
		path = append(path, target.Name...)
		path = append(path, "/invocations"...)
		if target.Qualifier != "" {
			path = append(path, "?Qualifier="...)
			path = append(path, url.QueryEscape(target.Qualifier)...)
		}
		if c.async {
			req.Header.SetBytesKV(headerInvocationType, eventType)
		} else {
			req.Header.Set("X-Amz-Invocation-Type", "RequestResponse")
		}
		if len(c.body) > 0 {
			req.Header.SetContentTypeBytes(contentJSON)
		}
	default:
		if t.domain != "" {
			req.Header.SetHost(target.Name + "." + t.domain)
			path = append(path, '/')
		} else {
			req.Header.SetHost(t.c.host)
			path = append(path, '/')
			path = append(path, target.Name...)
		}
		if c.async {
			req.Header.SetBytesKV(headerPrefer, respondAsync)
		}
		if len(c.body) > 0 {
			req.Header.SetContentTypeBytes(contentJSON)
		}
	}
	req.SetRequestURIBytes(path)
	req.SetBody(c.body)
}

// answerKind is what the overflow platform did.
type answerKind uint8

const (
	answerResult   answerKind = iota // ran: body is its JSON result
	answerFailed                     // ran and failed: body is its error JSON, msg its message
	answerAccepted                   // runs in the background: id is its activation, if any
)

type answer struct {
	kind answerKind
	body []byte
	msg  string
	id   string
}

// readAnswer reads the overflow platform's answer in its own terms.
func (t *Translator) readAnswer(resp *fasthttp.Response) (answer, error) {
	v, retryAfter := Classify(t.to, resp)
	body := bytes.TrimSpace(resp.Body())
	status := resp.StatusCode()
	switch {
	case v == Accepted:
		var a struct {
			ID string `json:"activationId"`
		}
		_ = json.Unmarshal(body, &a) // Lambda and http answer 202 without one
		return answer{kind: answerAccepted, id: a.ID}, nil
	case v == FunctionError:
		if len(body) == 0 || !json.Valid(body) {
			body = appendJSONString(nil, string(body))
		}
		return answer{kind: answerFailed, body: body, msg: errorMessage(body)}, nil
	case v == Done && status >= 200 && status < 300:
		if len(body) > 0 && !json.Valid(body) {
			body = appendJSONString(nil, string(body))
		}
		return answer{kind: answerResult, body: body}, nil
	}
	return answer{}, &OverflowError{To: t.to, Status: status, Verdict: v, RetryAfter: retryAfter, Detail: detail(resp)}
}

// errorMessage finds a function error's message: Lambda's errorMessage,
// OpenWhisk's error, or the JSON itself.
func errorMessage(body []byte) string {
	var e struct {
		ErrorMessage *string         `json:"errorMessage"`
		Error        json.RawMessage `json:"error"`
		Message      *string         `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		switch {
		case e.ErrorMessage != nil:
			return *e.ErrorMessage
		case len(e.Error) > 0:
			var s string
			if json.Unmarshal(e.Error, &s) == nil {
				return s
			}
			return string(e.Error)
		case e.Message != nil:
			return *e.Message
		}
	}
	var s string
	if json.Unmarshal(body, &s) == nil {
		return s
	}
	return string(body)
}

// detail is a refusal's message, shortened for an error answer.
func detail(resp *fasthttp.Response) string {
	msg := errorMessage(bytes.TrimSpace(resp.Body()))
	if typ := resp.Header.Peek("X-Amzn-ErrorType"); len(typ) > 0 {
		msg = string(typ) + ": " + msg
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}

// writeAnswer writes a in the primary's shape.
func (t *Translator) writeAnswer(inv *invocation.Invocation, c call, a answer, start, end time.Time) {
	resp := inv.Resp
	resp.Reset()
	resp.Header.Set(overflowHeader, t.to.String())
	resp.Header.AddBytesV("Via", via)
	switch t.from {
	case invocation.Lambda:
		writeLambda(resp, c, a, t.to)
	case invocation.OpenWhisk:
		writeOpenWhisk(resp, inv, c, a, t.to, start, end)
	default:
		switch a.kind {
		case answerAccepted:
			resp.SetStatusCode(fasthttp.StatusAccepted)
		case answerFailed:
			resp.SetStatusCode(fasthttp.StatusInternalServerError)
			resp.Header.SetContentTypeBytes(contentJSON)
			resp.SetBody(a.body)
		default:
			resp.SetStatusCode(fasthttp.StatusOK)
			if len(a.body) > 0 {
				resp.Header.SetContentTypeBytes(contentJSON)
				resp.SetBody(a.body)
			}
		}
	}
}

// writeLambda answers as Lambda does: 200 with the payload, 200 with
// X-Amz-Function-Error for a function error, 202 for an Event.
func writeLambda(resp *fasthttp.Response, c call, a answer, to invocation.Platform) {
	resp.Header.SetContentTypeBytes(contentJSON)
	switch {
	case a.kind == answerAccepted && c.async:
		resp.SetStatusCode(fasthttp.StatusAccepted)
		return
	case a.kind == answerAccepted:
		// The overflow platform's blocking wait ran out: to Lambda's
		// clients a function that did not finish in time is a function
		// error (so the SDK does not run it again).
		a.msg = "sequoia: the overflow platform (" + to.String() + ") accepted the invocation but did not finish it within its blocking wait"
		if a.id != "" {
			a.msg += "; activation " + a.id
		}
		fallthrough
	case a.kind == answerFailed:
		resp.SetStatusCode(fasthttp.StatusOK)
		resp.Header.Set("X-Amz-Function-Error", "Unhandled")
		b := append([]byte(`{"errorMessage":`), appendJSONString(nil, a.msg)...)
		resp.SetBody(append(b, `,"errorType":"Error"}`...))
	default:
		resp.SetStatusCode(fasthttp.StatusOK)
		resp.Header.SetBytesV(headerExecVersion, latest)
		if len(a.body) == 0 {
			resp.SetBodyString("null")
		} else {
			resp.SetBody(a.body)
		}
	}
}

// writeOpenWhisk answers as OpenWhisk does: the result alone
// (result=true) or an activation record, 502 for an action error, 202 with
// an activation id for background work.
func writeOpenWhisk(resp *fasthttp.Response, inv *invocation.Invocation, c call, a answer, to invocation.Platform, start, end time.Time) {
	resp.Header.SetContentTypeBytes(contentJSON)
	id := a.id
	if id == "" {
		id = newActivationID()
	}
	if a.kind == answerAccepted || c.async {
		// Non-blocking, or a blocking wait the overflow platform
		// ended: OpenWhisk's own answer is 202 with the activation. It
		// lives at the overflow platform: the primary cannot be polled
		// for it.
		resp.SetStatusCode(fasthttp.StatusAccepted)
		resp.SetBody(append(append([]byte(`{"activationId":`), appendJSONString(nil, id)...), '}'))
		return
	}
	result := a.body
	status := fasthttp.StatusOK
	if a.kind == answerFailed {
		status = fasthttp.StatusBadGateway
		result = append(append([]byte(`{"error":`), appendJSONString(nil, a.msg)...), '}')
	} else if len(result) == 0 || result[0] != '{' {
		// An OpenWhisk result is an object.
		if len(result) == 0 {
			result = []byte("null")
		}
		result = append(append([]byte(`{"payload":`), result...), '}')
	}
	resp.SetStatusCode(status)
	if c.resultOnly {
		resp.SetBody(result)
		return
	}
	resp.Header.Set(headerActivation, id)
	resp.SetBody(activationRecord(inv.Function, id, result, a.kind == answerFailed, to, start, end))
}

// activationRecord builds OpenWhisk's activation record for function
// ("ns/[pkg/]action").
func activationRecord(function, id string, result []byte, failed bool, to invocation.Platform, start, end time.Time) []byte {
	ns, action := function, function
	if i := strings.LastIndexByte(function, '/'); i >= 0 {
		ns, action = function[:i], function[i+1:]
	}
	subject := ns
	if i := strings.IndexByte(ns, '/'); i >= 0 {
		subject = ns[:i]
	}
	type response struct {
		Status     string          `json:"status"`
		StatusCode int             `json:"statusCode"`
		Success    bool            `json:"success"`
		Result     json.RawMessage `json:"result"`
	}
	type annotation struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	rec := struct {
		ActivationID string       `json:"activationId"`
		Namespace    string       `json:"namespace"`
		Name         string       `json:"name"`
		Version      string       `json:"version"`
		Subject      string       `json:"subject"`
		Start        int64        `json:"start"`
		End          int64        `json:"end"`
		Duration     int64        `json:"duration"`
		Response     response     `json:"response"`
		Logs         []string     `json:"logs"`
		Annotations  []annotation `json:"annotations"`
		Publish      bool         `json:"publish"`
	}{
		ActivationID: id, Namespace: ns, Name: action, Version: "0.0.1", Subject: subject,
		Start: start.UnixMilli(), End: end.UnixMilli(), Duration: end.Sub(start).Milliseconds(),
		Response:    response{Status: "success", Success: true, Result: result},
		Logs:        []string{},
		Annotations: []annotation{{Key: "sequoia_overflow", Value: to.String()}},
	}
	if failed {
		rec.Response.Status, rec.Response.StatusCode, rec.Response.Success = "application error", 1, false
	}
	b, err := json.Marshal(rec)
	if err != nil { // result was checked to be JSON; keep the answer valid anyway
		rec.Response.Result = json.RawMessage("{}")
		b, _ = json.Marshal(rec)
	}
	return b
}

// newActivationID returns 32 random lowercase hex digits, the form of
// OpenWhisk's activation ids.
func newActivationID() string {
	return fmt.Sprintf("%016x%016x", rand.Uint64(), rand.Uint64())
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}
