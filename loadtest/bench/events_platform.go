package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/events"
)

// recorder is the Lambda-shaped platform of `sequoia bench events`: it
// runs every invocation for a fixed time and records which event ids (the
// payload's "id") and which functions it ran, so that lost and repeated
// deliveries are counted where they happen.
type recorder struct {
	ln   net.Listener
	srv  *fasthttp.Server
	exec time.Duration // every function's time
	slow time.Duration // functions named slow*

	calls    atomic.Int64
	distinct atomic.Int64
	mu       sync.Mutex
	ids      map[int]int    // event id: times run
	fns      map[string]int // function: times run
}

func startRecorder(exec, slow time.Duration) (*recorder, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &recorder{ln: ln, exec: exec, slow: slow, ids: map[int]int{}, fns: map[string]int{}}
	r.srv = &fasthttp.Server{Handler: r.serve, Concurrency: 1 << 16, NoDefaultServerHeader: true}
	go r.srv.Serve(ln) //nolint:errcheck
	return r, nil
}

func (r *recorder) addr() string { return r.ln.Addr().String() }

func (r *recorder) close() { _ = r.srv.Shutdown() }

var lambdaPath = regexp.MustCompile(`^/2015-03-31/functions/([^/]+)/invocations$`)

func (r *recorder) serve(ctx *fasthttp.RequestCtx) {
	m := lambdaPath.FindSubmatch(ctx.Path())
	if m == nil {
		ctx.SetStatusCode(fasthttp.StatusNotFound)
		return
	}
	fn := string(m[1])
	var body struct {
		ID *int `json:"id"`
	}
	_ = json.Unmarshal(ctx.PostBody(), &body)
	r.calls.Add(1)
	r.mu.Lock()
	r.fns[fn]++
	if body.ID != nil {
		if r.ids[*body.ID]++; r.ids[*body.ID] == 1 {
			r.distinct.Add(1)
		}
	}
	r.mu.Unlock()
	d := r.exec
	if strings.HasPrefix(fn, "slow") {
		d = r.slow
	}
	time.Sleep(d)
	ctx.SetContentType("application/json")
	ctx.SetBodyString(`{"ok":true,"fn":"` + fn + `"}`)
}

// count returns the distinct ids run and the repeats (runs beyond the
// first) among ids 0..n-1.
func (r *recorder) count(n int) (distinct, repeats int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range n {
		if c := r.ids[id]; c > 0 {
			distinct++
			repeats += c - 1
		}
	}
	return distinct, repeats
}

func (r *recorder) ranFunction(fn string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fns[fn]
}

// sequoiaProc is one `sequoia serve` process of the kill scenarios.
type sequoiaProc struct {
	cmd   *exec.Cmd
	admin string
	done  chan struct{} // closed when the process has exited
	err   error         // its exit, once done
	tail  *tailBuffer
	// redelivered counts the process's log lines of attempts it counted
	// in sequoia_events_redelivered_total (events.LogRedelivering). Each
	// is written before its attempt goes out, and a SIGKILL loses none
	// (the pipe has them), where a scrape of the counter before the kill
	// misses those counted between the scrape and the kill. Complete
	// once done.
	redelivered atomic.Int64
}

// freePort returns a loopback address that was free a moment ago: a
// replica keeps its ports across restarts, so that clients keep theirs.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// fakeAWS is the environment sequoia needs to sign Lambda requests to the
// recorder, which checks no signature.
var fakeAWS = []string{"AWS_ACCESS_KEY_ID=SEQUOIABENCH", "AWS_SECRET_ACCESS_KEY=sequoia-bench", "AWS_REGION=us-east-1",
	"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=" + os.DevNull, "AWS_SHARED_CREDENTIALS_FILE=" + os.DevNull}

// startSequoia starts `bin serve` with env (on top of the environment
// without any SEQUOIA_ or AWS_ variable) and waits until it serves.
func startSequoia(bin string, env []string) (*sequoiaProc, error) {
	cmd := exec.Command(bin, "serve")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SEQUOIA_") && !strings.HasPrefix(kv, "AWS_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(append(cmd.Env, fakeAWS...), "SEQUOIA_LOG_FORMAT=json", "SEQUOIA_LOG_LEVEL=info"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &sequoiaProc{cmd: cmd, done: make(chan struct{}), tail: &tailBuffer{}}
	serving := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.tail.add(line)
			if strings.Contains(line, redeliveringMsg) {
				p.redelivered.Add(1)
			}
			if strings.Contains(line, `"msg":"sequoia serving"`) {
				if m := regexp.MustCompile(`"admin":"([^"]+)"`).FindStringSubmatch(line); m != nil {
					select {
					case serving <- m[1]:
					default:
					}
				}
			}
		}
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case p.admin = <-serving:
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("sequoia exited at start (%v): %s", p.err, p.tail.String())
	case <-time.After(time.Minute):
		p.kill()
		return nil, fmt.Errorf("sequoia did not start within a minute: %s", p.tail.String())
	}
}

// redeliveringMsg is events.LogRedelivering as it appears in a JSON log
// line.
var redeliveringMsg = `"msg":"` + events.LogRedelivering + `"`

// kill SIGKILLs the process and waits for it.
func (p *sequoiaProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and returns the exit's error (nil for 0).
func (p *sequoiaProc) term() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.err
	case <-time.After(2 * time.Minute):
		p.kill()
		return errors.New("sequoia did not exit within 2 minutes of SIGTERM")
	}
}

// tailBuffer keeps a process's last log lines, for error messages.
type tailBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (t *tailBuffer) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.lines = append(t.lines, l); len(t.lines) > 20 {
		t.lines = t.lines[1:]
	}
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
