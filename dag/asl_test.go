package dag

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/tools/txtar"
)

// aslFunc is a test function: it answers its input, or fails with an
// error type (Lambda's errorType) and message.
type aslFunc func(in any) (out any, errType, msg string)

// aslFunctions are the functions the AWS examples call, doing what the
// examples say they do.
func aslFunctions() map[string]aslFunc {
	var mu sync.Mutex
	flaky := 0
	return map[string]aslFunc{
		// Returns "Hello, " + the input's who + "!" (the ResultPath and
		// OutputPath examples).
		"HelloFunction": func(in any) (any, string, string) {
			m, _ := in.(map[string]any)
			return fmt.Sprintf("Hello, %v!", m["who"]), "", ""
		},
		"AddressFinder": func(any) (any, string, string) { return map[string]any{"address": "1 Main St"}, "", "" },
		"PhoneFinder":   func(any) (any, string, string) { return map[string]any{"phone": "555-0100"}, "", "" },
		"Add": func(in any) (any, string, string) {
			a, _ := in.([]any)
			x, _ := number(a[0])
			y, _ := number(a[1])
			return x + y, "", ""
		},
		"Subtract": func(in any) (any, string, string) {
			a, _ := in.([]any)
			x, _ := number(a[0])
			y, _ := number(a[1])
			return x - y, "", ""
		},
		// Validates a shipment: answers the parcel it was given.
		"ship-val": func(in any) (any, string, string) { return in, "", "" },
		"Foo":      func(any) (any, string, string) { return "ran Foo", "", "" },
		"Zero":     func(any) (any, string, string) { return "ran Zero", "", "" },
		"Bar":      func(any) (any, string, string) { return "ran Bar", "", "" },
		// Throws a CustomError (the Catch example).
		"FailFunction": func(any) (any, string, string) { return nil, "CustomError", "This is a custom error!" },
		// Fails with ErrorA, then ErrorB, then succeeds (the Retry
		// example).
		"FlakyFunction": func(any) (any, string, string) {
			mu.Lock()
			defer mu.Unlock()
			flaky++
			switch flaky {
			case 1:
				return nil, "ErrorA", "first"
			case 2:
				return nil, "ErrorB", "second"
			}
			return "third time lucky", "", ""
		},
		// The EMR addStep answer of the ResultSelector example.
		"addStep": func(any) (any, string, string) {
			return map[string]any{"resourceType": "elasticmapreduce", "resource": "addStep.sync",
				"output": map[string]any{"SdkHttpMetadata": map[string]any{"httpHeaders": map[string]any{"Content-Length": "1112"}, "httpStatusCode": 200},
					"SdkResponseMetadata": map[string]any{"requestId": "1234-5678-9012"},
					"ClusterId":           "AKIAIOSFODNN7EXAMPLE",
					"Step":                map[string]any{"Id": "s-3A5IS4FTNLP2W", "Name": "Hive workflow"}}}, "", ""
		},
		// Sleeps past a TimeoutSeconds of 1.
		"Sleepy": func(any) (any, string, string) { time.Sleep(1200 * time.Millisecond); return "woke", "", "" },
	}
}

// aslHandler answers the test functions on an http platform (/{name}),
// and leaves the rest to the emulator.
func aslHandler(fns map[string]aslFunc) func(fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(h fasthttp.RequestHandler) fasthttp.RequestHandler {
		return func(ctx *fasthttp.RequestCtx) {
			fn, ok := fns[strings.TrimPrefix(string(ctx.Path()), "/")]
			if !ok {
				h(ctx)
				return
			}
			in, _ := decode(ctx.PostBody())
			out, errType, msg := fn(in)
			ctx.SetContentType("application/json")
			if errType != "" {
				ctx.SetStatusCode(500)
				b, _ := json.Marshal(map[string]string{"errorType": errType, "errorMessage": msg})
				ctx.SetBody(b)
				return
			}
			b, _ := json.Marshal(out)
			ctx.SetBody(b)
		}
	}
}

