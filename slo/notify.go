package slo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
)

// Message is a webhook notification in Alertmanager's format (version
// 4), so that whatever receives Alertmanager's webhooks receives sequoia's:
// one message per objective (the group) whenever the set of its firing
// alerts changes, listing the firing alerts and those that stopped since
// the last message.
type Message struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
	Status            string            `json:"status"` // firing or resolved
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert of a Message. Its fingerprint is Alertmanager's (the
// hash of its labels): with StartsAt it identifies the alert, so that a
// receiver can drop a message it already had (a retry whose first answer
// was lost).
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// NotifierConfig configures a Notifier.
type NotifierConfig struct {
	URL string
	// Receiver is the message's receiver; ExternalURL where its alerts
	// are seen (sequoia's /sequoia/v1/status).
	Receiver, ExternalURL string
	// Repeat sends a group's firing alerts again after this long without
	// a change (Alertmanager's repeat_interval); 0: never.
	Repeat time.Duration
	// Timeout bounds one delivery attempt; Backoff is the wait after the
	// first failed attempt, doubled after each up to MaxBackoff.
	Timeout, Backoff, MaxBackoff time.Duration
	Now                          func() time.Time // the alerts' clock; nil: time.Now
	Log                          *slog.Logger
	// Labels are added to every alert (the cluster, the replica).
	Labels map[string]string
}

// Notifier sends objectives' alerts to a webhook: deduplicated (one
// message per change of a group's firing alerts, a newer message replacing
// one not yet delivered) and retried with exponential backoff until
// delivered, replaced or the notifier closes.
type Notifier struct {
	cfg    NotifierConfig
	client *http.Client
	labels map[string]Objective // slo name → objective, for labels

	mu     sync.Mutex
	groups map[string]*group // REQUIRES: mu
	wake   chan struct{}
	stop   chan struct{}
	done   chan struct{}

	delivered, failed, superseded atomic.Int64
}

// group is one objective's alerts.
type group struct {
	firing   map[string]time.Time // alert name → started
	resolved []Alert              // stopped, not yet in a delivered message
	told     string               // the firing set last enqueued
	lastSent time.Time            // when it was last enqueued
	pending  *Message
	inflight *Message // being posted (the sender's)
	attempts int
	next     time.Time // when the pending message may be tried (real time)
}

