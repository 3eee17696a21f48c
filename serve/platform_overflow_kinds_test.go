package serve

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

const overflowOWKey = "7f1d6bc4-0b9e-4c1e-9f49-0c6d3e9a1b2c:sequoiaOverflowKey"

// fullPrimary starts a primary platform of API primary behind sequoia with
// one slot and no queue, and an overflow platform of API overflow running
// at most overflowLimit at once: the next invocation while one runs
// overflows. env adds variables. It returns both emulators, the
// overflow's address and sequoia's data address.
func fullPrimary(t *testing.T, primary, overflow string, overflowLimit int, env ...string) (prim, second *emulator.Emulator, secondAddr, addr string) {
	t.Helper()
	prim, primAddr := startEmulator(t, emulator.Config{Limit: 5})
	second, secondAddr = startEmulator(t, emulator.Config{Limit: overflowLimit})
	s := startServer(t, append([]string{"SEQUOIA_BACKEND=" + primary, "SEQUOIA_BACKEND_URL=http://" + primAddr,
		"SEQUOIA_MAX_CONCURRENCY=1", "SEQUOIA_QUEUE_CAPACITY=0",
		"SEQUOIA_OVERFLOW_URL=http://" + secondAddr, "SEQUOIA_OVERFLOW_BACKEND=" + overflow}, env...)...)
	return prim, second, secondAddr, s.dataLn.Addr().String()
}

// primaryNeverRan fails t if the primary platform ran any of fns.
func primaryNeverRan(t *testing.T, primary *emulator.Emulator, fns ...string) {
	t.Helper()
	for _, fn := range fns {
		if n := primary.Stats().Functions[fn].Invocations; n != 0 {
			t.Errorf("primary ran %s %d times, want 0", fn, n)
		}
	}
}

// untilShutdown is a payload that runs until its emulator shuts down.
const untilShutdown = `{"exec_ms":600000}`

// holdPrimary takes the primary's only slot with a Lambda or OpenWhisk
// call (raw, with the untilShutdown payload) that runs until the test ends,
// so that the next invocation finds the queue full and overflows whatever
// the machine's speed; it returns when the primary runs it.
func holdPrimary(t *testing.T, primary *emulator.Emulator, addr, raw string) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		send(t, addr, raw)
	}()
	t.Cleanup(func() { _ = primary.Shutdown(); <-done })
	waitFor(func() bool { return primary.Stats().InFlight == 1 })
}

func lambdaRaw(function, body string) string {
	return "POST /2015-03-31/functions/" + function + "/invocations HTTP/1.1\r\nHost: x\r\n" +
		"Content-Length: " + itoa(len(body)) + "\r\n\r\n" + body
}

// TestOverflowLambdaToOpenWhisk: a Lambda primary whose queue is full
// overflows to an OpenWhisk platform; the unchanged aws-sdk-go-v2 client
// reads each answer as Lambda's own.
func TestOverflowLambdaToOpenWhisk(t *testing.T) {
	primary, second, _, addr := fullPrimary(t, "lambda", "openwhisk", 5, "SEQUOIA_OVERFLOW_OPENWHISK_AUTH="+overflowOWKey,
		"SEQUOIA_OVERFLOW_FUNCTIONS=mapped=/guest/tools/mapped-action, pinned:7=pinned-v7")
	holdPrimary(t, primary, addr, lambdaRaw("slow", untilShutdown))
	c := lambdaClient(addr, 1)
	ctx := context.Background()

	out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("quick"), Payload: []byte(`{"n":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(out.Payload, &res); err != nil || res["function"] != "_/quick" || out.FunctionError != nil {
		t.Errorf("RequestResponse: %d %s %v, want OpenWhisk _/quick's result", out.StatusCode, out.Payload, err)
	}
	if in, _ := res["input"].(map[string]any); in["n"] != 1.0 {
		t.Errorf("the action got %v, want the payload {n:1} as its parameters", res["input"])
	}
	if aws.ToString(out.ExecutedVersion) != "$LATEST" {
		t.Errorf("ExecutedVersion %q", aws.ToString(out.ExecutedVersion))
	}

	// Explicit mappings, with and without a qualifier.
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("mapped"), Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("pinned"), Qualifier: aws.String("7")}); err != nil {
		t.Fatal(err)
	}
	st := second.Stats()
	for _, fn := range []string{"_/quick", "guest/tools/mapped-action", "_/pinned-v7"} {
		if st.Functions[fn].Completed != 1 {
			t.Errorf("overflow OpenWhisk ran %s %d times, want 1", fn, st.Functions[fn].Completed)
		}
	}

	// OpenWhisk's 502 action error is Lambda's function error.
	out, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("broken"), Payload: []byte(`{"fail":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.FunctionError) != "Unhandled" || !strings.Contains(string(out.Payload), `"errorMessage":"function _/broken failed`) {
		t.Errorf("function error: %q %s", aws.ToString(out.FunctionError), out.Payload)
	}

	// A payload OpenWhisk cannot take as parameters: the primary's
	// refusal stands, in Lambda's shape, saying why.
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("quick"), Payload: []byte(`[1,2]`)})
	var tooMany *types.TooManyRequestsException
	if !errors.As(err, &tooMany) || !strings.Contains(tooMany.ErrorMessage(), "OpenWhisk parameters must be a JSON object") {
		t.Errorf("array payload: %v, want TooManyRequestsException saying why it could not overflow", err)
	}
	if n := second.Stats().Functions["_/quick"].Invocations; n != 1 {
		t.Errorf("untranslatable call reached the overflow: quick ran %d times there", n)
	}
	primaryNeverRan(t, primary, "quick", "broken", "mapped", "pinned")
}

