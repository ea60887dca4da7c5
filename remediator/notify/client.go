package notify

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"

	httptransport "github.com/go-openapi/runtime/client"
	"github.com/go-openapi/strfmt"
	amclient "github.com/prometheus/alertmanager/api/v2/client"
	"github.com/prometheus/alertmanager/api/v2/client/alert"
	"github.com/prometheus/alertmanager/api/v2/client/silence"
	"github.com/prometheus/alertmanager/api/v2/models"
	commoncfg "github.com/prometheus/common/config"

	"github.com/selfheal/selfheal/remediator/config"
)

// CreatedBy is the author of every silence the remediator makes; it finds its own silences
// again by it.
const CreatedBy = "remediator"

// Client talks to one Alertmanager through its API v2 client.
type Client struct {
	api *amclient.AlertmanagerAPI
	url string
}

// NewClient builds a client from the playbooks file's global.alertmanager.
func NewClient(cfg *config.Alertmanager) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("alertmanager url %q must be an http:// or https:// URL with a host", cfg.URL)
	}
	rt, err := commoncfg.NewRoundTripperFromConfig(cfg.HTTPConfig, "alertmanager")
	if err != nil {
		return nil, fmt.Errorf("alertmanager http_config: %w", err)
	}
	tr := httptransport.NewWithClient(u.Host, path.Join("/", u.Path, amclient.DefaultBasePath), []string{u.Scheme}, &http.Client{Transport: rt})
	return &Client{api: amclient.New(tr, strfmt.Default), url: cfg.URL}, nil
}

// URL is the Alertmanager the client talks to.
func (c *Client) URL() string { return c.url }

// Silence is what the remediator asks Alertmanager to keep quiet.
type Silence struct {
	// Labels are the alert's identifying labels. Each becomes an equality matcher: the values
	// come from the alert and are untrusted, so they are sent as data, never as matcher text
	// or regular expressions.
	Labels   map[string]string
	StartsAt time.Time
	EndsAt   time.Time
	Comment  string
}

// matchers turns labels into equality matchers in a stable order. Empty values are left out:
// a matcher on an empty value would match alerts that lack the label.
func matchers(labels map[string]string) models.Matchers {
	names := make([]string, 0, len(labels))
	for n, v := range labels {
		if v != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := make(models.Matchers, 0, len(names))
	for _, n := range names {
		name, value := n, labels[n]
		out = append(out, &models.Matcher{Name: &name, Value: &value, IsEqual: ptr(true), IsRegex: ptr(false)})
	}
	return out
}

// CreateSilence creates the silence and returns its ID.
func (c *Client) CreateSilence(ctx context.Context, s Silence) (string, error) {
	ms := matchers(s.Labels)
	if len(ms) == 0 {
		return "", errors.New("the alert has no labels to silence it by")
	}
	starts, ends := strfmt.DateTime(s.StartsAt), strfmt.DateTime(s.EndsAt)
	params := silence.NewPostSilencesParamsWithContext(ctx).WithSilence(&models.PostableSilence{
		Silence: models.Silence{
			Matchers: ms, StartsAt: &starts, EndsAt: &ends,
			CreatedBy: ptr(CreatedBy), Comment: ptr(s.Comment),
		},
	})
	ok, err := c.api.Silence.PostSilences(params)
	if err != nil {
		return "", describe("create silence", err)
	}
	if ok.Payload == nil || ok.Payload.SilenceID == "" {
		return "", errors.New("create silence: Alertmanager returned no silence ID")
	}
	return ok.Payload.SilenceID, nil
}

// ExpireSilence ends a silence now. A silence that is gone or already expired is no error:
// what was asked for holds.
func (c *Client) ExpireSilence(ctx context.Context, id string) error {
	_, err := c.api.Silence.DeleteSilence(silence.NewDeleteSilenceParamsWithContext(ctx).WithSilenceID(strfmt.UUID(id)))
	var notFound *silence.DeleteSilenceNotFound
	var failed *silence.DeleteSilenceInternalServerError
	switch {
	case err == nil, errors.As(err, &notFound):
		return nil
	case errors.As(err, &failed) && strings.Contains(failed.Payload, "already expired"):
		return nil
	}
	return describe("expire silence "+id, err)
}

// OwnSilence is a silence the remediator made that is still active or pending.
type OwnSilence struct {
	ID      string
	Comment string
	EndsAt  time.Time
}

// OwnSilences lists the active and pending silences whose author is the remediator.
func (c *Client) OwnSilences(ctx context.Context) ([]OwnSilence, error) {
	ok, err := c.api.Silence.GetSilences(silence.NewGetSilencesParamsWithContext(ctx))
	if err != nil {
		return nil, describe("list silences", err)
	}
	var out []OwnSilence
	for _, s := range ok.Payload {
		if s == nil || s.ID == nil || s.CreatedBy == nil || *s.CreatedBy != CreatedBy {
			continue
		}
		if s.Status != nil && s.Status.State != nil && *s.Status.State == models.SilenceStatusStateExpired {
			continue
		}
		o := OwnSilence{ID: *s.ID}
		if s.Comment != nil {
			o.Comment = *s.Comment
		}
		if s.EndsAt != nil {
			o.EndsAt = time.Time(*s.EndsAt)
		}
		out = append(out, o)
	}
	return out, nil
}

// PostAlerts sends alerts to Alertmanager: firing ones with an endsAt ahead, resolved ones with
// an endsAt now or past.
func (c *Client) PostAlerts(ctx context.Context, alerts models.PostableAlerts) error {
	if len(alerts) == 0 {
		return nil
	}
	_, err := c.api.Alert.PostAlerts(alert.NewPostAlertsParamsWithContext(ctx).WithAlerts(alerts))
	return describe("post alerts", err)
}

// describe makes the generated client's errors readable: its response types print only a
// status code, while Alertmanager says why in the payload.
func describe(op string, err error) error {
	var sbad *silence.PostSilencesBadRequest
	var abad *alert.PostAlertsBadRequest
	var aerr *alert.PostAlertsInternalServerError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &sbad):
		return fmt.Errorf("%s: Alertmanager refused the silence: %s", op, sbad.Payload)
	case errors.As(err, &abad):
		return fmt.Errorf("%s: Alertmanager refused the alerts: %s", op, abad.Payload)
	case errors.As(err, &aerr):
		return fmt.Errorf("%s: Alertmanager failed: %s", op, aerr.Payload)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func ptr[T any](v T) *T { return &v }
