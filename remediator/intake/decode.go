// Package intake receives Alertmanager's webhook notifications: it authenticates and validates
// them, records their alerts durably, answers 202, and hands the alerts to the pipeline.
package intake

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// Message is Alertmanager's webhook payload (version 4): the template data plus the fields the
// webhook notifier adds.
type Message struct {
	*template.Data
	Version         string `json:"version"`
	GroupKey        string `json:"groupKey"`
	TruncatedAlerts uint64 `json:"truncatedAlerts"`
}

// ErrVersion is returned for a payload version other than 4.
var ErrVersion = errors.New("unsupported notification version")

// Decode parses and checks a notification body. json.Unmarshal, not a Decoder: the body is
// read whole already, and a Decoder copies it again and allocates twice as much (the webhook's
// largest cost after the disk).
func Decode(body []byte) (*Message, error) {
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) && strings.HasSuffix(syntax.Error(), "after top-level value") {
			return nil, errors.New("malformed JSON: trailing data after the notification")
		}
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if m.Data == nil {
		return nil, errors.New("malformed notification: empty")
	}
	if m.Version != "4" {
		return nil, fmt.Errorf("%w %q, want \"4\"", ErrVersion, m.Version)
	}
	return &m, nil
}

// maxLabelValue bounds one label; Prometheus labels this long are a mistake or an attack.
const maxLabelValue = 4096

// Entries turns the notification's usable alerts into inbox entries and says why each unusable
// one was rejected; one bad alert never spoils the others.
func Entries(m *Message, now time.Time) ([]store.InboxEntry, []error) {
	var out []store.InboxEntry
	var errs []error
	for i, a := range m.Alerts {
		if err := checkAlert(&a); err != nil {
			errs = append(errs, fmt.Errorf("alert %d: %w", i, err))
			continue
		}
		ep := verify.EpisodeKey(a)
		key := ep
		resolved := a.Status == string(model.AlertResolved)
		if resolved {
			key += "|resolved"
		}
		out = append(out, store.InboxEntry{
			Key: key, EpisodeKey: ep, Resolved: resolved, Alert: a,
			Receiver: m.Receiver, GroupKey: m.GroupKey, ReceivedAt: now,
		})
	}
	return out, errs
}

// checkAlert validates an alert and fills its fingerprint from its labels when missing.
func checkAlert(a *template.Alert) error {
	if a.Status != string(model.AlertFiring) && a.Status != string(model.AlertResolved) {
		return fmt.Errorf("status %q is neither firing nor resolved", a.Status)
	}
	if a.Labels["alertname"] == "" {
		return errors.New("no alertname label")
	}
	ls := model.LabelSet{}
	for k, v := range a.Labels {
		// Alertmanager accepts UTF-8 label names since 0.27; so do we.
		if !model.UTF8Validation.IsValidLabelName(k) {
			return fmt.Errorf("invalid label name %q", k)
		}
		if !utf8.ValidString(v) || len(v) > maxLabelValue {
			return fmt.Errorf("label %s: value invalid or longer than %d bytes", k, maxLabelValue)
		}
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	if a.StartsAt.IsZero() {
		return errors.New("no startsAt")
	}
	if a.Fingerprint == "" {
		a.Fingerprint = ls.Fingerprint().String()
	} else if len(a.Fingerprint) > 64 {
		return errors.New("fingerprint longer than 64 characters")
	}
	return nil
}
