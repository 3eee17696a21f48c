package serve

import (
	"context"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

var reservedCapMetric = regexp.MustCompile(`sequoia_function_reserved_cap\{function="capped"\} (\d+)`)

// reservedPlatform starts the emulator, with function "capped" reserved
// n instances, sequoia in front of it as Lambda with 20 slots, and an SDK
// client. The adaptive quiet period is longer than any test: a learned
// cap does not probe up meanwhile, so what a later burst meets is what
// was learned.
func reservedPlatform(t *testing.T, n int) (*emulator.Emulator, *Server, *lambda.Client) {
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 50, ExecTime: 20 * time.Millisecond})
	emu.SetReserved("capped", n)
	s := startServer(t, "SEQUOIA_BACKEND=lambda", "SEQUOIA_BACKEND_URL=http://"+emuAddr,
		"SEQUOIA_MAX_CONCURRENCY=20", "SEQUOIA_ADAPTIVE_QUIET=1h")
	return emu, s, lambdaClient(s.dataLn.Addr().String(), 1)
}

// TestLambdaReservedConcurrencyLearned: a function with a reserved
// concurrency of 3, under bursts of SDK calls far above it, next to a
// function without one. sequoia learns the reservation from the
// platform's ReservedFunctionConcurrentInvocationLimitExceeded throttles
// as a per-function cap: no call fails, the second burst meets far fewer
// throttles than the first, and the other function is not held to the
// cap.
func TestLambdaReservedConcurrencyLearned(t *testing.T) {
	const reserved, burst = 3, 40
	emu, s, c := reservedPlatform(t, reserved)
	run := func(fn string) {
		var wg sync.WaitGroup
		for i := range burst {
			wg.Go(func() {
				out, err := c.Invoke(context.Background(), &lambda.InvokeInput{
					FunctionName: aws.String(fn), Payload: []byte(`{"i":` + itoa(i) + `}`)})
				if err != nil {
					t.Errorf("%s call %d: %v", fn, i, err)
				} else if out.StatusCode != 200 || out.FunctionError != nil {
					t.Errorf("%s call %d: %d %s", fn, i, out.StatusCode, out.Payload)
				}
			})
		}
		wg.Wait()
	}

	run("capped")
	first := emu.Stats().Functions["capped"].Throttles
	_, text := httpGet(t, "http://"+s.adminLn.Addr().String()+"/metrics")
	m := reservedCapMetric.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no learned cap for capped in /metrics after %d reserved throttles", first)
	}
	learned, _ := strconv.Atoi(m[1])
	if learned < 1 || learned > reserved {
		t.Errorf("learned cap %d, want 1..%d", learned, reserved)
	}

	var wg sync.WaitGroup
	wg.Go(func() { run("capped") })
	wg.Go(func() { run("free") })
	wg.Wait()
	st := emu.Stats()
	second := st.Functions["capped"].Throttles - first
	t.Logf("reserved throttles: first burst %d, second burst %d; learned cap %d", first, second, learned)
	if first == 0 || second > first/4 {
		t.Errorf("reserved throttles: %d in the first burst, %d in the second; want the second under a quarter of the first", first, second)
	}
	if st.Functions["capped"].Completed != 2*burst || st.Functions["free"].Completed != burst {
		t.Errorf("completed capped %d, free %d", st.Functions["capped"].Completed, st.Functions["free"].Completed)
	}
	if p := st.Functions["free"].PeakConcurrency; p <= reserved {
		t.Errorf("free ran at most %d at once: held to capped's cap", p)
	}
}

// TestLambdaReservedCapHoldsEvents: Event invocations are delivered under
// the cap learned from the platform's reserved-concurrency throttles, as
// calls are: once calls taught it, a burst of Events meets far fewer
// throttles than the calls did, and every Event is delivered.
func TestLambdaReservedCapHoldsEvents(t *testing.T) {
	const reserved, burst = 3, 40
	emu, _, c := reservedPlatform(t, reserved)
	invoke := func(typ types.InvocationType, want int32) {
		var wg sync.WaitGroup
		for i := range burst {
			wg.Go(func() {
				out, err := c.Invoke(context.Background(), &lambda.InvokeInput{FunctionName: aws.String("capped"),
					InvocationType: typ, Payload: []byte(`{"i":` + itoa(i) + `}`)})
				if err != nil || out.StatusCode != want {
					t.Errorf("%s %d: %v %v", typ, i, out, err)
				}
			})
		}
		wg.Wait()
	}
	invoke(types.InvocationTypeRequestResponse, 200)
	first := emu.Stats().Functions["capped"].Throttles
	invoke(types.InvocationTypeEvent, 202)
	for emu.Stats().Functions["capped"].Completed < 2*burst {
		time.Sleep(10 * time.Millisecond) // the Events' delivery; the test's timeout bounds it
	}
	events := emu.Stats().Functions["capped"].Throttles - first
	t.Logf("reserved throttles: %d for the calls, %d for the Events", first, events)
	if first == 0 || events > first/4 {
		t.Errorf("reserved throttles: %d for the calls, %d for the Events; want the Events under a quarter", first, events)
	}
}
