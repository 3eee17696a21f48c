package events

import (
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// TestEncodeDecode: an event comes back from its message as it went in.
func TestEncodeDecode(t *testing.T) {
	in := &Event{Function: "img/resize:prod", Qualifier: "7", Tenant: "guest", Chain: "c-1",
		Priority: -3, FunctionCap: 4, Idempotent: true, Arrival: time.Unix(0, 1_700_000_000_123_456_789),
		Key: "abc", Request: request("f", 1)}
	m := encode(in, "sequoia.t.events."+token(in.Function))
	if m.Header.Get(nats.MsgIdHdr) != msgID(in) || msgID(in) == "" {
		t.Errorf("message id %q", m.Header.Get(nats.MsgIdHdr))
	}
	out, err := decode(m.Header, m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if out.Function != in.Function || out.Qualifier != in.Qualifier || out.Tenant != in.Tenant || out.Chain != in.Chain ||
		out.Priority != in.Priority || out.FunctionCap != in.FunctionCap || !out.Idempotent || !out.Arrival.Equal(in.Arrival) ||
		out.Key != in.Key || string(out.Request) != string(in.Request) {
		t.Errorf("decoded %+v, want %+v", out, in)
	}
}

// TestMsgIDScope: a key identifies an event within its function,
// qualifier and tenant only; no key, no id.
func TestMsgIDScope(t *testing.T) {
	base := Event{Function: "f", Key: "k"}
	ids := map[string]bool{msgID(&base): true}
	for _, ev := range []Event{{Function: "g", Key: "k"}, {Function: "f", Qualifier: "1", Key: "k"},
		{Function: "f", Tenant: "t", Key: "k"}, {Function: "f", Key: "k2"}, {Function: "f:", Key: "k"}} {
		id := msgID(&ev)
		if ids[id] {
			t.Errorf("%+v shares an id", ev)
		}
		ids[id] = true
	}
	if msgID(&Event{Function: "f"}) != "" {
		t.Error("an event without a key has an id")
	}
	if a := (Event{Function: "f", Key: "k"}); msgID(&a) != msgID(&base) {
		t.Error("the same key gives another id")
	}
}

// TestDecodeRefuses: what a stored event cannot be is an error, never a
// panic.
func TestDecodeRefuses(t *testing.T) {
	good := func() nats.Header {
		return nats.Header{hdrFunction: {"f"}, hdrAccepted: {"1700000000000000000"}}
	}
	for name, edit := range map[string]func(nats.Header){
		"no function":    func(h nats.Header) { h.Del(hdrFunction) },
		"no arrival":     func(h nats.Header) { h.Del(hdrAccepted) },
		"bad arrival":    func(h nats.Header) { h.Set(hdrAccepted, "yesterday") },
		"bad priority":   func(h nats.Header) { h.Set(hdrPriority, "high") },
		"huge cap":       func(h nats.Header) { h.Set(hdrFunctionCap, strconv.Itoa(1<<31)) },
		"long tenant":    func(h nats.Header) { h.Set(hdrTenant, string(make([]byte, maxName+1))) },
		"not utf-8 name": func(h nats.Header) { h.Set(hdrFunction, "\xff") },
	} {
		h := good()
		edit(h)
		if _, err := decode(h, []byte("x")); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := decode(good(), nil); err == nil {
		t.Error("no request: decoded")
	}
	if _, err := decode(good(), []byte("x")); err != nil {
		t.Errorf("good: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("f", "", "", "1700000000000000000", "3", "0", "1", []byte("POST / HTTP/1.1\r\n\r\n"))
	f.Add("", "q", "t", "-1", "x", "99999999999", "", []byte{})
	f.Fuzz(func(t *testing.T, fn, qual, tenant, accepted, prio, fcap, idem string, data []byte) {
		h := nats.Header{}
		for k, v := range map[string]string{hdrFunction: fn, hdrQualifier: qual, hdrTenant: tenant,
			hdrAccepted: accepted, hdrPriority: prio, hdrFunctionCap: fcap, hdrIdempotent: idem} {
			if v != "" {
				h.Set(k, v)
			}
		}
		ev, err := decode(h, data)
		if err != nil {
			return
		}
		if ev.Function == "" || len(ev.Request) == 0 || ev.Arrival.UnixNano() <= 0 {
			t.Errorf("decoded an invalid event: %+v", ev)
		}
		// What decodes encodes back to the same.
		again, err := decode(encode(ev, "s").Header, encode(ev, "s").Data)
		if err != nil || again.Function != ev.Function || again.Priority != ev.Priority || !again.Arrival.Equal(ev.Arrival) {
			t.Errorf("round trip: %+v, %v", again, err)
		}
	})
}

func FuzzReadDead(f *testing.F) {
	f.Add("RetriesExhausted", "12", "3", "200", []byte("POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"))
	f.Add("", "x", "-1", "", []byte("garbage"))
	f.Fuzz(func(t *testing.T, reason, seq, attempts, status string, data []byte) {
		h := nats.Header{hdrDeadReason: {reason}, hdrDeadSeq: {seq}, hdrAttempts: {attempts}, hdrLastStatus: {status}}
		dl := readDead(1, h, data)
		if dl.Payload != nil && len(dl.Payload) == 0 {
			t.Error("an empty non-nil payload")
		}
	})
}
