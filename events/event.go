package events

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
)

// Event is one invocation sequoia accepted (answered 202) and delivers to
// the platform on its behalf: a Lambda Event invocation.
type Event struct {
	// Function, Qualifier, Tenant and Chain are the invocation's names,
	// as the proxy parsed them.
	Function, Qualifier, Tenant, Chain string
	// Priority, FunctionCap and Idempotent are the policy's decision at
	// acceptance, kept for every delivery.
	Priority, FunctionCap int
	Idempotent            bool
	// Arrival is when sequoia accepted the event; its age counts from it.
	Arrival time.Time
	// Key identifies the client's request across its retries (the
	// Idempotency-Key header, else the SDK's invocation id): an event
	// accepted with the key of one accepted within the de-duplication
	// window is the same event. Empty: none.
	Key string
	// Request is the platform request, in HTTP/1.1 wire format.
	Request []byte

	// Set on delivery.
	//
	// Seq is the event's sequence in the store, unique per event.
	// Delivery counts its deliveries, 1 for the first. FunctionErrors
	// counts the attempts whose function failed so far.
	Seq            uint64
	Delivery       int
	FunctionErrors int

	sending func() // see Sending; nil: nothing to tell
}

// Sending tells the store that the attempt is about to reach the
// platform. A Deliverer calls it before each send of the event's request
// (the calls after an attempt's first cost a lock): it counts the attempt
// in sequoia_events_redelivered_total when an earlier attempt may have
// run the event and was never settled, and returns once the store has
// written down that this one may run, so that a crash from then on counts
// the next. An attempt that never calls it is taken as having run nothing.
func (ev *Event) Sending() {
	if ev.sending != nil {
		ev.sending()
	}
}

// OnSending sets what Sending calls: the store sets it for each attempt;
// a Deliverer's tests may set their own.
func (ev *Event) OnSending(f func()) { ev.sending = f }

// NATS headers an event is stored with; its Request is the message's data.
const (
	hdrFunction    = "Sequoia-Function"
	hdrQualifier   = "Sequoia-Qualifier"
	hdrTenant      = "Sequoia-Tenant"
	hdrChain       = "Sequoia-Chain"
	hdrPriority    = "Sequoia-Priority"
	hdrFunctionCap = "Sequoia-Function-Cap"
	hdrIdempotent  = "Sequoia-Idempotent"
	hdrAccepted    = "Sequoia-Accepted" // Unix nanoseconds
	hdrKey         = "Sequoia-Key"
)

// maxName bounds a stored name (function, qualifier, tenant, chain, key).
const maxName = 1024

// Errors of decode: a stored event sequoia cannot read goes to the dead
// letters.
var errBadEvent = errors.New("events: malformed stored event")

// msgID is the de-duplication id of an event with a key: the same key for
// another function (or qualifier, or tenant) is another event.
func msgID(ev *Event) string {
	if ev.Key == "" {
		return ""
	}
	h := sha256.New()
	for _, s := range [...]string{ev.Function, ev.Qualifier, ev.Tenant, ev.Key} {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	return "k" + hex.EncodeToString(h.Sum(nil)[:16])
}

// token is the subject token (and consumer name part) of a function:
// stable across processes and versions, and free of the characters NATS
// reserves.
func token(function string) string {
	h := fnv.New64a()
	h.Write([]byte(function))
	return strconv.FormatUint(h.Sum64(), 36)
}

// encode writes ev as a NATS message on subject.
func encode(ev *Event, subject string) *nats.Msg {
	m := nats.NewMsg(subject)
	h := m.Header
	h.Set(hdrFunction, ev.Function)
	h.Set(hdrAccepted, strconv.FormatInt(ev.Arrival.UnixNano(), 10))
	if ev.Qualifier != "" {
		h.Set(hdrQualifier, ev.Qualifier)
	}
	if ev.Tenant != "" {
		h.Set(hdrTenant, ev.Tenant)
	}
	if ev.Chain != "" {
		h.Set(hdrChain, ev.Chain)
	}
	if ev.Priority != 0 {
		h.Set(hdrPriority, strconv.Itoa(ev.Priority))
	}
	if ev.FunctionCap != 0 {
		h.Set(hdrFunctionCap, strconv.Itoa(ev.FunctionCap))
	}
	if ev.Idempotent {
		h.Set(hdrIdempotent, "1")
	}
	if ev.Key != "" {
		h.Set(hdrKey, ev.Key)
		h.Set(nats.MsgIdHdr, msgID(ev))
	}
	m.Data = ev.Request
	return m
}

// decode reads an event back from its stored headers and data. It checks
// every field: the store may hold what an older or newer sequoia wrote.
func decode(h nats.Header, data []byte) (*Event, error) {
	ev := &Event{Request: data}
	var err error
	name := func(key string, required bool) string {
		v := h.Get(key)
		if err == nil && (required && v == "" || len(v) > maxName || !utf8.ValidString(v)) {
			err = fmt.Errorf("%w: header %s", errBadEvent, key)
		}
		return v
	}
	num := func(key string) int {
		v := h.Get(key)
		if v == "" || err != nil {
			return 0
		}
		n, perr := strconv.Atoi(v)
		if perr != nil || n < -1<<30 || n > 1<<30 {
			err = fmt.Errorf("%w: header %s=%q", errBadEvent, key, v)
		}
		return n
	}
	ev.Function = name(hdrFunction, true)
	ev.Qualifier = name(hdrQualifier, false)
	ev.Tenant = name(hdrTenant, false)
	ev.Chain = name(hdrChain, false)
	ev.Key = name(hdrKey, false)
	ev.Priority = num(hdrPriority)
	ev.FunctionCap = num(hdrFunctionCap)
	ev.Idempotent = h.Get(hdrIdempotent) == "1"
	if err != nil {
		return nil, err
	}
	ns, perr := strconv.ParseInt(h.Get(hdrAccepted), 10, 64)
	if perr != nil || ns <= 0 {
		return nil, fmt.Errorf("%w: header %s=%q", errBadEvent, hdrAccepted, h.Get(hdrAccepted))
	}
	ev.Arrival = time.Unix(0, ns)
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: no request", errBadEvent)
	}
	return ev, nil
}
