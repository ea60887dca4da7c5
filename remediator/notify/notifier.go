package notify

import (
	"context"
	"log/slog"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/go-openapi/strfmt"
	"github.com/prometheus/alertmanager/api/v2/models"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/selfheal/selfheal/remediator/config"
)

// The alerts the remediator posts.
const (
	// AlertFailed holds while a target's alert still fires after a heal gave up on it.
	AlertFailed = "RemediationFailed"
	// AlertDeclined holds while an alert a playbook covers is not healed, for its reason.
	AlertDeclined = "RemediationDeclined"
	// AlertSuspended holds while healing a target is suspended (its budget is spent).
	AlertSuspended = "RemediationSuspended"
	// AlertPerformed says a heal healed its target: informational, it ends by itself.
	AlertPerformed = "RemediationPerformed"
)

// Notice is one thing people should hear of: about one target, and the alert that led to it.
type Notice struct {
	// Alertname is one of the Alert* names.
	Alertname string
	// Reason is RemediationDeclined's reason (blast_radius, precondition, ...).
	Reason   string
	Target   string
	Playbook string
	// Alert is the name, severity and runbook of the alert the heal is about.
	Alert AlertRef
	// HealID links to the heal, when there is one.
	HealID  string
	Summary string
}

// AlertRef is what a notice repeats of the original alert.
type AlertRef struct {
	Name, Severity, RunbookURL string
}

// Options builds a Notifier.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// ExternalURL is where people reach the remediator; links to heals start with it.
	ExternalURL string
	// Refresh is how often holding alerts are posted again (default 1m). Their endsAt lies
	// three refreshes ahead, so the alerts of a remediator that died resolve by themselves.
	Refresh time.Duration
	// SilenceWait bounds how long a heal waits for its silence before it acts anyway
	// (default 5s).
	SilenceWait time.Duration
	// Timeout bounds one request (default 10s).
	Timeout time.Duration
	// PerformedFor is how long a RemediationPerformed alert fires (default 5m).
	PerformedFor time.Duration
	Now          func() time.Time
}

// Notifier keeps Alertmanager told: it holds the remediator's alerts and posts them until they
// end, makes and expires silences, and retries with backoff while Alertmanager is away. Its
// methods never wait on the network except Silence, which a heal calls before acting.
type Notifier struct {
	o Options
	m *metrics

	mu      sync.Mutex
	client  *Client
	current *config.Alertmanager
	alerts  map[string]*held
	// expiring holds silences to expire, with their endsAt: after it there is nothing to do.
	expiring map[string]time.Time
	// own counts the silences made and not yet expired, for remediator_alertmanager_silences.
	own map[string]bool
	// sweep, when set, is run once Alertmanager answers: it expires silences left by heals
	// that ended while the remediator was down.
	sweep func(healID string) bool
	wake  chan struct{}
}

// held is one of the remediator's alerts at Alertmanager.
type held struct {
	labels      models.LabelSet
	annotations models.LabelSet
	startsAt    time.Time
	// endsAt is zero while the alert holds (posted again every refresh), else when it ends:
	// resolved alerts are posted once more with it, then forgotten once it has passed.
	endsAt time.Time
	dirty  bool
	sent   time.Time
	// changes counts changes, so a post that raced with one does not mark it delivered.
	changes int
}

