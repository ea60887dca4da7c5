package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/remediator/pipeline"
	"github.com/selfheal/selfheal/remediator/store"
)

// Commands are the client's subcommands on the remediator's kingpin application.
type Commands struct {
	url, tokenFile, output *string
	timeout                *time.Duration

	targets, heals, heal, pause, resume, reset, approve, reject *kingpin.CmdClause

	healsTarget, healsSince *string
	healsLimit              *int
	healID                  *string
	pauseTarget, pauseFor   *string
	pauseComment            *string
	resumeTarget            *string
	resetTarget             *string
	approveID, rejectID     *string
	approveComment          *string
	rejectComment           *string

	sim *simulateCommand

	// Stdout and Stderr default to the process's.
	Stdout, Stderr io.Writer
}

// Shared are flags of the remediator that the simulator reads too.
type Shared struct {
	ConfigFile    *string
	PrometheusURL *string
}

// Register adds the client's flags and subcommands to app.
func Register(app *kingpin.Application, shared Shared) *Commands {
	c := &Commands{Stdout: os.Stdout, Stderr: os.Stderr}
	c.url = app.Flag("remediator.url", "The remediator the client commands talk to.").Default("http://127.0.0.1:9096").String()
	c.tokenFile = app.Flag("remediator.token-file", "File with the bearer token the client commands send (else $"+TokenEnv+").").String()
	c.output = app.Flag("output", "Output of the client commands: table or json.").Short('o').Default("table").Enum("table", "json")
	c.timeout = app.Flag("remediator.timeout", "How long the client commands wait for an answer.").Default("30s").Duration()

	c.targets = app.Command("targets", "List the targets the remediator knows, with state, budget, cooldown and pause.")

	c.heals = app.Command("heals", "List recent heals, newest first.")
	c.healsTarget = c.heals.Flag("target", "Only this target's heals.").String()
	c.healsSince = c.heals.Flag("since", "Only heals started within this long, e.g. 1h.").String()
	c.healsLimit = c.heals.Flag("limit", "At most this many heals.").Default("100").Int()

	c.heal = app.Command("heal", "Show one heal whole: its steps, their evidence and errors.")
	c.healID = c.heal.Arg("id", "Heal ID, as in the heals list.").Required().String()

	c.pause = app.Command("pause", "Pause healing, of one target or of all.")
	c.pauseTarget = c.pause.Flag("target", "Target to pause; all healing when not given.").String()
	c.pauseFor = c.pause.Flag("for", "How long, e.g. 15m; until resumed when not given.").String()
	c.pauseComment = c.pause.Flag("comment", "Why, for the record and the next person.").String()

	c.resume = app.Command("resume", "End a pause, of one target or the global one.")
	c.resumeTarget = c.resume.Flag("target", "Target to resume; the global pause when not given.").String()

	c.reset = app.Command("reset", "Clear a target's spent budget, suspension and cooldown after a person has looked.")
	c.resetTarget = c.reset.Arg("target", "Target name.").Required().String()

	c.approve = app.Command("approve", "Approve a heal that waits for a person.")
	c.approveID = c.approve.Arg("id", "Heal ID.").Required().String()
	c.approveComment = c.approve.Flag("comment", "Why, for the record.").String()

	c.reject = app.Command("reject", "Reject a heal that waits for a person; it does not act.")
	c.rejectID = c.reject.Arg("id", "Heal ID.").Required().String()
	c.rejectComment = c.reject.Flag("comment", "Why, for the record.").String()

	c.sim = registerSimulate(app, shared)
	return c
}

// Run runs cmd when it is one of the client's: handled is false for the remediator's own
// commands. The exit code is 0 on success and 1 on any error, which is printed.
func (c *Commands) Run(ctx context.Context, cmd string) (handled bool, code int) {
	run := c.command(cmd)
	if run == nil {
		return false, 0
	}
	if err := run(ctx); err != nil {
		fmt.Fprintln(c.Stderr, "remediator "+cmd+":", err)
		return true, 1
	}
	return true, 0
}

func (c *Commands) command(cmd string) func(context.Context) error {
	switch cmd {
	case c.targets.FullCommand():
		return c.runTargets
	case c.heals.FullCommand():
		return c.runHeals
	case c.heal.FullCommand():
		return c.runHeal
	case c.pause.FullCommand():
		return c.runPause
	case c.resume.FullCommand():
		return c.runResume
	case c.reset.FullCommand():
		return c.runReset
	case c.approve.FullCommand():
		return func(ctx context.Context) error { return c.runDecide(ctx, "approve", *c.approveID, *c.approveComment) }
	case c.reject.FullCommand():
		return func(ctx context.Context) error { return c.runDecide(ctx, "reject", *c.rejectID, *c.rejectComment) }
	case c.sim.cmd.FullCommand():
		return func(ctx context.Context) error { return c.sim.run(ctx, c) }
	}
	return nil
}

func (c *Commands) client() (*Client, error) { return NewClient(*c.url, *c.tokenFile, *c.timeout) }

func (c *Commands) json() bool { return *c.output == "json" }

func (c *Commands) runTargets(ctx context.Context) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	var out struct {
		Targets []pipeline.TargetView `json:"targets"`
	}
	if err := cl.do(ctx, "GET", "/api/v1/targets?all=true", nil, &out); err != nil {
		return err
	}
	if c.json() {
		return writeJSON(c.Stdout, out)
	}
	return targetTable(c.Stdout, out.Targets, time.Now())
}

