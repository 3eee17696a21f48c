package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sequoia-qos/sequoia/invocation"
	"github.com/sequoia-qos/sequoia/qos"
)

// Chains keeps chains whole across the replicas of a cluster: it is qos's
// Remote. A chain a replica admits is known to the others in one of two
// ways, so that its continuation, landing on any replica, is a
// continuation there (the chain-running queue, never refused):
//
//   - an id sequoia assigned carries a signed ticket (tickets.go), which
//     the replica that admitted the chain adds to the id once admitted:
//     any replica reads it without a look-up;
//   - an id the client chose is stored in a key-value bucket when its
//     chain is admitted (sent at admission, its acknowledgement awaited
//     before the first answer), and read by a replica that does not know
//     it: one look-up per chain and replica, the first time it sees it.
//
// What becomes of a step run elsewhere is reported to the replica that
// admitted the chain, batched in the background (core NATS), so that it
// gives back the slot time it had reserved, ends the chain with its last
// step, and counts it completed or dropped; its reservation was honoured
// by the replica that ran the step, which books it as it runs.
type Chains struct {
	e       *Engine
	tickets Tickets
	own     string // this replica's origin: its ids' hex digits
	apply   func(id string, o qos.StepOutcome)
	peers   func() int // live replicas, this one included
	log     *slog.Logger
	ttl     time.Duration // how long a client-chosen id's chain is kept
	wait    time.Duration // bounds a look-up and a registration's wait
	metrics *chainMetrics

	mu     sync.Mutex
	kv     jetstream.KeyValue // the chains bucket; nil until opened
	outbox map[string]*bytes.Buffer

	sub  *nats.Subscription
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// ChainsConfig configures Chains.
type ChainsConfig struct {
	// Origin is this replica's ids' hex digits (qos.ChainIDs' prefix).
	Origin string
	// Key signs tickets; nil: the cluster's, from NATS (made by the
	// first replica that finds none).
	Key []byte
	// TTL is how long a chain with a client-chosen id is remembered
	// (SEQUOIA_CHAIN_TTL).
	TTL time.Duration
	// Apply hears the reports of other replicas: the scheduler's
	// RemoteStep.
	Apply func(id string, o qos.StepOutcome)
	// Peers counts the live replicas, this one included (Leases.Replicas):
	// alone, nothing is looked up or registered.
	Peers func() int
	Log   *slog.Logger
}

// reportEvery is how often step reports are sent.
const reportEvery = 50 * time.Millisecond

// lookupWait bounds a look-up of a client-chosen id, and the wait for its
// registration before the first answer.
const lookupWait = 250 * time.Millisecond

// NewChains returns the cluster's side of chain admission. Start starts
// it.
func NewChains(e *Engine, cfg ChainsConfig) *Chains {
	c := &Chains{e: e, own: cfg.Origin, apply: cfg.Apply, peers: cfg.Peers, log: cfg.Log, ttl: cfg.TTL,
		wait: lookupWait, metrics: newChainMetrics(), outbox: map[string]*bytes.Buffer{},
		stop: make(chan struct{}), done: make(chan struct{})}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.peers == nil {
		c.peers = func() int { return 1 }
	}
	if cfg.Key != nil {
		c.tickets.SetKey(cfg.Key)
	}
	return c
}

// SetOrigin sets this replica's ids' hex digits (qos.ChainIDs' prefix),
// when they were not known at NewChains; before Start.
func (c *Chains) SetOrigin(origin string) { c.own = origin }

// SplitChainID implements the proxy's Cluster: SplitID.
func (c *Chains) SplitChainID(id []byte) (base, ticket []byte, ok bool) { return SplitID(id) }

// Start subscribes to this replica's step reports, gets the ticket key
// (waiting up to wait for NATS) and runs the background work: sending
// reports, and getting the key and the bucket once NATS is reachable.
func (c *Chains) Start(wait time.Duration) error {
	sub, err := c.e.nc.Subscribe(c.e.Subject("steps", c.own), c.received)
	if err != nil {
		return err
	}
	c.sub = sub
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	c.connect(ctx)
	cancel()
	go c.run()
	return nil
}

// connect gets the ticket key (unless configured) and opens the chains
// bucket, whichever is still missing.
func (c *Chains) connect(ctx context.Context) {
	if !c.tickets.HasKey() {
		if err := c.loadKey(ctx); err != nil {
			c.log.Debug("cluster: ticket key not yet available", "err", err)
		}
	}
	c.mu.Lock()
	missing := c.kv == nil
	c.mu.Unlock()
	if missing {
		kv, err := c.e.openBucket(ctx, "chains", c.ttl, true)
		if err != nil {
			c.log.Debug("cluster: chains bucket not yet available", "err", err)
			return
		}
		c.mu.Lock()
		c.kv = kv
		c.mu.Unlock()
	}
}

// loadKey reads the cluster's ticket key from the leases bucket, creating
// it if no replica did yet.
func (c *Chains) loadKey(ctx context.Context) error {
	kv, err := c.e.openBucket(ctx, "leases", 0, false)
	if err != nil {
		return err
	}
	key := make([]byte, keyBytes)
	_, _ = rand.Read(key)
	_, err = kv.Create(ctx, "ticket-key", key)
	c.e.Op("kv_create", PathBackground)
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return err
	}
	if err != nil {
		e, gerr := kv.Get(ctx, "ticket-key")
		c.e.Op("kv_get", PathBackground)
		if gerr != nil {
			return gerr
		}
		key = e.Value()
	}
	if len(key) < minKeySize {
		return fmt.Errorf("cluster: the ticket key in NATS is %d bytes; want %d or more", len(key), minKeySize)
	}
	c.tickets.SetKey(key)
	return nil
}