// TestOverflowOpenWhiskToLambda: an OpenWhisk primary whose queue is full
// overflows to a Lambda platform (requests re-signed with sequoia's
// credentials); the official OpenWhisk client, and raw OpenWhisk requests,
// read each answer as OpenWhisk's own.
func TestOverflowOpenWhiskToLambda(t *testing.T) {
	primary, second, _, addr := fullPrimary(t, "openwhisk", "lambda", 5, "SEQUOIA_OVERFLOW_FUNCTIONS=guest/odd.name=odd-name")
	holdPrimary(t, primary, addr, owRaw("slow", untilShutdown))

	resp := send(t, addr, owRaw("hello", `{"n":1}`))
	var res map[string]any
	if err := json.Unmarshal(resp.Body(), &res); err != nil || resp.StatusCode() != 200 || res["function"] != "hello" {
		t.Errorf("blocking result: %d %s, want Lambda hello's result", resp.StatusCode(), resp.Body())
	}
	if string(resp.Header.Peek("X-Sequoia-Overflow")) != "lambda" {
		t.Errorf("X-Sequoia-Overflow %q", resp.Header.Peek("X-Sequoia-Overflow"))
	}

	// An activation record, as blocking without result=true returns.
	resp = send(t, addr, strings.Replace(owRaw("tools/hello", `{}`), "&result=true", "", 1))
	var act struct {
		ActivationID string `json:"activationId"`
		Namespace    string `json:"namespace"`
		Name         string `json:"name"`
		Response     struct {
			Success bool           `json:"success"`
			Result  map[string]any `json:"result"`
		} `json:"response"`
	}
	if err := json.Unmarshal(resp.Body(), &act); err != nil || resp.StatusCode() != 200 || len(act.ActivationID) != 32 ||
		act.Namespace != "guest/tools" || act.Name != "hello" || !act.Response.Success || act.Response.Result["function"] != "tools-hello" {
		t.Errorf("activation: %d %s", resp.StatusCode(), resp.Body())
	}
	if string(resp.Header.Peek("X-Openwhisk-Activation-Id")) != act.ActivationID {
		t.Errorf("X-Openwhisk-Activation-Id %q, body's %q", resp.Header.Peek("X-Openwhisk-Activation-Id"), act.ActivationID)
	}

	// Lambda's function error is OpenWhisk's 502 action error.
	resp = send(t, addr, owRaw("broken", `{"fail":true}`))
	if resp.StatusCode() != 502 || !strings.Contains(string(resp.Body()), `{"error":"function broken failed`) {
		t.Errorf("action error: %d %s", resp.StatusCode(), resp.Body())
	}

	// Non-blocking becomes a Lambda Event: 202 with an activation id.
	resp = send(t, addr, strings.Replace(owRaw("later", `{}`), "?blocking=true&result=true", "", 1))
	if resp.StatusCode() != 202 || !strings.Contains(string(resp.Body()), `"activationId":"`) {
		t.Errorf("non-blocking: %d %s", resp.StatusCode(), resp.Body())
	}
	waitFor(func() bool { return second.Stats().Functions["later"].Completed == 1 })

	// A name Lambda cannot carry: mapped explicitly, or refused saying so.
	resp = send(t, addr, owRaw("odd.name", `{}`))
	if resp.StatusCode() != 200 || second.Stats().Functions["odd-name"].Completed != 1 {
		t.Errorf("mapped odd.name: %d %s", resp.StatusCode(), resp.Body())
	}
	resp = send(t, addr, owRaw("other.name", `{}`))
	if resp.StatusCode() != 429 || len(resp.Header.Peek("Retry-After")) == 0 ||
		!strings.Contains(string(resp.Body()), `"code":"queue_full"`) || !strings.Contains(string(resp.Body()), "SEQUOIA_OVERFLOW_FUNCTIONS") {
		t.Errorf("unmappable: %d %s", resp.StatusCode(), resp.Body())
	}

	// The official client, only its apihost changed.
	if err := owClientAvailable(); err == nil {
		got := owClient(t, addr, "viaclient", "blocking")
		if r, _ := got["result"].(map[string]any); r["function"] != "viaclient" {
			t.Errorf("OpenWhisk client, blocking: %v", got)
		}
		got = owClient(t, addr, "other.name", "error")
		if e, _ := got["error"].(map[string]any); e == nil || e["statusCode"] != 429.0 ||
			!strings.Contains(e["message"].(string), "cannot overflow to the lambda platform") {
			t.Errorf("OpenWhisk client, unmappable: %v", got)
		}
	} else {
		t.Log(err)
	}
	primaryNeverRan(t, primary, "guest/hello", "guest/tools/hello", "guest/broken", "guest/later", "guest/odd.name", "guest/viaclient")
}

