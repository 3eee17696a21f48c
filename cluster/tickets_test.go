package cluster

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sequoia-qos/sequoia/qos"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func TestTicketRoundTrip(t *testing.T) {
	var tk Tickets
	if _, ok := tk.Mint(nil, "sq-0123456789abcdef-1", time.Now(), 2); ok {
		t.Fatal("minted without a key")
	}
	tk.SetKey(testKey)
	id := qos.NewChainIDs().Prefix() + "k3"
	deadline := time.UnixMilli(1_800_000_000_123)
	for _, tc := range []struct {
		deadline time.Time
		steps    int
	}{{deadline, 2}, {time.Time{}, 0}, {deadline, 1_000_000}} {
		ticket, ok := tk.Mint([]byte("prefix:"), id, tc.deadline, tc.steps)
		if !ok || !bytes.HasPrefix(ticket, []byte("prefix:")) {
			t.Fatalf("mint: %q %v", ticket, ok)
		}
		ticket = ticket[len("prefix:"):]
		full := id + "." + string(ticket)
		if len(full) > 128 {
			t.Errorf("ticketed id %q is %d bytes, over the proxy's 128", full, len(full))
		}
		for _, c := range full {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", c) {
				t.Errorf("ticketed id %q holds %q", full, c)
			}
		}
		b, tkt, ok := SplitID([]byte(full))
		if !ok || string(b) != id || string(tkt) != string(ticket) {
			t.Fatalf("SplitID(%q) = %q %q %v", full, b, tkt, ok)
		}
		d, s, ok := tk.Read(id, string(ticket))
		if !ok || !d.Equal(tc.deadline) || s != tc.steps {
			t.Errorf("Read = %v %d %v, want %v %d", d, s, ok, tc.deadline, tc.steps)
		}
		// Another id, a changed field, another key: refused.
		if _, _, ok := tk.Read(id+"0", string(ticket)); ok {
			t.Error("a ticket read for another id")
		}
		changed := []byte(ticket)
		changed[0] ^= 1
		if _, _, ok := tk.Read(id, string(changed)); ok {
			t.Error("a changed ticket read")
		}
		var other Tickets
		other.SetKey([]byte("another key, another cluster....."))
		if _, _, ok := other.Read(id, string(ticket)); ok {
			t.Error("a ticket read under another key")
		}
	}
}

// TestTicketKeyChange: after a key change, tickets of the previous key
// are still read (chains running across the change), of the one before
// not.
func TestTicketKeyChange(t *testing.T) {
	var tk Tickets
	tk.SetKey(testKey)
	id := "sq-0123456789abcdef-1"
	old, _ := tk.Mint(nil, id, time.Time{}, 2)
	if tk.SetKey(testKey) {
		t.Error("the same key counted as a change")
	}
	tk.SetKey(bytes.Repeat([]byte("b"), 32))
	if _, _, ok := tk.Read(id, string(old)); !ok {
		t.Error("previous key's ticket refused")
	}
	tk.SetKey(bytes.Repeat([]byte("c"), 32))
	if _, _, ok := tk.Read(id, string(old)); ok {
		t.Error("ticket of the key before the previous one read")
	}
}

func TestSplitID(t *testing.T) {
	for _, tc := range []struct {
		in   string
		id   string
		ok   bool
		orig string
	}{
		{"sq-0123456789abcdef-1a.x", "sq-0123456789abcdef-1a", true, "0123456789abcdef"},
		{"sq-0123456789abcdef-1a", "sq-0123456789abcdef-1a", false, "0123456789abcdef"},
		{"sq-0123456789abcdef-1a.", "sq-0123456789abcdef-1a.", false, ""},
		{"sq-0123456789abcdeg-1a.x", "sq-0123456789abcdeg-1a.x", false, ""},
		{"sq-0123456789abcdef-.x", "sq-0123456789abcdef-.x", false, ""},
		{"sq-0123456789abcdef-1A.x", "sq-0123456789abcdef-1A.x", false, ""},
		{"my.chain.id", "my.chain.id", false, ""},
		{"", "", false, ""},
	} {
		id, _, ok := SplitID([]byte(tc.in))
		if string(id) != tc.id || ok != tc.ok {
			t.Errorf("SplitID(%q) = %q %v, want %q %v", tc.in, id, ok, tc.id, tc.ok)
		}
		if ok {
			if o := OriginOf(string(id)); o != tc.orig {
				t.Errorf("OriginOf(%q) = %q, want %q", id, o, tc.orig)
			}
		}
	}
}