// TestAWSExamples runs each state machine of testdata/asl, written as the
// AWS Step Functions documentation shows it, on its documented input, and
// compares the output (or the error) with the documented one. A case may
// also name the Wait and retry intervals it must have waited, in
// milliseconds (waits-N.json): the waits are recorded, not slept.
func TestAWSExamples(t *testing.T) {
	files, err := filepath.Glob("testdata/asl/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			parts := map[string][]byte{}
			for _, f := range ar.Files {
				parts[f.Name] = f.Data
			}
			r := newRig(t, 8, aslHandler(aslFunctions()))
			var mu sync.Mutex
			var waits []int64
			r.svc.wait = func(sc scope, _ *Run, d time.Duration) bool {
				mu.Lock()
				waits = append(waits, d.Milliseconds())
				mu.Unlock()
				return sc.ctx.Err() == nil
			}
			r.svc.now = func() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }
			if err := r.svc.Put("example", parts["machine.json"]); err != nil {
				t.Fatalf("register: %v", err)
			}
			cases := 0
			for i := 0; ; i++ {
				suffix := ""
				if i > 0 {
					suffix = fmt.Sprintf("-%d", i)
				}
				input, ok := parts["input"+suffix+".json"]
				if !ok {
					if i == 0 {
						continue
					}
					break
				}
				cases++
				mu.Lock()
				waits = nil
				mu.Unlock()
				_, st, out, f := r.run(t, "example", string(input))
				if want, ok := parts["output"+suffix+".json"]; ok {
					if st != Succeeded {
						t.Fatalf("case %d: %s (%v), want the documented output", i, st, f)
					}
					if !sameJSON(t, out, want) {
						t.Errorf("case %d: output\n%s\nwant\n%s", i, out, want)
					}
				}
				if want, ok := parts["error"+suffix+".json"]; ok {
					var e struct{ Error, Cause string }
					if err := json.Unmarshal(want, &e); err != nil {
						t.Fatal(err)
					}
					if st != Failed || f == nil || f.ErrorName != e.Error || e.Cause != "" && f.Cause != e.Cause {
						t.Errorf("case %d: %s %+v, want failed with %s (%s)", i, st, f, e.Error, e.Cause)
					}
				}
				if want, ok := parts["waits"+suffix+".json"]; ok {
					var w []int64
					if err := json.Unmarshal(want, &w); err != nil {
						t.Fatal(err)
					}
					mu.Lock()
					got := slices.Clone(waits)
					mu.Unlock()
					if !slices.Equal(got, w) {
						t.Errorf("case %d: waited %v ms, want %v", i, got, w)
					}
				}
			}
			if cases == 0 {
				t.Fatal("no input.json")
			}
		})
	}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// TestASLRefused: what sequoia cannot run is refused at registration, with