// TestOverflowOpenWhiskToHTTP: an OpenWhisk primary overflowing to plain
// http functions by path.
func TestOverflowOpenWhiskToHTTP(t *testing.T) {
	primary, second, _, addr := fullPrimary(t, "openwhisk", "http", 5)
	holdPrimary(t, primary, addr, owRaw("slow", untilShutdown))
	resp := send(t, addr, owRaw("img/resize", `{"w":3}`))
	if resp.StatusCode() != 200 || !strings.Contains(string(resp.Body()), `"function":"img-resize"`) ||
		!strings.Contains(string(resp.Body()), `"input":{"w":3}`) {
		t.Errorf("%d %s", resp.StatusCode(), resp.Body())
	}
	resp = send(t, addr, owRaw("broken", `{"fail":true}`))
	if resp.StatusCode() != 502 || !strings.Contains(string(resp.Body()), `"error":"function broken failed`) {
		t.Errorf("action error: %d %s", resp.StatusCode(), resp.Body())
	}
	if second.Stats().Functions["img-resize"].Completed != 1 {
		t.Errorf("overflow ran img-resize %d times", second.Stats().Functions["img-resize"].Completed)
	}
}

// TestOverflowLambdaPrimaryUnreachableToHTTP: a Lambda primary that
// refuses connections sends the work to a Knative-style platform reached
// by Host.
func TestOverflowLambdaPrimaryUnreachableToHTTP(t *testing.T) {
	second, secondAddr := startEmulator(t, emulator.Config{Limit: 5})
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+freeAddr(t),
		"SEQUOIA_OVERFLOW_URL=http://"+secondAddr, "SEQUOIA_OVERFLOW_BACKEND=http",
		"SEQUOIA_OVERFLOW_HTTP_DOMAIN=default.example.com")
	out, err := lambdaClient(s.dataLn.Addr().String(), 1).Invoke(context.Background(),
		&lambda.InvokeInput{FunctionName: aws.String("resize"), Payload: []byte(`{"w":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	// The emulator names an http function by the Host's first label for "/".
	if !strings.Contains(string(out.Payload), `"function":"resize"`) || second.Stats().Functions["resize"].Completed != 1 {
		t.Errorf("%d %s", out.StatusCode, out.Payload)
	}
}

// TestOverflowThrottledToo: when the overflow platform throttles as well,
// the Lambda client gets the primary's refusal, TooManyRequestsException
// with a Retry-After, saying so; nothing ran.
func TestOverflowThrottledToo(t *testing.T) {
	primary, second, secondAddr, addr := fullPrimary(t, "lambda", "openwhisk", 1, "SEQUOIA_OVERFLOW_OPENWHISK_AUTH="+overflowOWKey)
	holdPrimary(t, primary, addr, lambdaRaw("slow", untilShutdown))
	holdPrimary(t, second, secondAddr, owRaw("other", untilShutdown)) // another caller of the overflow platform
	_, err := lambdaClient(addr, 1).Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("quick"), Payload: []byte(`{}`)})
	var tooMany *types.TooManyRequestsException
	if !errors.As(err, &tooMany) || !strings.Contains(tooMany.ErrorMessage(), "throttling too") || aws.ToString(tooMany.RetryAfterSeconds) == "" {
		t.Errorf("%v, want TooManyRequestsException with Retry-After saying the overflow throttles too", err)
	}
	if n := second.Stats().Functions["_/quick"].Completed + primary.Stats().Functions["quick"].Completed; n != 0 {
		t.Errorf("quick ran %d times", n)
	}
}

// TestOverflowHTTPToLambda: plain http functions (by path) whose platform
// is unreachable overflow to Lambda, synchronously and, with Prefer:
// respond-async, as Events.
func TestOverflowHTTPToLambda(t *testing.T) {
	second, secondAddr := startEmulator(t, emulator.Config{Limit: 5})
	s := startServer(t, "SEQUOIA_BACKEND=http", "SEQUOIA_HTTP_ROUTE=path", "SEQUOIA_BACKEND_URL=http://"+freeAddr(t),
		"SEQUOIA_OVERFLOW_URL=http://"+secondAddr, "SEQUOIA_OVERFLOW_BACKEND=lambda", "SEQUOIA_IDEMPOTENT=true",
		"SEQUOIA_RETRY_MAX_ATTEMPTS=1")
	addr := s.dataLn.Addr().String()
	post := func(path, extra, body string) *fasthttp.Response {
		return send(t, addr, "POST "+path+" HTTP/1.1\r\nHost: x\r\n"+extra+"Content-Type: application/json\r\nContent-Length: "+
			itoa(len(body))+"\r\n\r\n"+body)
	}
	resp := post("/resize", "", `{"w":1}`)
	if resp.StatusCode() != 200 || !strings.Contains(string(resp.Body()), `"function":"resize"`) {
		t.Errorf("sync: %d %s", resp.StatusCode(), resp.Body())
	}
	resp = post("/resize", "Prefer: respond-async\r\n", `{"w":2}`)
	if resp.StatusCode() != 202 {
		t.Errorf("async: %d %s", resp.StatusCode(), resp.Body())
	}
	waitFor(func() bool { return second.Stats().Functions["resize"].Completed == 2 })
	resp = post("/resize/thumbnails", "", `{}`)
	if resp.StatusCode() != 502 || !strings.Contains(string(resp.Body()), "cannot overflow to the lambda platform") {
		t.Errorf("a path Lambda cannot carry: %d %s", resp.StatusCode(), resp.Body())
	}
	if n := second.Stats().Functions["resize"].Invocations; n != 2 {
		t.Errorf("resize ran %d times at the overflow, want 2", n)
	}
}

// TestOverflowLambdaEvents: Lambda Events sequoia accepted while its
// primary is unreachable are delivered to the overflow platform (OpenWhisk)
// rather than retried at the primary until they expire.
func TestOverflowLambdaEvents(t *testing.T) {
	second, secondAddr := startEmulator(t, emulator.Config{Limit: 5})
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+freeAddr(t),
		"SEQUOIA_OVERFLOW_URL=http://"+secondAddr, "SEQUOIA_OVERFLOW_BACKEND=openwhisk",
		"SEQUOIA_OVERFLOW_OPENWHISK_AUTH="+overflowOWKey, "SEQUOIA_EVENT_MAX_RETRIES=0")
	c := lambdaClient(s.dataLn.Addr().String(), 1)
	for _, fn := range []string{"bg", "bgfail"} {
		payload := `{"k":1}`
		if fn == "bgfail" {
			payload = `{"fail":true}`
		}
		out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String(fn),
			Payload: []byte(payload), InvocationType: types.InvocationTypeEvent})
		if err != nil || out.StatusCode != 202 {
			t.Fatalf("Event %s: %v %v", fn, out, err)
		}
	}
	waitEventsDone(t, s)
	st := second.Stats()
	if st.Functions["_/bg"].Completed != 1 || st.Functions["_/bgfail"].Invocations != 1 {
		t.Errorf("overflow ran bg %d times and bgfail %d times, want 1 and 1", st.Functions["_/bg"].Completed, st.Functions["_/bgfail"].Invocations)
	}
	_, text := httpGet(t, "http://"+s.adminLn.Addr().String()+"/metrics")
	for _, m := range []string{`sequoia_events_total{outcome="delivered"} 1`, `sequoia_events_dead_lettered_total{reason="RetriesExhausted"} 1`,
		`sequoia_overflow_total{reason="unreachable"} 2`, `sequoia_events_dead_lettered_total{reason="EventAgeExceeded"} 0`} {
		if !strings.Contains(text, m) {
			t.Errorf("/metrics has no %s", m)
		}
	}
}

// TestOverflowKindsConfig: every bad overflow variable stops start-up
// naming itself, and the OpenWhisk key is never printed.
func TestOverflowKindsConfig(t *testing.T) {
	base := []string{"SEQUOIA_BACKEND=lambda", "SEQUOIA_OVERFLOW_URL=http://127.0.0.1:1"}
	for _, tt := range []struct {
		env  []string
		want string
	}{
		{[]string{"SEQUOIA_OVERFLOW_BACKEND=azure"}, "SEQUOIA_OVERFLOW_BACKEND"},
		{[]string{"SEQUOIA_OVERFLOW_BACKEND=openwhisk"}, "SEQUOIA_OVERFLOW_OPENWHISK_AUTH=: required"},
		{[]string{"SEQUOIA_OVERFLOW_BACKEND=openwhisk", "SEQUOIA_OVERFLOW_OPENWHISK_AUTH=nocolon-secret"}, "SEQUOIA_OVERFLOW_OPENWHISK_AUTH=(hidden)"},
		{[]string{"SEQUOIA_OVERFLOW_BACKEND=http", "SEQUOIA_OVERFLOW_OPENWHISK_AUTH=a:secret"}, "SEQUOIA_OVERFLOW_OPENWHISK_AUTH=(hidden)"},
		{[]string{"SEQUOIA_OVERFLOW_BACKEND=http", "SEQUOIA_OVERFLOW_FUNCTIONS=f=a/b"}, "SEQUOIA_OVERFLOW_FUNCTIONS"},
		{[]string{"SEQUOIA_OVERFLOW_BACKEND=http", "SEQUOIA_OVERFLOW_FUNCTIONS=f=g,f=h"}, "mapped twice"},
		{[]string{"SEQUOIA_OVERFLOW_FUNCTIONS=f=g"}, "SEQUOIA_OVERFLOW_FUNCTIONS"}, // same API: nothing to map
		{[]string{"SEQUOIA_OVERFLOW_BACKEND=http", "SEQUOIA_OVERFLOW_HTTP_DOMAIN=Example..com"}, "SEQUOIA_OVERFLOW_HTTP_DOMAIN"},
		{[]string{"SEQUOIA_OVERFLOW_BACKEND=openwhisk", "SEQUOIA_OVERFLOW_OPENWHISK_AUTH=a:b", "SEQUOIA_OVERFLOW_HTTP_DOMAIN=x.com"}, "SEQUOIA_OVERFLOW_HTTP_DOMAIN"},
	} {
		_, err := config.LoadFrom(append(append([]string{}, base...), tt.env...))
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret") {
			t.Errorf("%v: %v, want an error with %q and no secret", tt.env, err, tt.want)
		}
	}
	_, err := config.LoadFrom([]string{"SEQUOIA_OVERFLOW_FUNCTIONS=f=g"})
	if err == nil || !strings.Contains(err.Error(), "SEQUOIA_OVERFLOW_URL is not") {
		t.Errorf("mapping without an overflow: %v", err)
	}
	if _, err := config.LoadFrom(append(base, "SEQUOIA_OVERFLOW_BACKEND=openwhisk",
		"SEQUOIA_OVERFLOW_OPENWHISK_AUTH="+overflowOWKey, "SEQUOIA_OVERFLOW_FUNCTIONS=f=/ns/pkg/a,g:prod=b")); err != nil {
		t.Errorf("good configuration refused: %v", err)
	}
}

// owClientAvailable says whether the OpenWhisk JavaScript client can run,
// without skipping the test that asks.
func owClientAvailable() error {
	if _, err := exec.LookPath("node"); err != nil {
		return errors.New("node is not installed: the OpenWhisk client part is not run")
	}
	if _, err := os.Stat(filepath.Join(owClientDir, "node_modules", "openwhisk")); err != nil {
		return errors.New("the OpenWhisk JavaScript client is not installed: run `npm ci --prefix loadtest/owclient`")
	}
	return nil
}