func FuzzTicketRead(f *testing.F) {
	var tk Tickets
	tk.SetKey(testKey)
	good, _ := tk.Mint(nil, "sq-0123456789abcdef-1", time.UnixMilli(1e12), 3)
	f.Add("sq-0123456789abcdef-1", string(good))
	f.Add("x", "0.0.AAAAAAAAAAAAAAAA")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, id, ticket string) {
		d, s, ok := tk.Read(id, ticket)
		if !ok {
			return
		}
		// Whatever reads must be what minting the same fields makes.
		again, _ := tk.Mint(nil, id, d, s)
		if string(again) != ticket {
			t.Fatalf("Read(%q, %q) = %v %d, which mints %q", id, ticket, d, s, again)
		}
	})
}

func FuzzSplitID(f *testing.F) {
	f.Add("sq-0123456789abcdef-1a.0.2.AAAAAAAAAAAAAAAA")
	f.Add("my.chain")
	f.Fuzz(func(t *testing.T, in string) {
		id, ticket, ok := SplitID([]byte(in))
		if !ok {
			if string(id) != in {
				t.Fatalf("SplitID(%q) not ok but id %q", in, id)
			}
			return
		}
		if string(id)+"."+string(ticket) != in || OriginOf(string(id)) == "" || len(ticket) == 0 {
			t.Fatalf("SplitID(%q) = %q %q", in, id, ticket)
		}
	})
}

func TestReportsRoundTrip(t *testing.T) {
	var b bytes.Buffer
	appendReport(&b, "c1", qos.StepRan)
	appendReport(&b, "c2", qos.StepFailed)
	appendReport(&b, "c3", qos.StepDropped)
	appendReport(&b, "c4", qos.StepLate)
	appendReport(&b, "c5", qos.StepGone)
	appendReport(&b, "bad\nid", qos.StepRan) // never sent
	var got []string
	n := parseReports(append(b.Bytes(), "x?\n\nrok-without-newline"...), func(id string, o qos.StepOutcome) {
		got = append(got, string(outcomeLetters[o])+id)
	})
	if want := "rc1 fc2 dc3 lc4 gc5 rok-without-newline"; n != 6 || strings.Join(got, " ") != want {
		t.Errorf("parsed %d: %v, want %q", n, got, want)
	}
}

func FuzzParseReports(f *testing.F) {
	f.Add([]byte("rc1\nfc2\ndc3\n"))
	f.Add([]byte("\n\n\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		parseReports(data, func(id string, o qos.StepOutcome) {
			if id == "" || len(id) > maxChainIDLen || strings.Contains(id, "\n") || int(o) >= len(outcomeLetters) {
				t.Fatalf("parsed %q %d", id, o)
			}
		})
	})
}

func TestChainRecordRoundTrip(t *testing.T) {
	d := time.UnixMilli(1_800_000_000_000)
	rc, ok := parseChainRecord(formatChainRecord("0123456789abcdef", d, 4))
	if !ok || rc.Origin != "0123456789abcdef" || !rc.Deadline.Equal(d) || rc.Steps != 4 {
		t.Errorf("round trip: %+v %v", rc, ok)
	}
	rc, ok = parseChainRecord(formatChainRecord("0123456789abcdef", time.Time{}, 0))
	if !ok || !rc.Deadline.IsZero() || rc.Steps != 0 {
		t.Errorf("no deadline: %+v %v", rc, ok)
	}
	for _, bad := range []string{"", "0123456789abcdef 1", "nothex0123456789 1 1", "0123456789abcdef -1 1", "0123456789abcdef 1 x"} {
		if _, ok := parseChainRecord([]byte(bad)); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

func FuzzParseChainRecord(f *testing.F) {
	f.Add([]byte("0123456789abcdef 1800000000000 2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rc, ok := parseChainRecord(b)
		if !ok {
			return
		}
		back, ok := parseChainRecord(formatChainRecord(rc.Origin, rc.Deadline, rc.Steps))
		if !ok || back != rc {
			t.Fatalf("%q: %+v does not round-trip (%+v)", b, rc, back)
		}
	})
}

// BenchmarkMint is what a new chain's ticket costs the replica that
// admits it (the request path, in a cluster).
func BenchmarkMint(b *testing.B) {
	var tk Tickets
	tk.SetKey(testKey)
	id := qos.NewChainIDs().Prefix() + "k3a"
	deadline := time.Now().Add(time.Second)
	var buf [maxTicket]byte
	b.ReportAllocs()
	for b.Loop() {
		tk.Mint(buf[:0], id, deadline, 2)
	}
}

// BenchmarkRead is what reading another replica's ticket costs.
func BenchmarkRead(b *testing.B) {
	var tk Tickets
	tk.SetKey(testKey)
	id := qos.NewChainIDs().Prefix() + "k3a"
	t, _ := tk.Mint(nil, id, time.Now().Add(time.Second), 2)
	ticket := string(t)
	b.ReportAllocs()
	for b.Loop() {
		tk.Read(id, ticket)
	}
}
