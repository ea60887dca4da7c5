package grafana

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSubstitute(t *testing.T) {
	vars := map[string]string{"__rate_interval": "1m", "service": ".*"}
	declared := map[string]bool{"service": true, "instance": true}
	for _, tc := range []struct {
		name, in, want, err string
	}{
		{"builtin", `rate(x[$__rate_interval])`, `rate(x[1m])`, ""},
		{"braces", `rate(x[${__rate_interval}])`, `rate(x[1m])`, ""},
		{"format", `x{service=~"${service:regex}"}`, `x{service=~".*"}`, ""},
		{"brackets", `x{service=~"[[service]]"}`, `x{service=~".*"}`, ""},
		{"label_replace group stays", `label_replace(x, "a", "$1", "b", "(.+)")`, `label_replace(x, "a", "$1", "b", "(.+)")`, ""},
		{"declared without value", `x{instance="$instance"}`, "", "instance"},
		{"unknown builtin", `rate(x[$__range_weird])`, "", "__range_weird"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := substitute(tc.in, vars, declared)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestVariableSelector(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{`label_values(demo_ready{job="demo-services"}, service)`, `demo_ready{job="demo-services"}`, true},
		{`label_values(up, instance)`, `up`, true},
		{`query_result(topk(3, up))`, `topk(3, up)`, true},
		{`label_values(service)`, "", false},
		{`metrics(demo_.*)`, "", false},
	} {
		got, ok := VariableSelector(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("VariableSelector(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestQueriesWalksRowsAnnotationsAndVariables(t *testing.T) {
	dir := t.TempDir()
	dash := `{
	  "uid": "t", "title": "T",
	  "templating": {"list": [{"name": "service", "type": "query", "includeAll": true, "allValue": ".+",
	    "query": {"query": "label_values(demo_ready, service)"}}]},
	  "annotations": {"list": [{"builtIn": 1, "name": "Annotations & Alerts"},
	    {"name": "Heals", "expr": "increase(remediator_heals_total[1m]) > 0"}]},
	  "panels": [
	    {"type": "timeseries", "title": "A", "targets": [{"refId": "A", "expr": "rate(x{service=~\"$service\"}[$__rate_interval])"}]},
	    {"type": "row", "title": "R", "collapsed": true, "panels": [
	      {"type": "table", "title": "B", "targets": [{"refId": "A", "expr": "ALERTS", "instant": true}, {"refId": "B", "expr": ""}]}]}
	  ]}`
	if err := os.WriteFile(filepath.Join(dir, "t.json"), []byte(dash), 0o644); err != nil {
		t.Fatal(err)
	}
	qs, err := Queries(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Query{}
	for _, q := range qs {
		got[string(q.Kind)+":"+q.Title] = q
	}
	want := map[string]string{
		"panel:A":          `rate(x{service=~".+"}[1m])`,
		"panel:B":          `ALERTS`,
		"annotation:Heals": `increase(remediator_heals_total[1m]) > 0`,
		"variable:service": `demo_ready`,
	}
	if len(got) != len(want) {
		t.Errorf("got %d queries %v, want %d", len(got), qs, len(want))
	}
	for k, w := range want {
		if got[k].Expr != w {
			t.Errorf("%s: %q, want %q", k, got[k].Expr, w)
		}
	}
	if !got["panel:B"].MayBeEmpty || !got["panel:B"].Instant || !got["annotation:Heals"].MayBeEmpty || got["panel:A"].MayBeEmpty {
		t.Errorf("flags wrong: %+v", got)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "no dashboards") {
		t.Errorf("empty dir: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"panels": [`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("bad JSON: %v", err)
	}
}

// The shipped dashboards load and have queries (the stack package checks them in depth).
func TestShippedDashboards(t *testing.T) {
	qs, err := Queries(Dir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) == 0 {
		t.Fatal("no queries in the shipped dashboards")
	}
	for _, q := range qs {
		if strings.Contains(q.Expr, "$__") || strings.Contains(q.Expr, "$service") {
			t.Errorf("%s %q: variable left in %s", q.Dashboard, q.Title, q.Expr)
		}
	}
}

func TestDatasourceUID(t *testing.T) {
	d := Dashboard{File: "d.json"}
	d.Templating.List = []Variable{
		{Name: "datasource", Type: "datasource", Query: []byte(`"prometheus"`)},
		{Name: "am", Type: "datasource", Query: []byte(`"alertmanager"`)},
		{Name: "service", Type: "query", Query: []byte(`"label_values(up, service)"`)},
	}
	provisioned := map[string]string{"prometheus": "prom-uid"}
	for _, tc := range []struct {
		uid, want, err string
	}{
		{"${datasource}", "prom-uid", ""},
		{"$datasource", "prom-uid", ""},
		{"fixed-uid", "fixed-uid", ""},
		{"${service}", "", "not a datasource variable"},
		{"${am}", "", `selects a "alertmanager" datasource, and none is provisioned`},
		{"${nothing}", "", "names no variable"},
	} {
		got, err := d.DatasourceUID(&Datasource{Type: "prometheus", UID: tc.uid}, provisioned)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.uid, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.uid, got, err, tc.want)
		}
	}
}

// The shipped dashboards import into any Grafana: every Prometheus panel, target, annotation and
// variable names the datasource through the dashboard's own datasource variable.
func TestShippedDashboardsTakeADatasource(t *testing.T) {
	ds, err := Load(Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		var v *Variable
		for i := range d.Templating.List {
			if d.Templating.List[i].Name == "datasource" {
				v = &d.Templating.List[i]
			}
		}
		if v == nil || v.Type != "datasource" || v.QueryString() != "prometheus" {
			t.Errorf("%s: no datasource variable of type datasource selecting prometheus: %+v", d.File, v)
			continue
		}
		check := func(what string, ref *Datasource) {
			if ref == nil || ref.Type != "prometheus" {
				return
			}
			if ref.UID != "${datasource}" {
				t.Errorf("%s: %s names datasource uid %q, not ${datasource}", d.File, what, ref.UID)
			}
		}
		var walk func([]Panel)
		walk = func(ps []Panel) {
			for _, p := range ps {
				check("panel "+p.Title, p.Datasource)
				for _, tg := range p.Targets {
					check("panel "+p.Title+" target "+tg.RefID, tg.Datasource)
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
		for _, a := range d.Annotations.List {
			check("annotation "+a.Name, a.Datasource)
		}
		for _, tv := range d.Templating.List {
			check("variable "+tv.Name, tv.Datasource)
		}
	}
}
