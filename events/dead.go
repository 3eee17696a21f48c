package events

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/valyala/fasthttp"
)

// DeadLetter is an event given up, as /sequoia/v1/events/dead shows it.
type DeadLetter struct {
	Seq       uint64    `json:"seq"`       // in the dead letters: the listing's cursor
	EventSeq  uint64    `json:"event_seq"` // in the events' stream
	Function  string    `json:"function"`
	Qualifier string    `json:"qualifier,omitempty"`
	Tenant    string    `json:"tenant,omitempty"`
	Key       string    `json:"idempotency_key,omitempty"`
	Reason    string    `json:"reason"` // RetriesExhausted, EventAgeExceeded, Rejected, Undecodable
	Accepted  time.Time `json:"accepted_at,omitzero"`
	Dead      time.Time `json:"dead_at"`
	Attempts  int       `json:"attempts"`
	// FunctionErrors counts the attempts whose function failed.
	FunctionErrors int    `json:"function_errors"`
	LastStatus     int    `json:"last_status,omitempty"`
	LastError      string `json:"last_error,omitempty"`
	FunctionError  string `json:"function_error,omitempty"`
	// Payload is the request's body: JSON as it is, anything else as a
	// JSON string of its base64; PayloadBytes is its size (the payload is
	// left out above MaxListedPayload).
	Payload      json.RawMessage `json:"payload,omitempty"`
	PayloadBytes int             `json:"payload_bytes"`
}

// MaxListedPayload bounds a payload shown in a dead-letter listing.
const MaxListedPayload = 256 << 10

// MaxDeadPage bounds one page of the dead-letter listing.
const MaxDeadPage = 100

// Dead returns up to limit (at most MaxDeadPage) dead letters, newest
// first, before the dead-letter sequence before (0: from the newest), and
// the cursor of the next page (0: none).
func (s *Store) Dead(ctx context.Context, limit int, before uint64) ([]DeadLetter, uint64, error) {
	st := s.current()
	if st == nil {
		return nil, 0, ErrUnavailable
	}
	limit = min(max(limit, 1), MaxDeadPage)
	info, err := st.dead.Info(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	if info.State.Msgs == 0 {
		return []DeadLetter{}, 0, nil
	}
	if before != 0 && before-1 < last {
		last = before - 1
	}
	out := []DeadLetter{}
	seq := last
	for ; seq >= first && seq > 0 && len(out) < limit; seq-- {
		raw, err := st.dead.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // dropped meanwhile as the oldest
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		out = append(out, readDead(raw.Sequence, raw.Header, raw.Data))
	}
	next := uint64(0)
	if seq >= first && seq > 0 {
		next = seq + 1
	}
	return out, next, nil
}

// readDead reads a stored dead letter; fields it cannot read stay empty.
func readDead(seq uint64, h nats.Header, data []byte) DeadLetter {
	dl := DeadLetter{Seq: seq, Function: h.Get(hdrFunction), Qualifier: h.Get(hdrQualifier),
		Tenant: h.Get(hdrTenant), Key: h.Get(hdrKey), Reason: h.Get(hdrDeadReason),
		LastError: h.Get(hdrLastError), FunctionError: h.Get(hdrLastFnError)}
	num := func(key string) int64 { n, _ := strconv.ParseInt(h.Get(key), 10, 64); return n }
	if ns := num(hdrAccepted); ns > 0 {
		dl.Accepted = time.Unix(0, ns).UTC()
	}
	if ns := num(hdrDeadAt); ns > 0 {
		dl.Dead = time.Unix(0, ns).UTC()
	}
	dl.EventSeq = uint64(max(0, num(hdrDeadSeq)))
	dl.Attempts, dl.FunctionErrors, dl.LastStatus = int(num(hdrAttempts)), int(num(hdrFunctionErrors)), int(num(hdrLastStatus))
	body := requestBody(data)
	dl.PayloadBytes = len(body)
	if len(body) <= MaxListedPayload {
		dl.Payload = payloadJSON(body)
	}
	return dl
}

// requestBody returns the body of a stored request; nil if it cannot be
// read.
func requestBody(data []byte) []byte {
	var req fasthttp.Request
	if err := req.Read(bufio.NewReader(bytes.NewReader(data))); err != nil {
		return nil
	}
	return append([]byte(nil), req.Body()...)
}

// payloadJSON is b as JSON: itself when it is JSON, else its base64 as a
// JSON string.
func payloadJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	enc, _ := json.Marshal(b) // []byte marshals as base64
	return enc
}

