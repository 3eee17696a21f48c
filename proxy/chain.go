package proxy

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/qos"
)

// The chain headers (design.md, "Headers").
var (
	headerChainID  = []byte("X-Sequoia-Chain-Id")
	headerDeadline = []byte("X-Sequoia-Deadline-Ms")
	headerSteps    = []byte("X-Sequoia-Chain-Steps")
	headerPriority = []byte("X-Sequoia-Priority")
)

// maxChainID bounds a chain id's length in bytes.
const maxChainID = 128

// Largest accepted values: a budget of about 115 days, and steps.
const (
	maxDeadlineMs = 9_999_999_999
	maxSteps      = 1_000_000
)

var (
	errBadChainID = render(&apiError{fasthttp.StatusBadRequest, "bad_request",
		"sequoia: X-Sequoia-Chain-Id must be 1 to 128 HTTP token characters (letters, digits and !#$%&'*+-.^_`|~)", 0})
	errBadDeadline = render(&apiError{fasthttp.StatusBadRequest, "bad_request",
		"sequoia: X-Sequoia-Deadline-Ms must be a positive integer number of milliseconds", 0})
	errBadSteps = render(&apiError{fasthttp.StatusBadRequest, "bad_request",
		"sequoia: X-Sequoia-Chain-Steps must be a positive integer", 0})
)

// chainIDs returns where the proxy takes the ids it assigns: the
// scheduler's own generator if it has one (qos.Scheduler keeps the chains
// of its ids in a ring, cheaper than its chain table), else a new one.
func chainIDs(sched Scheduler) *qos.ChainIDs {
	if s, ok := sched.(interface{ ChainIDs() *qos.ChainIDs }); ok {
		return s.ChainIDs()
	}
	return qos.NewChainIDs()
}

// tokenChar marks the bytes of an HTTP token (RFC 9110, 5.6.2).
var tokenChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

func validChainID(b []byte) bool {
	if len(b) == 0 || len(b) > maxChainID {
		return false
	}
	for _, c := range b {
		if !tokenChar[c] {
			return false
		}
	}
	return true
}

// parsePositive parses a decimal integer in [1, limit]; no sign, no spaces.
func parsePositive(b []byte, limit int64) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
		if n > limit {
			return 0, false
		}
	}
	return n, n > 0
}

// parseChain reads the chain headers of req into inv. A missing chain id is
// assigned (built in *buf) and set on the request, so that the function
// receives it. For a bad header it returns the error that names it.
func (p *Proxy) parseChain(req *fasthttp.Request, inv *invocation.Invocation, buf *[]byte) *apiError {
	h := &req.Header
	id := h.PeekBytes(headerChainID)
	if id == nil {
		*buf = p.ids.Next((*buf)[:0])
		id = *buf
		h.SetCanonical(headerChainID, id)
		inv.ChainAssigned = true
	} else if !validChainID(id) {
		return errBadChainID
	} else if p.cfg.Cluster != nil {
		if base, _, ok := p.cfg.Cluster.SplitChainID(id); ok {
			s := string(id) // one allocation for both
			inv.Chain, inv.ChainTicket = s[:len(base)], s[len(base)+1:]
			return p.parseChainHeaders(h, inv)
		}
	}
	inv.Chain = string(id)
	return p.parseChainHeaders(h, inv)
}

// parseChainHeaders reads the chain headers other than the id.
func (p *Proxy) parseChainHeaders(h *fasthttp.RequestHeader, inv *invocation.Invocation) *apiError {
	if v := h.PeekBytes(headerDeadline); v != nil {
		ms, ok := parsePositive(v, maxDeadlineMs)
		if !ok {
			return errBadDeadline
		}
		inv.Budget = time.Duration(ms) * time.Millisecond
	}
	if v := h.PeekBytes(headerSteps); v != nil {
		n, ok := parsePositive(v, maxSteps)
		if !ok {
			return errBadSteps
		}
		inv.Steps = int(n)
	}
	inv.Class = p.cfg.DefaultClass
	if v := h.PeekBytes(headerPriority); v != nil {
		// An unknown class is the default: the header is a wish.
		if c, ok := qos.ParseClass(v); ok {
			inv.Class = c
		}
	}
	return nil
}