// the state and the field named.
func TestASLRefused(t *testing.T) {
	task := func(extra string) string {
		return `{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:f",` + extra + `"End":true}}}`
	}
	for _, tt := range []struct{ src, want string }{
		{task(`"HeartbeatSeconds":60,`), `state "A": field HeartbeatSeconds: heartbeats`},
		{task(`"Credentials":{"RoleArn":"x"},`), `state "A": field Credentials:`},
		{task(`"Bogus":1,`), `state "A": field Bogus: not a field of a Task state`},
		{task(`"TimeoutSeconds":"ten",`), `state "A": field TimeoutSeconds:`},
		{task(`"Retry":[{"ErrorEquals":["States.ALL","X"]}],`), `field Retry[0].ErrorEquals: States.ALL must appear alone`},
		{task(`"Catch":[{"ErrorEquals":["X"]}],`), `field Catch[0]: a catcher needs ErrorEquals and Next`},
		{task(`"ResultPath":"$.a[*]",`), `field ResultPath: "$.a[*]" is not a reference path`},
		{task(`"InputPath":"a.b",`), `field InputPath: path "a.b" must start with $`},
		{task(`"Parameters":{"x.$":"States.Nope(1)"},`), `field Parameters: "x.$": intrinsic "States.Nope(1)": unknown function`},
		{task(`"Parameters":{"x.$":"States.ArrayLength(1, 2)"},`), `takes 1 arguments, not 2`},
		{`{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage","End":true}}}`, `state "A": field Resource: "arn:aws:states:::sqs:sendMessage": the sqs service integration is not supported`},
		{`{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:us-east-1:123456789012:activity:Add","End":true}}}`, `field Resource: "arn:aws:states:us-east-1:123456789012:activity:Add": activities are not supported`},
		{`{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken","Parameters":{"FunctionName":"f"},"End":true}}}`, `not callbacks`},
		{`{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"}}}`, `state "A": field Next: names "B", which is not a state of its scope`},
		{`{"StartAt":"A","States":{"A":{"Type":"Pass"}}}`, `state "A": field Next: a Pass state needs Next or "End": true`},
		{`{"StartAt":"A","States":{"A":{"Type":"Pass","End":true},"B":{"Type":"Pass","End":true}}}`, `state "B": no transition reaches it`},
		{`{"StartAt":"A","States":{"A":{"Type":"Wait","End":true}}}`, `state "A": field Seconds: a Wait needs exactly one`},
		{`{"StartAt":"A","States":{"A":{"Type":"Map","ItemProcessor":{"StartAt":"B","States":{"B":{"Type":"Pass","End":true}}},"ItemReader":{"Resource":"arn:aws:states:::s3:getObject"},"End":true}}}`, `state "A": field ItemReader: reading items from S3`},
		{`{"StartAt":"A","States":{"A":{"Type":"Parallel","Branches":[{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}],"End":true}}}`, `state "A": state names must be unique`},
		{`{"StartAt":"A","States":{"A":{"Type":"Choice","Choices":[{"Variable":"$.x","NumericEquals":"1","Next":"A"}]}}}`, `state "A": field Choices[0]: NumericEquals compares with a number, not a string`},
		{`{"StartAt":"A","States":{"A":{"Type":"Choice","Choices":[{"Condition":"{% true %}","Next":"A"}]}}}`, `Condition field is JSONata`},
		{`{"StartAt":"A","QueryLanguage":"JSONata","States":{"A":{"Type":"Pass","End":true}}}`, `field QueryLanguage: only JSONPath`},
		{`{"StartAt":"A","States":{"A":{"Type":"Dance","End":true}}}`, `state "A": field Type: unknown type "Dance"`},
	} {
		_, err := ParseASL([]byte(tt.src), DefaultLimits)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s\n  = %v\n  want an invalid-DAG error containing %q", tt.src, err, tt.want)
		}
	}
}

// TestASLParallelBranchFailureCaught: a failing branch stops its sibling
// (which never invokes its second task) and the Parallel's Catch takes the
// run on: one failure does not end the run.
func TestASLParallelBranchFailureCaught(t *testing.T) {
	r := newRig(t, 8, aslHandler(aslFunctions()))
	r.put(t, "p", `{"StartAt":"P","States":{
		"P":{"Type":"Parallel","Branches":[
			{"StartAt":"Bad","States":{"Bad":{"Type":"Task","Resource":"FailFunction","End":true}}},
			{"StartAt":"Slow","States":{"Slow":{"Type":"Task","Resource":"slow","Parameters":{"exec_ms":300},"Next":"Never"},
				"Never":{"Type":"Task","Resource":"never","End":true}}}],
			"Catch":[{"ErrorEquals":["CustomError"],"ResultPath":"$.error","Next":"Handled"}],"End":true},
		"Handled":{"Type":"Pass","End":true}}}`)
	run, st, out, f := r.run(t, "p", `{"k":1}`)
	if st != Succeeded {
		t.Fatalf("%s (%v)", st, f)
	}
	var got struct {
		K     int
		Error struct{ Error, Cause string }
	}
	unmarshal(t, out, &got)
	if got.K != 1 || got.Error.Error != "CustomError" || !strings.Contains(got.Error.Cause, "This is a custom error!") {
		t.Errorf("output %s: want the input with the caught error at $.error", out)
	}
	if n := r.emu.Stats().Functions["never"].Invocations; n != 0 {
		t.Errorf("the stopped branch invoked its next task %d times", n)
	}
	if s := run.Snapshot(); s.Nodes["Never"].Runs != 0 || s.Nodes["Handled"].State != stateSucceeded {
		t.Errorf("nodes %+v %+v", s.Nodes["Never"], s.Nodes["Handled"])
	}
}

