package main

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestEmulateBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--limit", "0"}, {"--exec", "-1s"}, {"--keepalive", "soon"}, {"stray"}} {
		var out bytes.Buffer
		if err := runEmulate(context.Background(), args, &out); err == nil {
			t.Errorf("emulate %v: no error", args)
		}
	}
}

func TestEmulateServesUntilCancelled(t *testing.T) {
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		done <- runEmulate(ctx, []string{"--listen", addr, "--exec", "0s", "--cold-start", "0s"}, &out)
	}()
	var resp *http.Response
	var err error
	for range 500 {
		if resp, err = http.Post("http://"+addr+"/2015-03-31/functions/f/invocations", "application/json", strings.NewReader("{}")); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("invoke: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("emulate: %v", err)
	}
}