func (c *Chains) run() {
	defer close(c.done)
	t := time.NewTicker(reportEvery)
	defer t.Stop()
	var retry time.Time
	for {
		select {
		case <-c.stop:
			c.flush()
			return
		case now := <-t.C:
			c.flush()
			c.mu.Lock()
			missing := c.kv == nil
			c.mu.Unlock()
			if (missing || !c.tickets.HasKey()) && now.After(retry) && c.e.Connected() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				c.connect(ctx)
				cancel()
				retry = now.Add(time.Second)
			}
		}
	}
}

// Close sends the reports still queued and stops.
func (c *Chains) Close() {
	c.once.Do(func() {
		close(c.stop)
		if c.sub != nil {
			<-c.done
			_ = c.sub.Unsubscribe()
		}
	})
}

// Resolve implements qos.Remote: whether another replica admitted inv's
// chain, from its ticket, or, for an id the client chose, from one
// look-up (when other replicas are alive and NATS is reachable).
func (c *Chains) Resolve(inv *invocation.Invocation) (qos.RemoteChain, bool) {
	if inv.ChainTicket != "" {
		origin := OriginOf(inv.Chain)
		if origin == "" || origin == c.own {
			return qos.RemoteChain{}, false // this replica's own, forgotten
		}
		deadline, steps, ok := c.tickets.Read(inv.Chain, inv.ChainTicket)
		if !ok {
			c.metrics.resolved.WithLabelValues("ticket", "bad").Inc()
			return qos.RemoteChain{}, false
		}
		c.metrics.resolved.WithLabelValues("ticket", "found").Inc()
		return qos.RemoteChain{Origin: origin, Deadline: deadline, Steps: steps}, true
	}
	if OriginOf(inv.Chain) != "" || c.peers() < 2 || !c.e.Connected() {
		return qos.RemoteChain{}, false // an id sequoia assigned goes with a ticket
	}
	c.mu.Lock()
	kv := c.kv
	c.mu.Unlock()
	if kv == nil {
		return qos.RemoteChain{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.wait)
	defer cancel()
	e, err := kv.Get(ctx, chainKey(inv.Chain))
	c.e.Op("kv_get", PathRequest)
	if err != nil {
		result := "not_found"
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			result = "error"
		}
		c.metrics.resolved.WithLabelValues("lookup", result).Inc()
		return qos.RemoteChain{}, false
	}
	rc, ok := parseChainRecord(e.Value())
	if !ok || rc.Origin == c.own {
		c.metrics.resolved.WithLabelValues("lookup", "not_found").Inc()
		return qos.RemoteChain{}, false
	}
	c.metrics.resolved.WithLabelValues("lookup", "found").Inc()
	return rc, true
}