// New builds a Notifier without an Alertmanager; Configure gives it one.
func New(o Options) *Notifier {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	if o.Refresh <= 0 {
		o.Refresh = time.Minute
	}
	if o.SilenceWait <= 0 {
		o.SilenceWait = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.PerformedFor <= 0 {
		o.PerformedFor = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.ExternalURL = strings.TrimRight(o.ExternalURL, "/")
	return &Notifier{
		o: o, m: newMetrics(o.Registerer),
		alerts: map[string]*held{}, expiring: map[string]time.Time{}, own: map[string]bool{},
		wake: make(chan struct{}, 1),
	}
}

// Configure points the notifier at the configured Alertmanager, or at none (nil). An unchanged
// configuration keeps the client and its connections.
func (n *Notifier) Configure(cfg *config.Alertmanager) error {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if reflect.DeepEqual(cfg, n.current) {
		return nil
	}
	if cfg == nil {
		n.client, n.current = nil, nil
		return nil
	}
	c, err := NewClient(cfg)
	if err != nil {
		return err
	}
	n.client, n.current = c, cfg
	for _, h := range n.alerts {
		h.dirty = true // the new Alertmanager has not heard of them
	}
	n.o.Logger.Info("telling Alertmanager of heals", "url", cfg.URL)
	n.kick()
	return nil
}

// Enabled says whether an Alertmanager is configured.
func (n *Notifier) Enabled() bool {
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.client != nil
}

func (n *Notifier) kick() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// HealURL is the link to a heal in the remediator's API.
func (n *Notifier) HealURL(id string) string {
	return n.o.ExternalURL + "/api/v1/heals/" + url.PathEscape(id)
}

// Silence silences an alert while heal id acts on it, until at most endsAt, and returns the
// silence's ID; "" when no Alertmanager is configured or it could not be reached in time (the
// heal goes on: a page too many is better than no heal).
func (n *Notifier) Silence(ctx context.Context, healID, target string, labels map[string]string, endsAt time.Time) string {
	if n == nil {
		return ""
	}
	n.mu.Lock()
	c := n.client
	n.mu.Unlock()
	if c == nil {
		return ""
	}
	s := Silence{
		Labels: labels, StartsAt: n.o.Now(), EndsAt: endsAt,
		Comment: "Heal " + healID + " of " + target + " is acting on this alert; the remediator expires this silence when the heal ends. " + n.HealURL(healID),
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 200 * time.Millisecond
	id, err := backoff.Retry(ctx, func() (string, error) {
		rctx, cancel := context.WithTimeout(ctx, n.o.Timeout)
		defer cancel()
		id, err := c.CreateSilence(rctx, s)
		n.m.count(opCreateSilence, err)
		return id, err
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(n.o.SilenceWait))
	if err != nil {
		n.o.Logger.Warn("cannot silence the alert while healing; people may be paged for it", "heal", healID, "target", target, "err", err)
		return ""
	}
	n.mu.Lock()
	n.own[id] = true
	n.m.silences.Set(float64(len(n.own)))
	n.mu.Unlock()
	n.o.Logger.Info("silenced the alert while healing", "heal", healID, "target", target, "silence", id, "ends_at", endsAt)
	return id
}

// Unsilence expires silences soon, retrying until Alertmanager answers or they have ended by
// themselves (until).
func (n *Notifier) Unsilence(until time.Time, ids ...string) {
	if n == nil || len(ids) == 0 {
		return
	}
	n.mu.Lock()
	for _, id := range ids {
		n.expiring[id] = until
	}
	n.kick()
	n.mu.Unlock()
}

// Sweep asks for the silences a previous run left behind to be expired, once Alertmanager
// answers: those whose heal ended says which are left over. Silences of heals it does not
// know (another remediator's) are left alone.
func (n *Notifier) Sweep(ended func(healID string) bool) {
	if n == nil {
		return
	}
	n.mu.Lock()
	n.sweep = ended
	n.kick()
	n.mu.Unlock()
}

var healInComment = regexp.MustCompile(`^Heal (\S+) `)

// Raise makes a notice hold (posted now and refreshed) until End or EndTarget ends it. A
// RemediationPerformed notice ends by itself. A notice for the same alert, target and playbook
// with other labels (another reason) replaces the old one, which is resolved.
func (n *Notifier) Raise(nt Notice) {
	if n == nil {
		return
	}
	now := n.o.Now()
	labels := nt.labels()
	ann := n.annotations(nt)
	k := key(nt.Alertname, nt.Target, nt.Playbook, nt.Alert.Name)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.client == nil {
		return
	}
	if h, ok := n.alerts[k]; ok && h.endsAt.IsZero() {
		if reflect.DeepEqual(h.labels, labels) {
			if !reflect.DeepEqual(h.annotations, ann) {
				h.annotations, h.dirty = ann, true
				h.changes++
				n.kick()
			}
			return
		}
		h.endsAt, h.dirty = now, true
		h.changes++
		n.alerts[k+"\x00ended\x00"+now.String()] = h
	}
	h := &held{labels: labels, annotations: ann, startsAt: now, dirty: true}
	if nt.Alertname == AlertPerformed {
		h.endsAt = now.Add(n.o.PerformedFor)
	}
	n.alerts[k] = h
	n.count(now)
	n.kick()
}

// End resolves the holding notices about the target that match: of one alert name (all when
// ""), for one original alert (all when "").
func (n *Notifier) End(alertname, target, original string) {
	if n == nil {
		return
	}
	now := n.o.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.alerts {
		l := h.labels
		if !h.endsAt.IsZero() || l["target"] != target || (alertname != "" && l["alertname"] != alertname) ||
			(original != "" && l["original_alertname"] != original) || l["alertname"] == AlertPerformed {
			continue
		}
		h.endsAt, h.dirty = now, true
		h.changes++
		n.kick()
	}
	n.count(now)
}

// count sets remediator_alertmanager_alerts from what holds. Lock held.
func (n *Notifier) count(now time.Time) {
	by := map[string]int{}
	for _, h := range n.alerts {
		if h.endsAt.IsZero() || now.Before(h.endsAt) {
			by[h.labels["alertname"]]++
		}
	}
	for _, name := range alertnames {
		n.m.alerts.WithLabelValues(name).Set(float64(by[name]))
	}
}

func key(parts ...string) string { return strings.Join(parts, "\x00") }

// labels are the notice's identity at Alertmanager. Values from the alert (target, names) are
// data in a JSON document: nothing parses them. Empty ones are left out, as Alertmanager treats
// an empty label as absent.
func (nt Notice) labels() models.LabelSet {
	severity := nt.Alert.Severity
	if nt.Alertname == AlertPerformed {
		severity = "info"
	}
	ls := models.LabelSet{}
	for k, v := range map[string]string{
		"alertname": nt.Alertname, "target": nt.Target, "playbook": nt.Playbook, "reason": nt.Reason,
		"original_alertname": nt.Alert.Name, "original_severity": nt.Alert.Severity, "severity": severity,
	} {
		if v != "" {
			ls[k] = v
		}
	}
	return ls
}

func (n *Notifier) annotations(nt Notice) models.LabelSet {
	a := models.LabelSet{"summary": nt.Summary}
	if nt.Alert.RunbookURL != "" {
		a["runbook_url"] = nt.Alert.RunbookURL
	}
	if nt.HealID != "" {
		a["heal_url"] = n.HealURL(nt.HealID)
	}
	return a
}

// Run delivers until ctx ends: holding alerts every refresh, changes at once, and after a
// failure again with exponential backoff.
func (n *Notifier) Run(ctx context.Context) {
	if n == nil {
		return
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = time.Second, n.o.Refresh
	var retryAt time.Time
	for {
		wait := n.o.Refresh
		if now := n.o.Now(); now.Before(retryAt) {
			wait = retryAt.Sub(now)
		} else if n.deliver(ctx) {
			b.Reset()
			retryAt = time.Time{}
		} else {
			wait = b.NextBackOff()
			retryAt = n.o.Now().Add(wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-n.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// deliver does one round of what is due and reports whether all of it succeeded.
func (n *Notifier) deliver(ctx context.Context) bool {
	n.mu.Lock()
	c := n.client
	if c == nil {
		n.mu.Unlock()
		return true
	}
	now := n.o.Now()
	var posts models.PostableAlerts
	type post struct {
		h       *held
		changes int
	}
	var sent []post
	for k, h := range n.alerts {
		if !h.endsAt.IsZero() && !h.dirty && !now.Before(h.endsAt) {
			delete(n.alerts, k)
			continue
		}
		if !h.dirty && (!h.endsAt.IsZero() || now.Sub(h.sent) < n.o.Refresh) {
			continue
		}
		ends := h.endsAt
		if ends.IsZero() {
			ends = now.Add(3 * n.o.Refresh)
		}
		posts = append(posts, &models.PostableAlert{
			Alert:       models.Alert{Labels: h.labels},
			Annotations: h.annotations,
			StartsAt:    strfmt.DateTime(h.startsAt),
			EndsAt:      strfmt.DateTime(ends),
		})
		sent = append(sent, post{h, h.changes})
	}
	expiring := make(map[string]time.Time, len(n.expiring))
	for id, until := range n.expiring {
		if now.After(until) {
			delete(n.expiring, id) // ended by itself
			delete(n.own, id)
			continue
		}
		expiring[id] = until
	}
	sweep := n.sweep
	n.m.silences.Set(float64(len(n.own)))
	n.count(now)
	n.mu.Unlock()

	ok := true
	if len(posts) > 0 {
		rctx, cancel := context.WithTimeout(ctx, n.o.Timeout)
		err := c.PostAlerts(rctx, posts)
		cancel()
		n.m.count(opPostAlerts, err)
		if err != nil {
			ok = false
			n.o.Logger.Warn("cannot post alerts to Alertmanager; retrying", "alerts", len(posts), "err", err)
		} else {
			n.mu.Lock()
			for _, s := range sent {
				s.h.sent = now
				if s.h.changes == s.changes {
					s.h.dirty = false
				}
			}
			n.mu.Unlock()
		}
	}
	for id := range expiring {
		rctx, cancel := context.WithTimeout(ctx, n.o.Timeout)
		err := c.ExpireSilence(rctx, id)
		cancel()
		n.m.count(opExpireSilence, err)
		if err != nil {
			ok = false
			n.o.Logger.Warn("cannot expire a silence; retrying", "silence", id, "err", err)
			continue
		}
		n.o.Logger.Info("expired the silence of a heal that ended", "silence", id)
		n.mu.Lock()
		delete(n.expiring, id)
		delete(n.own, id)
		n.m.silences.Set(float64(len(n.own)))
		n.mu.Unlock()
	}
	if sweep != nil {
		if err := n.runSweep(ctx, c, sweep); err != nil {
			ok = false
			n.o.Logger.Warn("cannot list silences left by a previous run; retrying", "err", err)
		}
	}
	return ok
}

// runSweep queues for expiry the remediator's silences whose heal has ended.
func (n *Notifier) runSweep(ctx context.Context, c *Client, ended func(string) bool) error {
	rctx, cancel := context.WithTimeout(ctx, n.o.Timeout)
	own, err := c.OwnSilences(rctx)
	cancel()
	n.m.count(opListSilences, err)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sweep = nil
	for _, s := range own {
		m := healInComment.FindStringSubmatch(s.Comment)
		if m == nil || !ended(m[1]) {
			continue
		}
		n.o.Logger.Info("expiring a silence left by a heal that ended", "silence", s.ID, "heal", m[1])
		n.expiring[s.ID] = s.EndsAt
		n.kick()
	}
	return nil
}
