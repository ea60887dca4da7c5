// Package grafana reads the dashboards the compose stack provisions (grafana/dashboards/*.json)
// and returns every PromQL query in them with Grafana's variables substituted, so that tests can
// parse them (the stack's consistency test) and run them against a live Prometheus (the
// end-to-end test) without a Grafana.
package grafana

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
)

// Kind says where in a dashboard a query sits.
type Kind string

const (
	KindPanel      Kind = "panel"
	KindAnnotation Kind = "annotation"
	KindVariable   Kind = "variable"
)

// Query is one PromQL expression of a dashboard.
type Query struct {
	Dashboard string // file name, e.g. selfheal-overview.json
	Title     string // panel title, annotation name or variable name
	Kind      Kind
	RefID     string // panel target refId; empty for annotations and variables
	Raw       string // as written in the dashboard
	Expr      string // Raw with every Grafana variable substituted: valid PromQL
	Instant   bool   // the panel asks for one sample per series, not a range
	// MayBeEmpty is true where no data is a normal answer: annotations only mark events, and
	// ALERTS has no series while nothing is pending or firing.
	MayBeEmpty bool
}

// Dashboard is the part of a dashboard's JSON model this package reads.
type Dashboard struct {
	File        string
	UID         string  `json:"uid"`
	Title       string  `json:"title"`
	Panels      []Panel `json:"panels"`
	Annotations struct {
		List []Annotation `json:"list"`
	} `json:"annotations"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is a panel or a row (rows hold their panels while collapsed).
type Panel struct {
	ID          int         `json:"id"`
	Type        string      `json:"type"`
	Title       string      `json:"title"`
	Datasource  *Datasource `json:"datasource"`
	Targets     []Target    `json:"targets"`
	Panels      []Panel     `json:"panels"`
	FieldConfig struct {
		Defaults struct {
			Thresholds *struct {
				Steps []struct {
					Color string   `json:"color"`
					Value *float64 `json:"value"`
				} `json:"steps"`
			} `json:"thresholds"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

// Thresholds returns the panel's threshold values (the base step has none and is left out).
func (p Panel) Thresholds() []float64 {
	var out []float64
	if t := p.FieldConfig.Defaults.Thresholds; t != nil {
		for _, s := range t.Steps {
			if s.Value != nil {
				out = append(out, *s.Value)
			}
		}
	}
	return out
}

// Datasource names a datasource by type and uid.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Instant    bool        `json:"instant"`
	Datasource *Datasource `json:"datasource"`
}

// Annotation is a dashboard annotation query.
type Annotation struct {
	Name       string      `json:"name"`
	Expr       string      `json:"expr"`
	Datasource *Datasource `json:"datasource"`
	BuiltIn    int         `json:"builtIn"`
}

// Variable is a template variable.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	AllValue   string          `json:"allValue"`
	IncludeAll bool            `json:"includeAll"`
	Datasource *Datasource     `json:"datasource"`
}

// QueryString returns the variable's query, which Grafana stores either as a string or as an
// object with a "query" field.
func (v Variable) QueryString() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &o) == nil {
		return o.Query
	}
	return ""
}

// DefaultVars are the values Grafana's built-in variables get when a query runs outside Grafana.
// The windows match a 5s scrape interval and a 30 minute to 1 hour view.
func DefaultVars() map[string]string {
	return map[string]string{
		"__rate_interval": "1m",
		"__interval":      "30s",
		"__interval_ms":   "30000",
		"__range":         "1h",
		"__range_s":       "3600",
		"__range_ms":      "3600000",
	}
}

// Dir returns the repository's grafana/dashboards directory, found from this file's location
// (tests run from a checkout, so the source is there).
func Dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("grafana", "dashboards")
	}
	return filepath.Join(filepath.Dir(file), "dashboards")
}

// Load parses every *.json file in dir as a dashboard.
func Load(dir string) ([]Dashboard, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no dashboards (*.json) in %s", dir)
	}
	sort.Strings(files)
	var out []Dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d Dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
		d.File = filepath.Base(f)
		out = append(out, d)
	}
	return out, nil
}

// Queries returns every PromQL query of the dashboards in dir: panel targets (rows included),
// annotation queries and the series selector of label_values() variables. Built-in variables
// take the values in vars (DefaultVars when nil); dashboard variables take their "All" value,
// so every query covers every service. A variable left unresolved is an error.
func Queries(dir string, vars map[string]string) ([]Query, error) {
	ds, err := Load(dir)
	if err != nil {
		return nil, err
	}
	if vars == nil {
		vars = DefaultVars()
	}
	var out []Query
	for _, d := range ds {
		qs, err := d.Queries(vars)
		if err != nil {
			return nil, err
		}
		out = append(out, qs...)
	}
	return out, nil
}

