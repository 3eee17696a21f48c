package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/loadtest/emulator"
)

func startEmulator(t *testing.T, cfg emulator.Config) (*emulator.Emulator, string) {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	e, addr, err := emulator.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Shutdown() })
	return e, addr
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// buildBinary builds the sequoia command once per test binary.
var buildBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "sequoia-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "sequoia")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestBadConfigStopsStartup(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ name, value string }{
		{"SEQUOIA_MAX_CONCURRENCY", "ten"},
		{"SEQUOIA_MAX_CONCURRENCY", "-3"},
		{"SEQUOIA_QUEUE_TIMEOUT", "soon"},
		{"SEQUOIA_BACKEND", "azure"},
		{"SEQUOIA_BACKEND_URL", "ftp://x"},
	} {
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(), tt.name+"="+tt.value, "SEQUOIA_STATE_DIR="+t.TempDir())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		if err == nil {
			t.Errorf("%s=%s: start-up succeeded", tt.name, tt.value)
			continue
		}
		if msg := stderr.String(); !strings.Contains(msg, tt.name) || !strings.Contains(msg, tt.value) {
			t.Errorf("%s=%s: message %q does not name the variable and value", tt.name, tt.value, msg)
		}
	}
}

// TestSIGTERMDrains starts the real binary, queues invocations behind a
// small limit, sends SIGTERM and checks that readiness fails, every queued
// invocation is still served, and the process exits 0.
func TestSIGTERMDrains(t *testing.T) {
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	emu, emuAddr := startEmulator(t, emulator.Config{Limit: 2, ExecTime: 150 * time.Millisecond})
	listen, admin := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "SEQUOIA_LISTEN="+listen, "SEQUOIA_ADMIN_LISTEN="+admin, "SEQUOIA_STATE_DIR="+t.TempDir(),
		"SEQUOIA_BACKEND=http", "SEQUOIA_BACKEND_URL=http://"+emuAddr, "SEQUOIA_MAX_CONCURRENCY=2",
		"SEQUOIA_SHUTDOWN_TIMEOUT=1m", "SEQUOIA_DRAIN_DELAY=200ms")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(bufio.NewReader(stderr))
		logs <- string(b)
	}()
	for {
		if resp, err := http.Get("http://" + admin + "/readyz"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	const n = 8
	codes := make(chan int, n)
	for range n {
		go func() {
			resp, err := http.Post("http://"+listen+"/fn", "application/json", strings.NewReader("{}"))
			if err != nil {
				codes <- -1
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	// Wait until invocations are queued behind the two slots.
	for {
		_, body := httpGet(t, "http://"+admin+"/sequoia/v1/status")
		var st struct {
			Queues map[string]struct{ Depth int } `json:"queues"`
		}
		_ = json.Unmarshal([]byte(body), &st)
		if st.Queues["pending"].Depth >= n-2-1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Readiness fails while draining.
	sawNotReady := false
	for range 100 {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			break
		}
		resp.Body.Close()
		if resp.StatusCode == 503 {
			sawNotReady = true
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if !sawNotReady {
		t.Error("/readyz never failed during the drain")
	}
	for range n {
		if c := <-codes; c != 200 {
			t.Errorf("a queued invocation ended with %d during the drain", c)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, <-logs)
	} else if l := <-logs; !strings.Contains(l, `"msg":"draining"`) || !strings.Contains(l, `"msg":"stopped"`) {
		t.Errorf("logs lack the drain: %s", l)
	}
	if got := emu.Stats().Invocations; got != n {
		t.Errorf("platform saw %d invocations, want %d", got, n)
	}
}
