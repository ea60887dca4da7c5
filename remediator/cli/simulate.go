package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/intake"
	"github.com/selfheal/selfheal/remediator/pipeline"
	"github.com/selfheal/selfheal/remediator/store"
	"github.com/selfheal/selfheal/remediator/verify"
)

// simulateCommand is `remediator simulate`: the playbooks' decision for recorded notifications,
// without a remediator process and without acting.
type simulateCommand struct {
	cmd      *kingpin.CmdClause
	shared   Shared
	payloads *[]string
	state    *string
	at       *string
}

func registerSimulate(app *kingpin.Application, shared Shared) *simulateCommand {
	s := &simulateCommand{shared: shared}
	s.cmd = app.Command("simulate", "Say what the playbooks (--config.file) would do with Alertmanager notifications (webhook v4 JSON), acting on nothing.")
	s.state = s.cmd.Flag("state", "A running remediator whose targets (cooldowns, budgets, pauses) the simulation starts from, e.g. http://127.0.0.1:9096.").String()
	s.at = s.cmd.Flag("at", "Decide as at this time (RFC 3339), e.g. for time windows; default now.").String()
	s.payloads = s.cmd.Arg("payload", "Notification files, as Alertmanager posts them to a webhook.").Required().ExistingFiles()
	return s
}

// simulatedPayload is the simulation of one notification file.
type simulatedPayload struct {
	File        string                `json:"file"`
	Simulations []pipeline.Simulation `json:"simulations"`
}

func (s *simulateCommand) run(ctx context.Context, c *Commands) error {
	now := time.Now()
	if *s.at != "" {
		t, err := time.Parse(time.RFC3339, *s.at)
		if err != nil {
			return fmt.Errorf("--at %q: want a time such as 2026-01-31T03:00:00Z", *s.at)
		}
		now = t
	}
	cfg, err := config.LoadWithOptions(*s.shared.ConfigFile, config.Options{PrometheusURL: *s.shared.PrometheusURL})
	if err != nil {
		return err
	}
	var q verify.Querier
	if cfg.Global.PrometheusURL != "" {
		if q, err = verify.NewPrometheusWithConfig(cfg.Global.PrometheusURL, cfg.Global.Prometheus.HTTPConfig); err != nil {
			return err
		}
	}
	entries := make([][]store.InboxEntry, len(*s.payloads))
	for i, file := range *s.payloads {
		if entries[i], err = readPayload(file, now); err != nil {
			return err
		}
	}
	var state pipeline.SimulationState
	if *s.state != "" {
		cl, err := NewClient(*s.state, *c.tokenFile, *c.timeout)
		if err != nil {
			return fmt.Errorf("--state: %w", err)
		}
		if err := cl.do(ctx, "GET", "/api/v1/targets?all=true", nil, &state); err != nil {
			return fmt.Errorf("--state: %w", err)
		}
	}
	// One simulation over all files, in order: what the first notification notes (a firing
	// alert, the blast radius) counts for the next, as in the remediator.
	var all []store.InboxEntry
	for _, e := range entries {
		all = append(all, e...)
	}
	sims := pipeline.SimulateOffline(ctx, cfg, state, q, now, all)
	out := make([]simulatedPayload, len(entries))
	for i, e := range entries {
		out[i] = simulatedPayload{File: (*s.payloads)[i], Simulations: sims[:len(e)]}
		sims = sims[len(e):]
	}
	if c.json() {
		return writeJSON(c.Stdout, out)
	}
	for _, p := range out {
		for _, sim := range p.Simulations {
			writeSimulation(c.Stdout, p.File, sim)
		}
	}
	return nil
}

// readPayload reads one notification as the webhook would take it; any alert the webhook would
// reject is an error here, so the simulation is never of a different set of alerts.
func readPayload(file string, now time.Time) ([]store.InboxEntry, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m, err := intake.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (want Alertmanager's webhook payload, version 4)", file, err)
	}
	entries, errs := intake.Entries(m, now)
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return nil, fmt.Errorf("%s: the webhook would reject %s", file, strings.Join(msgs, "; "))
	}
	if len(entries) == 0 {
		return nil, fmt.Errorf("%s: the notification holds no alerts", file)
	}
	return entries, nil
}

// writeSimulation prints one alert's simulation for a person.
func writeSimulation(w io.Writer, file string, s pipeline.Simulation) {
	fmt.Fprintf(w, "Alert %s (%s, since %s) from %s\n", cell(s.Alert.Name), s.Alert.Status, stamp(s.Alert.StartsAt), file)
	tw := newTable(w)
	row(tw, "  Labels:", pairs(s.Alert.Labels))
	if s.Playbook != "" {
		row(tw, "  Playbook:", s.Playbook)
		row(tw, "  Target:", s.Target)
	}
	decision := s.Decision
	if s.StoppedBy != "" {
		decision += " by " + s.StoppedBy
	}
	if s.Detail != "" {
		decision += ": " + s.Detail
	}
	row(tw, "  Decision:", decision)
	_ = tw.Flush()
	if len(s.Stages) > 0 {
		fmt.Fprintln(w, "  Stages:")
		tw = newTable(w)
		for _, v := range s.Stages {
			why := v.Detail
			if v.Reason != "" {
				why = v.Reason + ": " + why
			}
			row(tw, "   ", v.Stage, v.Verdict, why)
		}
		_ = tw.Flush()
	}
	if len(s.Steps) > 0 {
		fmt.Fprintln(w, "  Steps:")
		tw = newTable(w)
		for i, st := range s.Steps {
			does := st.Does
			if st.Error != "" {
				does = "would fail: " + st.Error
			}
			row(tw, "   ", fmt.Sprint(i+1), st.Name, st.Action, does)
			row(tw, "   ", " ", " ", " ", "verify: "+st.Verify)
		}
		_ = tw.Flush()
	}
	for _, n := range s.Notes {
		fmt.Fprintln(w, "  Note: "+cell(n))
	}
	fmt.Fprintln(w)
}