// TestASLToleratedFailures: a Map tolerates ToleratedFailureCount failed
// items (their places hold the error) and fails with
// States.ExceedToleratedFailureThreshold on one more.
func TestASLToleratedFailures(t *testing.T) {
	r := newRig(t, 8, nil)
	r.put(t, "m", `{"StartAt":"M","States":{"M":{"Type":"Map","ToleratedFailureCount":1,
		"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"EXPRESS"},"StartAt":"T","States":{"T":{"Type":"Task","Resource":"w","End":true}}},"End":true}}}`)
	_, st, out, f := r.run(t, "m", `[{"a":1},{"fail":true},{"a":3}]`)
	if st != Succeeded {
		t.Fatalf("one failure tolerated: %s (%v)", st, f)
	}
	var got []map[string]any
	unmarshal(t, out, &got)
	if len(got) != 3 || got[1]["Error"] != "States.TaskFailed" || got[0]["function"] != "w" {
		t.Errorf("output %s: want 3 places, the failed one holding its error", out)
	}
	_, st, _, f = r.run(t, "m", `[{"fail":true},{"a":2},{"fail":true}]`)
	if st != Failed || f.ErrorName != "States.ExceedToleratedFailureThreshold" {
		t.Errorf("two failures with one tolerated: %s %+v", st, f)
	}
}

// TestASLPlan: admission's estimate of a machine: tasks on the critical
// path, Waits on it without work, the longer of a Catch's and Next's ways,
// a loop once, a starting Map's real width from the input.
func TestASLPlan(t *testing.T) {
	m, err := ParseASL([]byte(`{"StartAt":"A","States":{
		"A":{"Type":"Task","Resource":"a","Catch":[{"ErrorEquals":["States.ALL"],"Next":"Slow"}],"Next":"W"},
		"W":{"Type":"Wait","Seconds":2,"Next":"C"},
		"C":{"Type":"Choice","Choices":[{"Variable":"$.again","BooleanEquals":true,"Next":"A"}],"Default":"Done"},
		"Slow":{"Type":"Task","Resource":"slow","End":true},
		"Done":{"Type":"Succeed"}}}`), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	est := func(fn string) time.Duration {
		if fn == "slow" {
			return 5 * time.Second
		}
		return 100 * time.Millisecond
	}
	p := m.Plan(est, 0, nil, time.Now())
	// a (100ms), then the longer of W (2s) and Slow (5s).
	if p.Critical != 5100*time.Millisecond || p.Work != 5100*time.Millisecond || p.Steps != 2 {
		t.Errorf("plan %+v: want 5.1s critical and work, 2 steps", p)
	}
	m, err = ParseASL([]byte(`{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.xs","MaxConcurrency":2,
		"ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"t","End":true}}},"End":true}}}`), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	in, _ := decode([]byte(`{"xs":[1,2,3,4,5]}`))
	p = m.Plan(est, 0, in, time.Now())
	if p.Steps != 5 || p.Critical != 300*time.Millisecond {
		t.Errorf("map plan %+v: want 5 steps in 3 rounds of 2", p)
	}
}

// TestASLWaitHoldsNoSlot: with one worker slot, a run waiting in a Wait
// state lets another run's task through.
func TestASLWaitHoldsNoSlot(t *testing.T) {
	r := newRig(t, 1, nil)
	release := make(chan struct{})
	waiting := make(chan struct{}, 1)
	r.svc.wait = func(sc scope, _ *Run, d time.Duration) bool {
		waiting <- struct{}{}
		select {
		case <-release:
			return true
		case <-sc.ctx.Done():
			return false
		}
	}
	r.put(t, "waits", `{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"a","Next":"W"},
		"W":{"Type":"Wait","Seconds":3600,"Next":"B"},"B":{"Type":"Task","Resource":"b","End":true}}}`)
	r.put(t, "other", `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"t","End":true}}}`)
	a, err := r.svc.Start("waits", RunRequest{Input: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	<-waiting
	_, st, _, f := r.run(t, "other", `{}`)
	if st != Succeeded {
		t.Fatalf("the other run, while the first waits on the only slot's worth of work: %s (%v)", st, f)
	}
	close(release)
	<-a.Done()
	if st, _, f := a.Result(); st != Succeeded {
		t.Fatalf("the waiting run: %s (%v)", st, f)
	}
	if n := r.emu.Stats().Invocations; n != 3 {
		t.Errorf("%d invocations, want 3", n)
	}
}