// Admitted implements qos.Remote: an id sequoia assigned gets its ticket
// (inv.ChainTicket, which the proxy adds to the id it forwards and
// answers); an id the client chose is registered, and the registration's
// acknowledgement is what Settle waits for. Neither waits here.
func (c *Chains) Admitted(inv *invocation.Invocation, steps int) {
	if inv.ChainAssigned {
		var buf [maxTicket]byte
		if t, ok := c.tickets.Mint(buf[:0], inv.Chain, inv.Deadline, inv.Steps); ok {
			inv.ChainTicket = string(t)
		}
		return
	}
	if c.peers() < 2 || !c.e.Connected() {
		return
	}
	c.mu.Lock()
	kv := c.kv
	c.mu.Unlock()
	if kv == nil {
		return
	}
	rec := formatChainRecord(c.own, inv.Deadline, inv.Steps)
	f, err := c.e.js.PublishAsync("$KV."+c.e.Name("chains")+"."+chainKey(inv.Chain), rec)
	c.e.Op("kv_put", PathRequest)
	if err != nil {
		c.metrics.registered.WithLabelValues("error").Inc()
		return
	}
	inv.Cluster = f
}

// Settle waits, at most the look-up bound, until a client-chosen id's
// registration Admitted sent is stored, so that the chain's next step
// finds it on any replica. Call it before answering inv's first step.
func (c *Chains) Settle(inv *invocation.Invocation) {
	f, ok := inv.Cluster.(jetstream.PubAckFuture)
	inv.Cluster = nil
	if !ok {
		return
	}
	t := time.NewTimer(c.wait)
	defer t.Stop()
	select {
	case <-f.Ok():
		c.metrics.registered.WithLabelValues("stored").Inc()
	case <-f.Err():
		c.metrics.registered.WithLabelValues("error").Inc()
	case <-t.C:
		c.metrics.registered.WithLabelValues("late").Inc()
	}
}

// Replicas implements qos.Remote: the live replicas, this one included.
func (c *Chains) Replicas() int { return c.peers() }

// Step implements qos.Remote: it queues the report for the chain's origin;
// the background sends it.
func (c *Chains) Step(rc qos.RemoteChain, o qos.StepOutcome) {
	c.mu.Lock()
	b := c.outbox[rc.Origin]
	if b == nil {
		b = new(bytes.Buffer)
		c.outbox[rc.Origin] = b
	}
	appendReport(b, rc.ID, o)
	c.mu.Unlock()
}

// maxReport bounds one report message (NATS's default payload limit is
// 1 MiB).
const maxReport = 256 << 10

// flush sends the queued reports, one message per origin (more for a
// large batch).
func (c *Chains) flush() {
	c.mu.Lock()
	if len(c.outbox) == 0 {
		c.mu.Unlock()
		return
	}
	out := c.outbox
	c.outbox = map[string]*bytes.Buffer{}
	c.mu.Unlock()
	for origin, b := range out {
		data := b.Bytes()
		for len(data) > 0 {
			n := len(data)
			if n > maxReport {
				n = bytes.LastIndexByte(data[:maxReport], '\n') + 1
			}
			if err := c.e.nc.Publish(c.e.Subject("steps", origin), data[:n]); err == nil {
				c.e.Op("publish", PathBackground)
			}
			data = data[n:]
		}
	}
}

// received applies a batch of reports from another replica.
func (c *Chains) received(m *nats.Msg) {
	n := parseReports(m.Data, func(id string, o qos.StepOutcome) {
		if c.apply != nil {
			c.apply(id, o)
		}
	})
	c.metrics.reports.Add(float64(n))
}

// Reports are lines of an outcome letter and a chain id: "r<id>" ran, "f"
// failed, "d" dropped.
var outcomeLetters = [...]byte{qos.StepRan: 'r', qos.StepFailed: 'f', qos.StepDropped: 'd', qos.StepLate: 'l', qos.StepGone: 'g'}

func appendReport(b *bytes.Buffer, id string, o qos.StepOutcome) {
	if int(o) >= len(outcomeLetters) || id == "" || strings.ContainsAny(id, "\n") {
		return
	}
	b.WriteByte(outcomeLetters[o])
	b.WriteString(id)
	b.WriteByte('\n')
}

