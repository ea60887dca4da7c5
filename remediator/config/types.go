// Package config holds the remediator's playbooks: their YAML form, the defaults that fill what a
// playbook leaves out, and the validation that turns a bad file into errors with line numbers.
package config

import (
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
	"github.com/prometheus/alertmanager/timeinterval"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Config is one loaded playbooks file. After Load every Playbook and Step is complete: the
// defaults have been merged in, templates compiled and matchers parsed, so the pipeline never has
// to look anything up twice.
type Config struct {
	Global    Global      `yaml:"global"`
	Defaults  Defaults    `yaml:"defaults"`
	Playbooks []*Playbook `yaml:"playbooks"`

	// File is the path the configuration was read from, for messages.
	File string `yaml:"-"`
}

// Global settings apply to the remediator as a whole, never to one playbook.
type Global struct {
	// PrometheusURL is queried for verification and preconditions. Empty means: verify by
	// resolved notifications instead.
	PrometheusURL string `yaml:"prometheus_url"`
	// Prometheus is the newer spelling, with client settings; its URL fills PrometheusURL.
	Prometheus Prometheus `yaml:"prometheus"`
	// DryRun decides and records everything but acts on nothing.
	DryRun bool `yaml:"dry_run"`
	// MaxConcurrentHeals bounds heals in flight across all targets (default 1).
	MaxConcurrentHeals int `yaml:"max_concurrent_heals"`
	// HealsPerMinute is the global rate limit on starting heals (default 6).
	HealsPerMinute float64 `yaml:"heals_per_minute"`
	// HistoryMaxAge and HistoryMaxEntries bound the stored heal history.
	HistoryMaxAge     model.Duration `yaml:"history_max_age"`
	HistoryMaxEntries int            `yaml:"history_max_entries"`
	// Alertmanager, when set, is told about heals: silences while they act, alerts when they
	// fail, are declined or suspended (see alertmanager.go).
	Alertmanager *Alertmanager `yaml:"alertmanager"`
}

// Defaults are copied into every playbook before the playbook's own keys are read, so a playbook
// overrides field by field.
type Defaults struct {
	Target      Template       `yaml:"target"`
	DryRun      bool           `yaml:"dry_run"`
	Adaptive    Adaptive       `yaml:"adaptive"`
	Cooldown    Cooldown       `yaml:"cooldown"`
	Budget      Budget         `yaml:"budget"`
	BlastRadius BlastRadius    `yaml:"blast_radius"`
	Verify      Verify         `yaml:"verify"`
	StepTimeout model.Duration `yaml:"step_timeout"`
	Silence     bool           `yaml:"silence"`
}

// Playbook maps matching alerts to ordered escalation steps.
type Playbook struct {
	Name string `yaml:"name"`
	// Match holds Alertmanager matchers such as `alertname="ServiceMemoryHigh"`; all must match.
	Match    []string        `yaml:"match"`
	Matchers labels.Matchers `yaml:"-"`
	// Target names what is healed, templated from the alert, e.g. `{{ .Labels.container }}`.
	Target        Template       `yaml:"target"`
	DryRun        bool           `yaml:"dry_run"`
	Adaptive      Adaptive       `yaml:"adaptive"`
	Cooldown      Cooldown       `yaml:"cooldown"`
	Budget        Budget         `yaml:"budget"`
	BlastRadius   BlastRadius    `yaml:"blast_radius"`
	Preconditions []Precondition `yaml:"preconditions"`
	TimeWindows   []TimeWindow   `yaml:"time_windows"`
	Verify        Verify         `yaml:"verify"`
	StepTimeout   model.Duration `yaml:"step_timeout"`
	// Approval asks a person once per heal, before its first action.
	Approval Approval `yaml:"approval"`
	Steps    []*Step  `yaml:"steps"`
	// Silence silences the alert in Alertmanager while a heal acts on it, so people are paged
	// only when the heal fails (needs global.alertmanager).
	Silence bool `yaml:"silence"`
	// HTTPConfig is the client of the playbook's http steps that give none of their own.
	HTTPConfig *promconfig.HTTPClientConfig `yaml:"http_config"`

	// Line is where the playbook starts in the file, for messages.
	Line int `yaml:"-"`
}

// Cooldown spaces heals of one target: Initial after the first, multiplied by Factor after each
// consecutive heal up to Max, and back to Initial once the target stayed healthy for ResetAfter.
type Cooldown struct {
	Initial    model.Duration `yaml:"initial"`
	Factor     float64        `yaml:"factor"`
	Max        model.Duration `yaml:"max"`
	ResetAfter model.Duration `yaml:"reset_after"`
}

// Budget allows at most Attempts heals of one target per Window; past it the target is suspended
// until a person resets it or the window moves on.
type Budget struct {
	Attempts int            `yaml:"attempts"`
	Window   model.Duration `yaml:"window"`
}

// BlastRadius stops healing when too many of a playbook's targets fail at once: a shared cause is
// likelier than many independent faults, and restarting everything would make it worse.
// Zero values disable a limit.
type BlastRadius struct {
	MaxTargets int     `yaml:"max_targets"`
	MaxRatio   float64 `yaml:"max_ratio"`
	// Window is how long a target counts as failing after its alert arrived.
	Window model.Duration `yaml:"window"`
}

// Adaptive skips a step whose recent success ratio for this alert name is below MinSuccessRatio
// once it has at least MinSamples outcomes.
type Adaptive struct {
	Enabled         bool    `yaml:"enabled"`
	MinSamples      int     `yaml:"min_samples"`
	MinSuccessRatio float64 `yaml:"min_success_ratio"`
	// HalfLife is how fast outcomes fade: one HalfLife old, an outcome weighs half, so a bad
	// week stops deciding once it is a few half-lives old.
	HalfLife model.Duration `yaml:"half_life"`
	// ExploreEvery tries a skipped step anyway on every ExploreEvery-th decision (0: never), so
	// a step that recovered can show it.
	ExploreEvery int `yaml:"explore_every"`
}

// Precondition is a PromQL expression (templated from the alert) that must return at least one
// sample for the heal to go ahead, e.g. "another replica is up".
type Precondition struct {
	Query       Template `yaml:"query"`
	Description string   `yaml:"description"`
}

// TimeWindow allows healing inside one Alertmanager time interval (see timewindow.go). The
// older form's fields are kept as written; Intervals is what the window is once loaded.
type TimeWindow struct {
	Weekdays []string `yaml:"-"`
	Start    string   `yaml:"-"`
	End      string   `yaml:"-"`
	Location string   `yaml:"-"`

	Intervals []timeinterval.TimeInterval `yaml:"-"`
}

// Verify says how a step's success is judged. By default the triggering alert must stop firing
// within Timeout (queried from Prometheus' ALERTS, or awaited as a resolved notification when no
// Prometheus is configured). With Query, the templated PromQL expression must return at least one
// sample. With Skip, the action's own success is enough (e.g. for wait steps).
//
// A step that verified is then held: the target is stabilizing until, for StableFor without a
// break, the alert neither fires nor is pending and the target is observed healthy (HealthyQuery,
// or up == 1 for the alert's instance and job). The alert coming back during the hold fails the
// step as flapped. An alert of the same target and playbook within RelapseWindow after a healed
// heal marks that heal as relapsed.
type Verify struct {
	Query    Template       `yaml:"query"`
	Skip     bool           `yaml:"skip"`
	Timeout  model.Duration `yaml:"timeout"`
	Interval model.Duration `yaml:"interval"`
	// StableFor is the hold; 0 still needs one healthy look.
	StableFor model.Duration `yaml:"stable_for"`
	// HealthyQuery, templated PromQL, returns at least one sample while the target is healthy.
	HealthyQuery Template `yaml:"healthy_query"`
	// RelapseWindow is how long after a verified heal a new alert counts as its relapse; 0 never.
	RelapseWindow model.Duration `yaml:"relapse_window"`
}

// Step is one escalation level: exactly one of HTTP, Docker, Command or Wait.
type Step struct {
	Name    string         `yaml:"name"`
	HTTP    *HTTPAction    `yaml:"http"`
	Docker  *DockerAction  `yaml:"docker"`
	Command *CommandAction `yaml:"command"`
	Swarm   *SwarmAction   `yaml:"swarm"`
	// Kubernetes acts on a workload or pod of a cluster.
	Kubernetes *KubernetesAction `yaml:"kubernetes"`
	Wait       *model.Duration   `yaml:"wait"`
	Verify     Verify            `yaml:"verify"`
	Timeout    model.Duration    `yaml:"timeout"`
	// Approval asks a person before this step acts.
	Approval Approval `yaml:"approval"`

	Line int `yaml:"-"`
	// named: the file gave the step its name; else it is DefaultStepName.
	named bool
}

// Action names the step's kind, the key it is written under (see stepKinds).
func (s *Step) Action() string {
	for _, k := range stepKinds {
		if k.is(s) {
			return k.key
		}
	}
	return ""
}

// HTTPAction calls a recovery endpoint of the target, e.g. "flush the cache".
type HTTPAction struct {
	Method       string            `yaml:"method"`
	URL          Template          `yaml:"url"`
	Headers      map[string]string `yaml:"headers"`
	Body         string            `yaml:"body"`
	ExpectStatus []int             `yaml:"expect_status"`
	// HTTPConfig is the client's authorization, TLS and proxy (nil: a plain client).
	HTTPConfig *promconfig.HTTPClientConfig `yaml:"http_config"`
}

// DockerAction acts on the target's container through the Docker engine.
type DockerAction struct {
	// Action is one of restart, stop, start, kill, recreate.
	Action string `yaml:"action"`
	// Container optionally names the container (templated); by default it is resolved from the
	// alert's labels (container, compose service and project, instance).
	Container   Template       `yaml:"container"`
	Signal      string         `yaml:"signal"`
	StopTimeout model.Duration `yaml:"stop_timeout"`
}

// CommandAction runs a program without a shell; alert labels reach it as environment variables.
type CommandAction struct {
	Argv []Template        `yaml:"argv"`
	Env  map[string]string `yaml:"env"`
}

// Approval makes a heal wait for a person (POST /api/v1/heals/{id}/approve or /reject) before it
// acts. Unanswered for Timeout (default DefaultApprovalTimeout), the step is declined and the heal
// escalates as if the step had failed.
type Approval struct {
	Required bool           `yaml:"required"`
	Timeout  model.Duration `yaml:"timeout"`
}

// DefaultApprovalTimeout is how long an approval waits when the file gives no timeout.
const DefaultApprovalTimeout = 15 * time.Minute

// Wait is how long the approval waits for an answer.
func (a Approval) Wait() time.Duration {
	if a.Timeout > 0 {
		return time.Duration(a.Timeout)
	}
	return DefaultApprovalTimeout
}