// onFailureRecord is Lambda's record for an on-failure destination of an
// asynchronous invocation.
type onFailureRecord struct {
	Version         string          `json:"version"`
	Timestamp       time.Time       `json:"timestamp"`
	RequestContext  requestContext  `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponseContext responseContext `json:"responseContext"`
	ResponsePayload json.RawMessage `json:"responsePayload,omitempty"`
}

type requestContext struct {
	RequestID              string `json:"requestId"`
	FunctionArn            string `json:"functionArn"`
	Condition              string `json:"condition"`
	ApproximateInvokeCount int    `json:"approximateInvokeCount"`
}

type responseContext struct {
	StatusCode      int    `json:"statusCode,omitempty"`
	ExecutedVersion string `json:"executedVersion,omitempty"`
	FunctionError   string `json:"functionError,omitempty"`
}

func failureRecord(dl DeadLetter, body []byte) onFailureRecord {
	fn := dl.Function
	version := "$LATEST"
	if dl.Qualifier != "" {
		fn += ":" + dl.Qualifier
		version = dl.Qualifier
	}
	id := dl.Key
	if id == "" {
		id = "sequoia-event-" + strconv.FormatUint(dl.EventSeq, 10)
	}
	r := onFailureRecord{Version: "1.0", Timestamp: dl.Dead,
		RequestContext: requestContext{RequestID: id, FunctionArn: fn, Condition: dl.Reason, ApproximateInvokeCount: dl.Attempts},
		RequestPayload: payloadJSON(body),
		ResponseContext: responseContext{StatusCode: dl.LastStatus, ExecutedVersion: version,
			FunctionError: dl.FunctionError},
		ResponsePayload: payloadJSON([]byte(dl.LastError)),
	}
	if r.RequestPayload == nil {
		r.RequestPayload = json.RawMessage("null")
	}
	if dl.LastError != "" && !json.Valid([]byte(dl.LastError)) {
		r.ResponsePayload, _ = json.Marshal(dl.LastError)
	}
	return r
}

// onFailureBackoff is the wait before each new attempt to post a dead
// letter; after the last it is given up (it stays listed).
var onFailureBackoff = []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute,
	5 * time.Minute, 10 * time.Minute, 30 * time.Minute}

// forwardFailures posts every dead letter to the on-failure URL, through
// a durable consumer of the dead letters that every replica shares (each
// is posted by one replica, at least once), with JetStream's BackOff
// between attempts.
func (s *Store) forwardFailures() {
	defer s.loops.Done()
	client := &fasthttp.Client{Name: "sequoia", ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
		MaxIdleConnDuration: time.Minute}
	for {
		st := s.current()
		if st == nil {
			select {
			case <-s.stopping:
				return
			case <-time.After(time.Second):
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := st.dead.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
			Durable:       "on_failure",
			Description:   "sequoia: posts dead letters to SEQUOIA_EVENT_ON_FAILURE_URL",
			AckPolicy:     jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckWait:       30 * time.Second,
			MaxDeliver:    len(onFailureBackoff) + 1,
			BackOff:       onFailureBackoff,
		})
		cancel()
		if err != nil {
			s.log.Warn("events: on-failure consumer", "err", err)
			select {
			case <-s.stopping:
				return
			case <-time.After(time.Second):
				continue
			}
		}
		s.postFailures(c, client)
		select {
		case <-s.stopping:
			return
		default:
		}
	}
}

// postFailures posts dead letters from c until the store stops or the
// consumer fails.
func (s *Store) postFailures(c jetstream.Consumer, client *fasthttp.Client) {
	for {
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return
		}
		for msg := range batch.Messages() {
			s.postFailure(msg, client)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			return
		}
		select {
		case <-s.stopping:
			return
		default:
		}
	}
}

func (s *Store) postFailure(msg jetstream.Msg, client *fasthttp.Client) {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	dl := readDead(meta.Sequence.Stream, msg.Headers(), msg.Data())
	body, _ := json.Marshal(failureRecord(dl, requestBody(msg.Data())))
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(s.cfg.OnFailureURL)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.SetContentType("application/json")
	req.SetBody(body)
	err = client.DoTimeout(req, resp, 10*time.Second)
	if err == nil && resp.StatusCode() >= 200 && resp.StatusCode() < 300 {
		_ = msg.Ack()
		s.m.onFailure.WithLabelValues("sent").Inc()
		return
	}
	why := fmt.Sprint(err)
	if err == nil {
		why = "status " + strconv.Itoa(resp.StatusCode())
	}
	if int(meta.NumDelivered) > len(onFailureBackoff) {
		_ = msg.Term()
		s.m.onFailure.WithLabelValues("failed").Inc()
		s.log.Warn("events: gave up posting a dead letter to SEQUOIA_EVENT_ON_FAILURE_URL", "function", dl.Function, "err", why)
		return
	}
	_ = msg.NakWithDelay(onFailureBackoff[meta.NumDelivered-1])
}
