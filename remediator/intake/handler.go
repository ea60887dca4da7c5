package intake

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/selfheal/selfheal/remediator/store"
)

// DefaultMaxBodyBytes bounds a notification. Alertmanager's max_alerts keeps real ones far
// smaller.
const DefaultMaxBodyBytes = 1 << 20

// Options builds a Handler.
type Options struct {
	Store *store.Store
	// Submit receives the newly accepted alerts after they are durably recorded.
	Submit func([]store.InboxEntry)
	// Alerts is remediator_alerts_total{outcome}, shared with the pipeline.
	Alerts       *prometheus.CounterVec
	Registerer   prometheus.Registerer
	Logger       *slog.Logger
	Auth         *Auth
	MaxBodyBytes int64
	Now          func() time.Time
}

// Handler serves POST /webhook.
type Handler struct {
	o             Options
	notifications *prometheus.CounterVec
	rejected      *prometheus.CounterVec
	duration      prometheus.Histogram
	truncated     prometheus.Counter
}

// Rejection reasons, the values of remediator_notifications_rejected_total{reason}.
var rejectionReasons = []string{"method", "unauthorized", "content_type", "too_large", "malformed", "version", "no_usable_alerts", "store"}

// New builds the webhook handler.
func New(o Options) *Handler {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.NewRegistry()
	}
	f := promauto.With(o.Registerer)
	h := &Handler{
		o: o,
		notifications: f.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_notifications_total", Help: "Webhook notifications received, by outcome.",
		}, []string{"outcome"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "remediator_notifications_rejected_total", Help: "Webhook notifications rejected, by reason.",
		}, []string{"reason"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "remediator_webhook_request_duration_seconds",
			Help:    "Time to validate, durably record and answer a webhook notification.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
		}),
		// A counter, not only a log line: an alert rule must see that alerts never reached the
		// remediator.
		truncated: f.NewCounter(prometheus.CounterOpts{
			Name: "remediator_notifications_truncated_alerts_total",
			Help: "Alerts Alertmanager left out of notifications to the remediator (max_alerts); they are never healed.",
		}),
	}
	h.notifications.WithLabelValues("accepted")
	h.notifications.WithLabelValues("rejected")
	for _, r := range rejectionReasons {
		h.rejected.WithLabelValues(r)
	}
	return h
}

// Result is the 202 body.
type Result struct {
	Status       string   `json:"status"`
	Accepted     int      `json:"accepted"`
	Resolved     int      `json:"resolved"`
	Deduplicated int      `json:"deduplicated"`
	Rejected     int      `json:"rejected"`
	Errors       []string `json:"errors,omitempty"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { h.duration.Observe(time.Since(start).Seconds()) }()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, http.StatusMethodNotAllowed, "method", "only POST is allowed")
		return
	}
	if !h.o.Auth.Allow(r) {
		h.o.Auth.Challenge(w)
		h.reject(w, http.StatusUnauthorized, "unauthorized", "missing or invalid credentials")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.reject(w, http.StatusUnsupportedMediaType, "content_type", "content type must be application/json")
		return
	}
	if r.ContentLength > h.o.MaxBodyBytes {
		h.reject(w, http.StatusRequestEntityTooLarge, "too_large", "body larger than the configured limit")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			h.reject(w, http.StatusRequestEntityTooLarge, "too_large", "body larger than the configured limit")
			return
		}
		h.reject(w, http.StatusBadRequest, "malformed", "reading body: "+err.Error())
		return
	}
	msg, err := Decode(body)
	if err != nil {
		reason := "malformed"
		if errors.Is(err, ErrVersion) {
			reason = "version"
		}
		h.reject(w, http.StatusBadRequest, reason, err.Error())
		return
	}
	entries, bad := Entries(msg, h.o.Now())
	res := Result{Status: "accepted", Rejected: len(bad)}
	for _, e := range bad {
		res.Errors = append(res.Errors, e.Error())
	}
	h.o.Alerts.WithLabelValues("rejected").Add(float64(len(bad)))
	if len(entries) == 0 {
		msgText := "notification has no alerts"
		if len(bad) > 0 {
			msgText = "no usable alert: " + bad[0].Error()
		}
		h.reject(w, http.StatusBadRequest, "no_usable_alerts", msgText)
		return
	}
	if msg.TruncatedAlerts > 0 {
		h.truncated.Add(float64(msg.TruncatedAlerts))
		h.o.Logger.Warn("Alertmanager truncated the notification; raise max_alerts for the remediator receiver",
			"group_key", msg.GroupKey, "truncated_alerts", msg.TruncatedAlerts)
	}
	// Durable before 2xx: Alertmanager does not re-send what it saw accepted.
	fresh, err := h.o.Store.Accept(entries)
	if err != nil {
		h.o.Logger.Error("cannot record alerts; Alertmanager will retry", "err", err)
		h.reject(w, http.StatusInternalServerError, "store", "cannot record alerts")
		return
	}
	var accepted []store.InboxEntry
	for i, e := range entries {
		switch {
		case !fresh[i]:
			res.Deduplicated++
			h.o.Alerts.WithLabelValues("deduplicated").Inc()
		case e.Resolved:
			res.Resolved++
			h.o.Alerts.WithLabelValues("resolved").Inc()
			accepted = append(accepted, e)
		default:
			res.Accepted++
			h.o.Alerts.WithLabelValues("accepted").Inc()
			accepted = append(accepted, e)
		}
	}
	h.o.Submit(accepted)
	h.notifications.WithLabelValues("accepted").Inc()
	h.o.Logger.Debug("notification accepted", "group_key", msg.GroupKey, "receiver", msg.Receiver,
		"accepted", res.Accepted, "resolved", res.Resolved, "deduplicated", res.Deduplicated, "rejected", res.Rejected)
	writeJSON(w, http.StatusAccepted, res)
}

func (h *Handler) reject(w http.ResponseWriter, status int, reason, msg string) {
	h.notifications.WithLabelValues("rejected").Inc()
	h.rejected.WithLabelValues(reason).Inc()
	WriteError(w, status, msg)
}

// WriteError writes {"error": msg}.
func WriteError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
