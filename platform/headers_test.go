package platform

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestPrepareRequest(t *testing.T) {
	var h fasthttp.RequestHeader
	h.Set("Connection", "keep-alive, X-Secret , Upgrade")
	h.Set("X-Secret", "1")
	h.Set("Upgrade", "websocket")
	h.Set("Keep-Alive", "timeout=5")
	h.Set("Proxy-Connection", "keep-alive")
	h.Set("TE", "trailers")
	h.Set("Trailer", "X-Sum")
	h.Set("Proxy-Authorization", "Basic x")
	h.Set("Authorization", "Basic y")
	h.Set("X-Sequoia-Chain-Id", "c1")
	PrepareRequest(&h)
	for _, k := range []string{"Connection", "X-Secret", "Upgrade", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Proxy-Authorization"} {
		if v := h.Peek(k); v != nil {
			t.Errorf("%s = %q survived", k, v)
		}
	}
	for k, want := range map[string]string{"Authorization": "Basic y", "X-Sequoia-Chain-Id": "c1", "Via": "1.1 sequoia"} {
		if got := string(h.Peek(k)); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestPrepareResponseKeepsClientConnection(t *testing.T) {
	var h fasthttp.ResponseHeader
	h.SetConnectionClose()
	h.Set("X-Amz-Function-Error", "Unhandled")
	PrepareResponse(&h)
	if h.ConnectionClose() {
		t.Error("the platform closing its connection would close the client's")
	}
	if string(h.Peek("X-Amz-Function-Error")) != "Unhandled" {
		t.Error("end-to-end header dropped")
	}
}

func BenchmarkPrepareRequest(b *testing.B) {
	var h fasthttp.RequestHeader
	b.ReportAllocs()
	for b.Loop() {
		h.Reset()
		h.Set("Content-Type", "application/json")
		h.Set("Authorization", "Basic y")
		PrepareRequest(&h)
	}
}