// NewNotifier starts a notifier for the objectives objs.
func NewNotifier(cfg NotifierConfig, objs []Objective) *Notifier {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff < cfg.Backoff {
		cfg.MaxBackoff = max(cfg.Backoff, time.Minute)
	}
	if cfg.Receiver == "" {
		cfg.Receiver = "sequoia"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, labels: map[string]Objective{},
		groups: map[string]*group{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	for _, o := range objs {
		n.labels[o.Name] = o
	}
	go n.run()
	return n
}

// SetObjectives makes objs the objectives notified about: an objective no
// longer among them has its firing alerts sent as resolved.
func (n *Notifier) SetObjectives(objs []Objective) {
	declared := map[string]bool{}
	for _, o := range objs {
		declared[o.Name] = true
	}
	var gone []State
	n.mu.Lock()
	for name, g := range n.groups {
		if o, ok := n.labels[name]; ok && !declared[name] && len(g.firing) > 0 {
			gone = append(gone, State{Name: name, Kind: o.Kind, Target: o.Target, Window: o.windowString()})
		}
	}
	n.mu.Unlock()
	n.Update(gone) // resolves their alerts, with the labels they had
	n.mu.Lock()
	defer n.mu.Unlock()
	n.labels = make(map[string]Objective, len(objs))
	for _, o := range objs {
		n.labels[o.Name] = o
	}
}

// Close stops the notifier; a message not yet delivered is dropped.
func (n *Notifier) Close() {
	close(n.stop)
	<-n.done
}

// Stats counts messages delivered, delivery attempts that failed, and
// messages replaced by a newer one before delivery.
func (n *Notifier) Stats() (delivered, failed, superseded int64) {
	return n.delivered.Load(), n.failed.Load(), n.superseded.Load()
}

// Update takes the states of an evaluation (the Tracker's Notify) and
// enqueues a message for each objective whose firing alerts changed, or
// that has fired for Repeat since its last message.
func (n *Notifier) Update(states []State) {
	now := n.cfg.Now()
	n.mu.Lock()
	queued := false
	for _, st := range states {
		g := n.groups[st.Name]
		if g == nil {
			g = &group{firing: map[string]time.Time{}}
			n.groups[st.Name] = g
		}
		firing := map[string]bool{}
		for _, a := range st.Alerts {
			firing[a] = true
			if _, ok := g.firing[a]; !ok {
				g.firing[a] = now
				g.resolved = slices.DeleteFunc(g.resolved, func(r Alert) bool { return r.Labels["alertname"] == a })
			}
		}
		for a, started := range g.firing {
			if !firing[a] {
				delete(g.firing, a)
				al := n.alert(st, a, started)
				al.Status, al.EndsAt = "resolved", now
				g.resolved = append(g.resolved, al)
			}
		}
		set := strings.Join(st.Alerts, ",")
		repeat := n.cfg.Repeat > 0 && len(g.firing) > 0 && g.pending == nil && now.Sub(g.lastSent) >= n.cfg.Repeat
		if set == g.told && !repeat {
			continue
		}
		if g.pending != nil && g.pending != g.inflight {
			n.superseded.Add(1)
		}
		g.told, g.lastSent = set, now
		g.pending, g.attempts, g.next = n.message(st, g), 0, time.Time{}
		queued = true
	}
	n.mu.Unlock()
	if queued {
		select {
		case n.wake <- struct{}{}:
		default:
		}
	}
}

// alert is the alert name of objective st, started at started.
func (n *Notifier) alert(st State, name string, started time.Time) Alert {
	o := n.labels[st.Name]
	labels := map[string]string{"alertname": name, "slo": st.Name, "kind": string(st.Kind)}
	for k, v := range n.cfg.Labels {
		labels[k] = v
	}
	for k, v := range o.Labels {
		labels[k] = v
	}
	for k, v := range map[string]string{"function": o.Function, "tenant": o.Tenant, "class": o.Class} {
		if v != "" {
			labels[k] = v
		}
	}
	// The workbook's page is critical, its ticket a warning, as in the
	// shipped rules.
	sev := "critical"
	summary := fmt.Sprintf("SLO %s burns its error budget fast", st.Name)
	switch name {
	case AlertSlowBurn:
		sev, summary = "warning", fmt.Sprintf("SLO %s burns its error budget", st.Name)
	case AlertBudgetExhausted:
		summary = fmt.Sprintf("SLO %s is breached: its error budget over %s is spent", st.Name, st.Window)
	}
	labels["severity"] = sev
	return Alert{
		Status: "firing", Labels: labels, StartsAt: started,
		Annotations: map[string]string{
			"summary": summary,
			"description": fmt.Sprintf("%s objective %s (target %.4g over %s): SLI %.4g over %d events, %.1f%% of the error budget left.",
				st.Kind, st.Name, st.Target, st.Window, st.SLI, st.Events, 100*st.BudgetRemaining),
		},
		GeneratorURL: n.cfg.ExternalURL,
		Fingerprint:  model.LabelSet(toLabelSet(labels)).Fingerprint().String(),
	}
}

func toLabelSet(m map[string]string) model.LabelSet {
	ls := make(model.LabelSet, len(m))
	for k, v := range m {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	return ls
}

// message is the group's message now.
// REQUIRES: n.mu
func (n *Notifier) message(st State, g *group) *Message {
	m := &Message{Version: "4", GroupKey: fmt.Sprintf(`{}:{slo=%q}`, st.Name), Receiver: n.cfg.Receiver,
		GroupLabels: map[string]string{"slo": st.Name}, ExternalURL: n.cfg.ExternalURL, Status: "resolved"}
	for _, name := range slices.Sorted(maps.Keys(g.firing)) {
		m.Alerts = append(m.Alerts, n.alert(st, name, g.firing[name]))
		m.Status = "firing"
	}
	for _, r := range g.resolved {
		// A message being posted tells its resolutions; if it fails,
		// settle hands them to this one.
		if g.inflight == nil || !hasAlert(g.inflight, r) {
			m.Alerts = append(m.Alerts, r)
		}
	}
	m.CommonLabels, m.CommonAnnotations = common(m.Alerts, func(a Alert) map[string]string { return a.Labels }),
		common(m.Alerts, func(a Alert) map[string]string { return a.Annotations })
	return m
}

// common is what every alert has alike, as Alertmanager computes it.
func common(alerts []Alert, of func(Alert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(alerts) == 0 {
		return out
	}
	for k, v := range of(alerts[0]) {
		out[k] = v
	}
	for _, a := range alerts[1:] {
		m := of(a)
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

// run delivers pending messages, retrying failed ones after their
// backoff.
func (n *Notifier) run() {
	defer close(n.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		n.mu.Lock()
		var name string
		var msg *Message
		wait := time.Hour
		now := time.Now()
		for _, k := range slices.Sorted(maps.Keys(n.groups)) {
			g := n.groups[k]
			if g.pending == nil {
				continue
			}
			if d := g.next.Sub(now); d > 0 {
				wait = min(wait, d)
				continue
			}
			name, msg = k, g.pending
			g.inflight = msg
			break
		}
		n.mu.Unlock()
		if msg != nil {
			err := n.post(msg)
			n.settle(name, msg, err)
			continue
		}
		timer.Reset(wait)
		select {
		case <-n.stop:
			return
		case <-n.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// settle records a delivery attempt of group name's message msg.
func (n *Notifier) settle(name string, msg *Message, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	g := n.groups[name]
	g.inflight = nil
	if err == nil {
		n.delivered.Add(1)
		if g.pending == msg {
			g.pending = nil
		}
		// The resolutions it carried are told.
		for _, a := range msg.Alerts {
			if a.Status == "resolved" {
				g.resolved = slices.DeleteFunc(g.resolved, func(r Alert) bool {
					return r.Fingerprint == a.Fingerprint && r.EndsAt.Equal(a.EndsAt)
				})
			}
		}
		return
	}
	n.failed.Add(1)
	n.cfg.Log.Warn("slo webhook delivery failed; retrying", "slo", name, "err", err)
	if g.pending != msg {
		// Replaced meanwhile: the newer one is tried at once, and
		// carries the resolutions this one failed to tell.
		if g.pending != nil {
			for _, a := range msg.Alerts {
				if a.Status == "resolved" && !hasAlert(g.pending, a) {
					g.pending.Alerts = append(g.pending.Alerts, a)
				}
			}
			g.pending.CommonLabels = common(g.pending.Alerts, func(a Alert) map[string]string { return a.Labels })
			g.pending.CommonAnnotations = common(g.pending.Alerts, func(a Alert) map[string]string { return a.Annotations })
		}
		return
	}
	g.attempts++
	d := n.cfg.Backoff << min(g.attempts-1, 20)
	g.next = time.Now().Add(min(d, n.cfg.MaxBackoff))
}

// post sends one message; any answer but a 2xx is a failure.
func (n *Notifier) post(m *Message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.cfg.URL, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sequoia")
	resp, err := n.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return errors.New("webhook answered " + resp.Status)
	}
	return nil
}

// hasAlert reports whether m holds the alert a (same fingerprint, status
// and end).
func hasAlert(m *Message, a Alert) bool {
	for _, x := range m.Alerts {
		if x.Fingerprint == a.Fingerprint && x.Status == a.Status && x.EndsAt.Equal(a.EndsAt) {
			return true
		}
	}
	return false
}
