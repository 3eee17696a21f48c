package serve

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/events"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// waitEventsDone waits (a minute at most) until every Event s accepted is
// delivered or dead-lettered.
func waitEventsDone(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		n, err := s.events.Undelivered(context.Background())
		if err == nil && n == 0 && s.events.Status().InDelivery == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events still undelivered: %d (%v)", n, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runServer is startServer with the stop in the test's hands: stop ends
// Run (as SIGTERM does) and returns its error.
func runServer(t *testing.T, env ...string) (*Server, func() error) {
	t.Helper()
	cfg, err := config.LoadFrom(append([]string{
		"SEQUOIA_LISTEN=127.0.0.1:0", "SEQUOIA_ADMIN_LISTEN=127.0.0.1:0", "SEQUOIA_STATE_DIR=" + t.TempDir(),
	}, env...))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, quietLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return s, stop
}

// flakyTransport loses the answer to the first request it carries (the
// request reaches sequoia): the SDK retries the call, with the same
// invocation id.
type flakyTransport struct {
	lost atomic.Bool
	rt   http.RoundTripper
}

func (f *flakyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := f.rt.RoundTrip(r)
	if err == nil && f.lost.CompareAndSwap(false, true) {
		resp.Body.Close()
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return resp, err
}

// TestEventSDKRetryNotEnqueuedTwice: the SDK retries an Event whose 202
// was lost on the way back, with the same invocation id: sequoia answers
// 202 again and the function runs once. An Idempotency-Key does the same
// for other clients.
func TestEventSDKRetryNotEnqueuedTwice(t *testing.T) {
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 5})
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr)
	ft := &flakyTransport{rt: http.DefaultTransport}
	c := lambda.New(lambda.Options{
		Region:       "eu-west-1",
		BaseEndpoint: aws.String("http://" + s.dataLn.Addr().String()),
		Credentials:  credentials.NewStaticCredentialsProvider("CLIENTKEY", "client-secret", ""),
		HTTPClient:   &http.Client{Transport: ft},
	})
	out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("once"),
		Payload: []byte(`{"k":1}`), InvocationType: types.InvocationTypeEvent})
	if err != nil || out.StatusCode != 202 {
		t.Fatalf("Event: %v %v", out, err)
	}
	if r, ok := retry.GetAttemptResults(out.ResultMetadata); !ok || len(r.Results) != 2 {
		t.Fatalf("the SDK did not retry: %+v", r)
	}
	addr := s.dataLn.Addr().String()
	for range 2 {
		resp := send(t, addr, "POST /2015-03-31/functions/keyed/invocations HTTP/1.1\r\nHost: x\r\nX-Amz-Invocation-Type: Event\r\n"+
			"Idempotency-Key: order-17\r\nContent-Length: 2\r\n\r\n{}")
		if resp.StatusCode() != 202 {
			t.Fatalf("keyed: %d %s", resp.StatusCode(), resp.Body())
		}
	}
	waitEventsDone(t, s)
	st := emu.Stats()
	if st.Functions["once"].Invocations != 1 || st.Functions["keyed"].Invocations != 1 {
		t.Errorf("ran once %d times and keyed %d times, want 1 and 1", st.Functions["once"].Invocations, st.Functions["keyed"].Invocations)
	}
	_, text := httpGet(t, "http://"+s.adminLn.Addr().String()+"/metrics")
	for _, m := range []string{`sequoia_events_total{outcome="accepted"} 2`, `sequoia_events_total{outcome="duplicate"} 2`,
		`sequoia_events_total{outcome="delivered"} 2`} {
		if !strings.Contains(text, m) {
			t.Errorf("/metrics has no %s", m)
		}
	}
}

// TestEventSDKFull: beyond SEQUOIA_MAX_EVENTS undelivered events (the
// platform is down), the SDK gets Lambda's TooManyRequestsException.
func TestEventSDKFull(t *testing.T) {
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+freeAddr(t), "SEQUOIA_MAX_EVENTS=2")
	c := lambdaClient(s.dataLn.Addr().String(), 1)
	for i := range 3 {
		out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("f"),
			Payload: []byte(`{"i":` + itoa(i) + `}`), InvocationType: types.InvocationTypeEvent})
		if i < 2 {
			if err != nil || out.StatusCode != 202 {
				t.Fatalf("event %d: %v %v", i, out, err)
			}
			continue
		}
		var tmr *types.TooManyRequestsException
		if !errors.As(err, &tmr) || aws.ToString(tmr.RetryAfterSeconds) != "1" {
			t.Errorf("third event: %v, want TooManyRequestsException with Retry-After", err)
		}
	}
}

// TestEventsSurviveShutdown: events accepted while the platform is down
// stay in the store through a shutdown (exit without error: nothing was in
// flight at the platform), and a new sequoia on the same state directory
// delivers each once.
func TestEventsSurviveShutdown(t *testing.T) {
	dir := t.TempDir()
	s, stop := runServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+freeAddr(t), "SEQUOIA_STATE_DIR="+dir,
		"SEQUOIA_SHUTDOWN_TIMEOUT=5s")
	c := lambdaClient(s.dataLn.Addr().String(), 1)
	const n = 20
	for i := range n {
		out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("later"),
			Payload: []byte(`{"i":` + itoa(i) + `}`), InvocationType: types.InvocationTypeEvent})
		if err != nil || out.StatusCode != 202 {
			t.Fatalf("event %d: %v %v", i, out, err)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("shutdown: %v, want none (nothing in flight)", err)
	}

	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 5})
	s2 := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_STATE_DIR="+dir)
	waitEventsDone(t, s2)
	if got := emu.Stats().Functions["later"].Invocations; got != n {
		t.Errorf("the platform ran %d events after the restart, want %d", got, n)
	}
}

// TestEventsDeadLetters: an Event whose function fails, with no retries,
// is listed at /sequoia/v1/events/dead with its payload and the function's
// error; bad queries are 400.
func TestEventsDeadLetters(t *testing.T) {
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 5})
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_EVENT_MAX_RETRIES=0")
	c := lambdaClient(s.dataLn.Addr().String(), 1)
	if _, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("broken"),
		Payload: []byte(`{"fail":true}`), InvocationType: types.InvocationTypeEvent}); err != nil {
		t.Fatal(err)
	}
	waitEventsDone(t, s)
	admin := "http://" + s.adminLn.Addr().String()
	code, body := httpGet(t, admin+"/sequoia/v1/events/dead?limit=5")
	var page struct {
		Dead []events.DeadLetter `json:"dead"`
	}
	if err := json.Unmarshal([]byte(body), &page); code != 200 || err != nil || len(page.Dead) != 1 {
		t.Fatalf("dead: %d %s (%v)", code, body, err)
	}
	d := page.Dead[0]
	if d.Function != "broken" || d.Reason != "RetriesExhausted" || d.FunctionError != "Unhandled" ||
		string(d.Payload) != `{"fail":true}` || d.Attempts != 1 || emu.Stats().Functions["broken"].Invocations != 1 {
		t.Errorf("dead letter %+v", d)
	}
	for _, q := range []string{"?limit=0", "?limit=101", "?limit=x", "?before=0", "?before=-1"} {
		if code, _ := httpGet(t, admin+"/sequoia/v1/events/dead"+q); code != 400 {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
}