func (c *Commands) runHeals(ctx context.Context) error {
	var since time.Duration
	if *c.healsSince != "" {
		d, err := model.ParseDuration(*c.healsSince)
		if err != nil || d <= 0 {
			return fmt.Errorf("--since %q: want a positive duration such as 30m, 1h or 2d", *c.healsSince)
		}
		since = time.Duration(d)
	}
	if *c.healsLimit < 1 || *c.healsLimit > 10000 {
		return fmt.Errorf("--limit %d: want 1 to 10000", *c.healsLimit)
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	q := url.Values{"limit": {fmt.Sprint(*c.healsLimit)}}
	if *c.healsTarget != "" {
		q.Set("target", *c.healsTarget)
	}
	var out struct {
		Heals []store.Heal `json:"heals"`
	}
	if err := cl.do(ctx, "GET", "/api/v1/heals?"+q.Encode(), nil, &out); err != nil {
		return err
	}
	if since > 0 {
		// The API lists newest first and has no time filter; the client cuts the list.
		cut := time.Now().Add(-since)
		kept := out.Heals[:0]
		for _, h := range out.Heals {
			if !h.Started.Before(cut) {
				kept = append(kept, h)
			}
		}
		out.Heals = kept
	}
	if *c.healsTarget != "" && len(out.Heals) == 0 {
		if err := c.knownTarget(ctx, cl, *c.healsTarget); err != nil {
			return err
		}
	}
	if out.Heals == nil {
		out.Heals = []store.Heal{}
	}
	if c.json() {
		return writeJSON(c.Stdout, out)
	}
	return healTable(c.Stdout, out.Heals)
}

// knownTarget tells an unknown target (a typo) from one without heals.
func (c *Commands) knownTarget(ctx context.Context, cl *Client, name string) error {
	var out struct {
		Targets []pipeline.TargetView `json:"targets"`
	}
	if err := cl.do(ctx, "GET", "/api/v1/targets?all=true", nil, &out); err != nil {
		return err
	}
	for _, t := range out.Targets {
		if t.Name == name {
			return nil
		}
	}
	return fmt.Errorf("unknown target %q: the remediator has no such target (see 'remediator targets')", name)
}

func (c *Commands) runHeal(ctx context.Context) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	var h store.Heal
	if err := cl.do(ctx, "GET", "/api/v1/heals/"+url.PathEscape(*c.healID), nil, &h); err != nil {
		return err
	}
	if c.json() {
		return writeJSON(c.Stdout, h)
	}
	return healDetail(c.Stdout, h)
}

// override is the body of pause and resume.
type override struct {
	Target   string `json:"target,omitempty"`
	Duration string `json:"duration,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

func (c *Commands) runPause(ctx context.Context) error {
	if *c.pauseFor != "" {
		if d, err := model.ParseDuration(*c.pauseFor); err != nil || d <= 0 {
			return fmt.Errorf("--for %q: want a positive duration such as 15m or 2h", *c.pauseFor)
		}
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	var out map[string]any
	body := override{Target: *c.pauseTarget, Duration: *c.pauseFor, Reason: *c.pauseComment}
	if err := cl.do(ctx, "POST", "/api/v1/pause", body, &out); err != nil {
		return err
	}
	return c.done(out, "paused "+scope(*c.pauseTarget)+until(out))
}

func (c *Commands) runResume(ctx context.Context) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	var out map[string]any
	if err := cl.do(ctx, "POST", "/api/v1/resume", override{Target: *c.resumeTarget}, &out); err != nil {
		return unknownTarget(err, *c.resumeTarget)
	}
	return c.done(out, "resumed "+scope(*c.resumeTarget))
}

func (c *Commands) runReset(ctx context.Context) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	var out map[string]any
	if err := cl.do(ctx, "POST", "/api/v1/targets/"+url.PathEscape(*c.resetTarget)+"/reset", nil, &out); err != nil {
		return unknownTarget(err, *c.resetTarget)
	}
	return c.done(out, "reset "+*c.resetTarget+": budget, suspension and cooldown cleared")
}

// runDecide approves or rejects a heal that waits for a person.
func (c *Commands) runDecide(ctx context.Context, verb, id, comment string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	var out map[string]any
	body := map[string]string{}
	if comment != "" {
		body["comment"] = comment
	}
	if err := cl.do(ctx, "POST", "/api/v1/heals/"+url.PathEscape(id)+"/"+verb, body, &out); err != nil {
		return err
	}
	return c.done(out, verb+"d heal "+id)
}

func (c *Commands) done(out map[string]any, text string) error {
	if c.json() {
		return writeJSON(c.Stdout, out)
	}
	_, err := fmt.Fprintln(c.Stdout, text)
	return err
}

// unknownTarget says a 404 of a target command in the operator's words.
func unknownTarget(err error, target string) error {
	var se *StatusError
	if target != "" && errors.As(err, &se) && se.Status == 404 {
		return fmt.Errorf("unknown target %q: the remediator has never seen it (see 'remediator targets')", target)
	}
	return err
}

func scope(target string) string {
	if target == "" {
		return "all healing"
	}
	return "target " + target
}

func until(out map[string]any) string {
	if u, ok := out["until"].(string); ok {
		if t, err := time.Parse(time.RFC3339Nano, u); err == nil {
			u = stamp(t)
		}
		return " until " + u
	}
	return " until resumed"
}