// Queries returns the dashboard's queries; see the package function.
func (d Dashboard) Queries(builtins map[string]string) ([]Query, error) {
	vars := make(map[string]string, len(builtins)+len(d.Templating.List))
	for k, v := range builtins {
		vars[k] = v
	}
	declared := map[string]bool{}
	for _, v := range d.Templating.List {
		declared[v.Name] = true
		switch {
		case v.IncludeAll && v.AllValue != "":
			vars[v.Name] = v.AllValue
		case v.IncludeAll:
			vars[v.Name] = ".*"
		}
	}
	var out []Query
	add := func(q Query) error {
		expr, err := substitute(q.Raw, vars, declared)
		if err != nil {
			return fmt.Errorf("%s: %s %q: %w", d.File, q.Kind, q.Title, err)
		}
		q.Dashboard, q.Expr = d.File, expr
		q.MayBeEmpty = q.MayBeEmpty || strings.Contains(q.Raw, "ALERTS")
		out = append(out, q)
		return nil
	}
	var walk func([]Panel) error
	walk = func(ps []Panel) error {
		for _, p := range ps {
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					continue
				}
				if err := add(Query{Title: p.Title, Kind: KindPanel, RefID: t.RefID, Raw: t.Expr, Instant: t.Instant}); err != nil {
					return err
				}
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	for _, a := range d.Annotations.List {
		if a.BuiltIn != 0 || strings.TrimSpace(a.Expr) == "" {
			continue
		}
		if err := add(Query{Title: a.Name, Kind: KindAnnotation, Raw: a.Expr, MayBeEmpty: true}); err != nil {
			return nil, err
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		sel, ok := VariableSelector(v.QueryString())
		if !ok {
			continue
		}
		if err := add(Query{Title: v.Name, Kind: KindVariable, Raw: sel}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

var (
	labelValuesRe = regexp.MustCompile(`^\s*label_values\(\s*(.+)\s*,\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)
	queryResultRe = regexp.MustCompile(`^\s*query_result\(\s*(.+)\s*\)\s*$`)
)

// VariableSelector returns the PromQL inside a Prometheus template variable query:
// label_values(<selector>, label) or query_result(<expr>). Other forms (label_values(label),
// label_names(), metrics()) hold no PromQL and give false.
func VariableSelector(q string) (string, bool) {
	if m := labelValuesRe.FindStringSubmatch(q); m != nil {
		return strings.TrimSpace(m[1]), true
	}
	if m := queryResultRe.FindStringSubmatch(q); m != nil {
		return strings.TrimSpace(m[1]), true
	}
	return "", false
}

// varRe matches Grafana's variable syntaxes: ${name}, ${name:format}, [[name]] and $name.
var varRe = regexp.MustCompile(`\$\{([a-zA-Z0-9_]+)(?::[a-zA-Z0-9_]+)?\}|\[\[([a-zA-Z0-9_]+)\]\]|\$([a-zA-Z0-9_]+)`)

// substitute replaces Grafana variables. A name that is neither known nor declared is left alone:
// PromQL itself uses $1 in label_replace replacements.
func substitute(expr string, vars map[string]string, declared map[string]bool) (string, error) {
	var missing []string
	out := varRe.ReplaceAllStringFunc(expr, func(m string) string {
		sm := varRe.FindStringSubmatch(m)
		name := sm[1] + sm[2] + sm[3]
		if v, ok := vars[name]; ok {
			return v
		}
		if declared[name] || strings.HasPrefix(name, "__") {
			missing = append(missing, name)
		}
		return m
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no value for variable(s) %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// dsRefRe matches a datasource uid that names a dashboard variable: ${name} or $name.
var dsRefRe = regexp.MustCompile(`^\$\{([a-zA-Z0-9_]+)\}$|^\$([a-zA-Z0-9_]+)$`)

// DatasourceUID resolves a datasource reference the way Grafana does when the dashboard opens:
// a uid that names a variable of type datasource ("${datasource}") becomes the datasource that
// variable selects by default, here the one of its type in provisioned (type -> uid); any
// other uid is taken as written. A reference to a variable that is not a datasource variable,
// or to a type nothing provides, is an error.
func (d Dashboard) DatasourceUID(ds *Datasource, provisioned map[string]string) (string, error) {
	if ds == nil {
		return "", fmt.Errorf("%s: no datasource", d.File)
	}
	m := dsRefRe.FindStringSubmatch(ds.UID)
	if m == nil {
		return ds.UID, nil
	}
	name := m[1] + m[2]
	for _, v := range d.Templating.List {
		if v.Name != name {
			continue
		}
		if v.Type != "datasource" {
			return "", fmt.Errorf("%s: datasource %q names variable %s of type %q, not a datasource variable", d.File, ds.UID, name, v.Type)
		}
		uid, ok := provisioned[v.QueryString()]
		if !ok {
			return "", fmt.Errorf("%s: variable %s selects a %q datasource, and none is provisioned", d.File, name, v.QueryString())
		}
		return uid, nil
	}
	return "", fmt.Errorf("%s: datasource %q names no variable of the dashboard", d.File, ds.UID)
}