// parseReports calls fn for each well-formed report line in data and
// returns how many there were; malformed lines are skipped.
func parseReports(data []byte, fn func(id string, o qos.StepOutcome)) int {
	n := 0
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(line) < 2 || len(line) > 1+maxChainIDLen {
			continue
		}
		o := qos.StepOutcome(255)
		for i, l := range outcomeLetters {
			if line[0] == l {
				o = qos.StepOutcome(i)
			}
		}
		if o == 255 {
			continue
		}
		fn(string(line[1:]), o)
		n++
	}
	return n
}

// maxChainIDLen is the proxy's bound on a chain id.
const maxChainIDLen = 128

// chainKey is the bucket key of a client-chosen chain id: a hash, since
// ids may hold characters keys may not.
func chainKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "c." + hex.EncodeToString(sum[:16])
}

// A chain record is "<origin> <deadline, Unix ms; 0 none> <steps>".
func formatChainRecord(origin string, deadline time.Time, steps int) []byte {
	var ms int64
	if !deadline.IsZero() {
		ms = max(deadline.UnixMilli(), 1)
	}
	b := make([]byte, 0, len(origin)+24)
	b = append(b, origin...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, ms, 10)
	b = append(b, ' ')
	return strconv.AppendInt(b, int64(max(steps, 0)), 10)
}

func parseChainRecord(b []byte) (qos.RemoteChain, bool) {
	f := strings.Fields(string(b))
	if len(f) != 3 || len(f[0]) != originHex {
		return qos.RemoteChain{}, false
	}
	if _, err := hex.DecodeString(f[0]); err != nil {
		return qos.RemoteChain{}, false
	}
	ms, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || ms < 0 || ms > 1<<50 {
		return qos.RemoteChain{}, false
	}
	steps, err := strconv.Atoi(f[2])
	if err != nil || steps < 0 || steps > 1_000_000 {
		return qos.RemoteChain{}, false
	}
	rc := qos.RemoteChain{Origin: f[0], Steps: steps}
	if ms > 0 {
		rc.Deadline = time.UnixMilli(ms)
	}
	return rc, true
}

// chainMetrics counts what Chains does.
type chainMetrics struct {
	resolved   *prometheus.CounterVec
	registered *prometheus.CounterVec
	reports    prometheus.Counter
}

func newChainMetrics() *chainMetrics {
	m := &chainMetrics{
		resolved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sequoia", Subsystem: "cluster", Name: "remote_chains_total",
			Help: "Chains unknown here looked for among those other replicas admitted, by how (ticket: read from the id sequoia assigned; lookup: a client-chosen id, looked up once per chain and replica) and result (found: a continuation here; not_found: a new chain; bad: a ticket that did not verify; error: NATS did not answer in time).",
		}, []string{"via", "result"}),
		registered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "sequoia", Subsystem: "cluster", Name: "chain_registrations_total",
			Help: "Chains with client-chosen ids stored for other replicas to find, by result: stored before the first answer, late (answered before NATS acknowledged), error.",
		}, []string{"result"}),
		reports: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "sequoia", Subsystem: "cluster", Name: "step_reports_received_total",
			Help: "Reports received from other replicas of steps they ran (or dropped) of chains this replica admitted.",
		}),
	}
	// Every series from the start, at zero: dashboards and alerts find
	// them on a replica alone too.
	for _, via := range []string{"ticket", "lookup"} {
		for _, r := range []string{"found", "not_found", "bad", "error"} {
			m.resolved.WithLabelValues(via, r)
		}
	}
	for _, r := range []string{"stored", "late", "error"} {
		m.registered.WithLabelValues(r)
	}
	return m
}

func (m *chainMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.resolved, m.registered, m.reports}
}

// Collectors returns Chains' metrics.
func (c *Chains) Collectors() []prometheus.Collector { return c.metrics.collectors() }

// ChainCollectors returns Chains' metrics for a replica that has no other
// replicas' chains to know (the embedded server): every series at zero.
func ChainCollectors() []prometheus.Collector { return newChainMetrics().collectors() }

// Interface guard.
var _ qos.Remote = (*Chains)(nil)
