package serve

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/sequoia-qos/sequoia/config"
	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

// TestMain gives the package's tests the AWS environment a Lambda backend
// needs: sequoia re-signs every Lambda request with credentials from the
// standard chain and refuses to start without them. Host files and the
// instance metadata service are kept out of it.
func TestMain(m *testing.M) {
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":           "SEQUOIATESTKEY",
		"AWS_SECRET_ACCESS_KEY":       "sequoia-test-secret",
		"AWS_REGION":                  "eu-west-1",
		"AWS_EC2_METADATA_DISABLED":   "true",
		"AWS_CONFIG_FILE":             os.DevNull,
		"AWS_SHARED_CREDENTIALS_FILE": os.DevNull,
	} {
		os.Setenv(k, v)
	}
	os.Unsetenv("AWS_PROFILE")
	os.Unsetenv("AWS_SESSION_TOKEN")
	os.Unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE")
	os.Exit(m.Run())
}

// lambdaClient is the real SDK client with only its endpoint changed.
// maxAttempts 0 keeps the SDK's own retry policy (3 attempts).
func lambdaClient(addr string, maxAttempts int) *lambda.Client {
	return lambda.New(lambda.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String("http://" + addr),
		Credentials:      credentials.NewStaticCredentialsProvider("CLIENTKEY", "client-secret", ""),
		RetryMaxAttempts: maxAttempts,
	})
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestLambdaSDKInvocationTypes: the unchanged SDK invokes through sequoia
// with all three invocation types.
func TestLambdaSDKInvocationTypes(t *testing.T) {
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 5, ExecTime: 5 * time.Millisecond})
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_MAX_CONCURRENCY=5")
	c := lambdaClient(s.dataLn.Addr().String(), 1)
	ctx := context.Background()

	out, err := c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("hello"), Payload: []byte(`{"n":1}`),
		Qualifier: aws.String("7")})
	if err != nil {
		t.Fatal(err)
	}
	if out.StatusCode != 200 || !strings.Contains(string(out.Payload), `"function":"hello"`) ||
		aws.ToString(out.ExecutedVersion) != "7" {
		t.Errorf("RequestResponse: %d %s version %q", out.StatusCode, out.Payload, aws.ToString(out.ExecutedVersion))
	}

	out, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("background"), Payload: []byte(`{}`),
		InvocationType: types.InvocationTypeEvent})
	if err != nil {
		t.Fatal(err)
	}
	if out.StatusCode != 202 {
		t.Errorf("Event: status %d, want 202", out.StatusCode)
	}
	// sequoia delivers it: the platform runs it once.
	waitFor(func() bool { return emu.Stats().Functions["background"].Completed == 1 })

	out, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("hello"), InvocationType: types.InvocationTypeDryRun})
	if err != nil {
		t.Fatal(err)
	}
	if out.StatusCode != 204 {
		t.Errorf("DryRun: status %d, want 204", out.StatusCode)
	}

	// A function error comes back as the SDK's FunctionError, run once.
	out, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("broken"), Payload: []byte(`{"fail":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.FunctionError) != "Unhandled" {
		t.Errorf("FunctionError %q, want Unhandled", aws.ToString(out.FunctionError))
	}
	if n := emu.Stats().Functions["broken"].Invocations; n != 1 {
		t.Errorf("function error invoked %d times, want 1 (never retried)", n)
	}

	// An unknown invocation type is Lambda's InvalidParameterValueException.
	_, err = c.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String("hello"), InvocationType: "Sometimes"})
	var ipv *types.InvalidParameterValueException
	if !errors.As(err, &ipv) {
		t.Errorf("unknown invocation type: %v, want InvalidParameterValueException", err)
	}
	if n := emu.Stats().Functions["hello"].Invocations; n != 1 {
		t.Errorf("hello invoked %d times, want 1", n)
	}
}

// TestLambdaSDKBurstNoErrors: a burst of concurrent SDK calls four times
// the platform's limit, through a sequoia whose ceiling is above that
// limit: no call fails and the SDK never retries. sequoia absorbs the
// platform's throttles (retrying them through its queue) and lowers its
// limit.
func TestLambdaSDKBurstNoErrors(t *testing.T) {
	const limit, burst = 8, 120
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: limit, ExecTime: 15 * time.Millisecond})
	// The limit does not probe back up during the test (it would after a
	// quiet second, which a slow machine's burst can outlast): once
	// lowered, it stays lowered.
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_MAX_CONCURRENCY=12",
		"SEQUOIA_ADAPTIVE_QUIET=1h")
	c := lambdaClient(s.dataLn.Addr().String(), 0) // the SDK's default retryer: any retry would show

	var failed, retried atomic.Int64
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			out, err := c.Invoke(context.Background(), &lambda.InvokeInput{
				FunctionName: aws.String("burst"), Payload: []byte(`{"i":` + itoa(i) + `}`)})
			if err != nil {
				failed.Add(1)
				t.Errorf("call %d: %v", i, err)
				return
			}
			if r, ok := retry.GetAttemptResults(out.ResultMetadata); !ok || len(r.Results) != 1 {
				retried.Add(1)
			}
			if out.StatusCode != 200 || out.FunctionError != nil {
				t.Errorf("call %d: %d %s", i, out.StatusCode, out.Payload)
			}
		})
	}
	wg.Wait()
	st := emu.Stats()
	if failed.Load() != 0 || retried.Load() != 0 {
		t.Errorf("%d calls failed, %d retried by the SDK; want 0 and 0", failed.Load(), retried.Load())
	}
	if st.Functions["burst"].Completed != burst {
		t.Errorf("platform completed %d, want %d", st.Functions["burst"].Completed, burst)
	}
	if st.PeakConcurrency > limit {
		t.Errorf("peak %d over the platform's limit %d", st.PeakConcurrency, limit)
	}
	t.Logf("platform throttles absorbed: %d; adaptive limit now %d", st.Throttles, s.plat.limit.Limit())
	if st.Throttles > 0 && s.plat.limit.Limit() >= 12 {
		t.Errorf("the platform throttled %d times but the limit stayed at %d", st.Throttles, s.plat.limit.Limit())
	}

	// The effective limit is in /sequoia/v1/status and in /metrics.
	code, body := httpGet(t, "http://"+s.adminLn.Addr().String()+"/sequoia/v1/status")
	var status struct {
		Limit    int
		Adaptive struct {
			Ceiling        int   `json:"ceiling"`
			EffectiveLimit int   `json:"effective_limit"`
			Throttles      int64 `json:"throttles"`
		}
	}
	if err := json.Unmarshal([]byte(body), &status); code != 200 || err != nil {
		t.Fatalf("status: %d %v", code, err)
	}
	if a := status.Adaptive; a.Ceiling != 12 || a.EffectiveLimit != s.plat.limit.Effective() || a.EffectiveLimit != status.Limit ||
		a.Throttles != st.Throttles {
		t.Errorf("status %+v, want ceiling 12, effective %d = limit, throttles %d", status, s.plat.limit.Effective(), st.Throttles)
	}
	_, metricsText := httpGet(t, "http://"+s.adminLn.Addr().String()+"/metrics")
	for _, m := range []string{"sequoia_effective_concurrency_limit " + itoa(s.plat.limit.Effective()), "sequoia_retries_total{reason=\"throttled_concurrency\"}"} {
		if !strings.Contains(metricsText, m) {
			t.Errorf("/metrics has no %s", m)
		}
	}
}

// TestLambdaSDKDecodesSequoiaErrors: sequoia's own refusals reach the SDK
// as Lambda's own errors.
func TestLambdaSDKDecodesSequoiaErrors(t *testing.T) {
	// The gate holds the slow call, and with it the only slot, until the
	// refusal has been read.
	_, emuAddr, g := startGatedEmulator(t, emulator.Config{Limit: 5})
	defer g.openAll()
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_MAX_CONCURRENCY=1", "SEQUOIA_QUEUE_CAPACITY=0")
	c := lambdaClient(s.dataLn.Addr().String(), 1)
	done := make(chan error, 1)
	go func() {
		_, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("slow"), Payload: []byte(`{"label":"slow","hold":true}`)})
		done <- err
	}()
	eventually(t, "the slow call held at the platform", func() bool { return g.held() == 1 })
	_, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("other"), Payload: []byte(`{}`)})
	var tmr *types.TooManyRequestsException
	if !errors.As(err, &tmr) {
		t.Fatalf("queue full: %v, want TooManyRequestsException", err)
	}
	if tmr.Reason != types.ThrottleReasonConcurrentInvocationLimitExceeded || aws.ToString(tmr.RetryAfterSeconds) != "1" ||
		!strings.Contains(aws.ToString(tmr.Message), "queue is full") {
		t.Errorf("TooManyRequestsException reason %q retry-after %q message %q",
			tmr.Reason, aws.ToString(tmr.RetryAfterSeconds), aws.ToString(tmr.Message))
	}
	g.openAll()
	if err := <-done; err != nil {
		t.Errorf("slow call: %v", err)
	}
}

// TestLambdaResigned: the platform receives sequoia's signature, for its
// own host, never the client's.
func TestLambdaResigned(t *testing.T) {
	var mu sync.Mutex
	var auth, host string
	plat := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth, host = r.Header.Get("Authorization"), r.Host
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer plat.Close()
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL="+plat.URL, "SEQUOIA_LAMBDA_REGION=ap-south-1")
	c := lambdaClient(s.dataLn.Addr().String(), 1)
	if _, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("f"), Payload: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(auth, "Credential=SEQUOIATESTKEY/") || !strings.Contains(auth, "/ap-south-1/lambda/aws4_request") {
		t.Errorf("platform saw Authorization %q, want sequoia's key for ap-south-1", auth)
	}
	if host != strings.TrimPrefix(plat.URL, "http://") {
		t.Errorf("platform saw Host %q", host)
	}
}

// TestLambdaMissingCredentials: without credentials start-up fails and
// says what to set.
func TestLambdaMissingCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	cfg, err := config.LoadFrom([]string{"SEQUOIA_LISTEN=127.0.0.1:0", "SEQUOIA_ADMIN_LISTEN=127.0.0.1:0", "SEQUOIA_STATE_DIR=" + t.TempDir(),
		"SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, quietLogger())
	if err == nil {
		t.Fatal("started without AWS credentials")
	}
	for _, want := range []string{"SEQUOIA_BACKEND=lambda", "no AWS credentials", "AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// TestLambdaMissingRegion: without a region start-up fails and names the
// variable.
func TestLambdaMissingRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	cfg, err := config.LoadFrom([]string{"SEQUOIA_LISTEN=127.0.0.1:0", "SEQUOIA_ADMIN_LISTEN=127.0.0.1:0", "SEQUOIA_STATE_DIR=" + t.TempDir(),
		"SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(cfg, quietLogger()); err == nil || !strings.Contains(err.Error(), "SEQUOIA_LAMBDA_REGION") {
		t.Errorf("started without a region, or did not say which variable: %v", err)
	}
}
