package stack

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	promql "github.com/prometheus/prometheus/promql/parser"

	"github.com/selfheal/selfheal/internal/testutil"
)

// exportedMetrics is what the repository's components export, derived from their source (never
// listed by hand): client_golang option structs (Namespace/Subsystem/Name, with package
// constants resolved), metric-name string literals, version.NewCollector, the Go and process
// collectors, the recording rules, and the series Prometheus makes itself.
type exportedMetrics struct {
	names    map[string]string // name -> where it comes from
	prefixes map[string]string // prefix -> where it comes from (collectors of other programs)
}

func (e *exportedMetrics) has(name string) bool {
	if _, ok := e.names[name]; ok {
		return true
	}
	for p := range e.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

var metricNameRe = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

func scanExportedMetrics(t testing.TB) *exportedMetrics {
	t.Helper()
	root := testutil.RepoRoot(t)
	e := &exportedMetrics{names: map[string]string{}, prefixes: map[string]string{}}
	add := func(name, kind, from string) {
		if !metricNameRe.MatchString(name) {
			return
		}
		e.names[name] = from
		switch kind {
		case "Histogram":
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				e.names[name+s] = from
			}
		case "Summary":
			for _, s := range []string{"_sum", "_count"} {
				e.names[name+s] = from
			}
		}
	}

	// Go source, package by package (constants are resolved within a package).
	pkgs := map[string][]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "bin", "vendor", "testdata", "node_modules", ".cache", "data":
				return filepath.SkipDir
			}
			return nil
		}
		// Test files register metrics of their own fakes: they are not components.
		if strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
			pkgs[filepath.Dir(p)] = append(pkgs[filepath.Dir(p)], p)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk source: %v", err)
	}
	for dir, files := range pkgs {
		rel, _ := filepath.Rel(root, dir)
		fset := token.NewFileSet()
		var parsed []*ast.File
		consts := map[string]string{}
		for _, f := range files {
			af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
			if err != nil {
				continue // someone else's file in the middle of an edit; go vet reports it
			}
			parsed = append(parsed, af)
			for _, decl := range af.Decls {
				gd, ok := decl.(*ast.GenDecl)
				if !ok || gd.Tok != token.CONST {
					continue
				}
				for _, spec := range gd.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if i < len(vs.Values) {
							if s, ok := stringLit(vs.Values[i]); ok {
								consts[n.Name] = s
							}
						}
					}
				}
			}
		}
		value := func(x ast.Expr) (string, bool) {
			if s, ok := stringLit(x); ok {
				return s, true
			}
			if id, ok := x.(*ast.Ident); ok {
				s, ok := consts[id.Name]
				return s, ok
			}
			return "", false
		}
		for _, af := range parsed {
			ast.Inspect(af, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.CompositeLit:
					kind := optsKind(x.Type)
					if kind == "" {
						return true
					}
					parts := map[string]string{}
					complete := true
					for _, el := range x.Elts {
						kv, ok := el.(*ast.KeyValueExpr)
						if !ok {
							continue
						}
						key, ok := kv.Key.(*ast.Ident)
						if !ok {
							continue
						}
						switch key.Name {
						case "Namespace", "Subsystem", "Name":
							v, ok := value(kv.Value)
							if !ok {
								complete = false
							}
							parts[key.Name] = v
						}
					}
					if complete && parts["Name"] != "" {
						var segs []string
						for _, k := range []string{"Namespace", "Subsystem", "Name"} {
							if parts[k] != "" {
								segs = append(segs, parts[k])
							}
						}
						add(strings.Join(segs, "_"), kind, rel)
					}
				case *ast.CallExpr:
					sel, ok := x.Fun.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					switch sel.Sel.Name {
					case "NewCollector": // prometheus/common/version: <program>_build_info
						if len(x.Args) == 1 {
							if v, ok := value(x.Args[0]); ok {
								add(v+"_build_info", "Gauge", rel)
							}
						}
					case "NewGoCollector":
						e.prefixes["go_"] = rel
					case "NewProcessCollector":
						e.prefixes["process_"] = rel
					case "NewDesc", "BuildFQName":
						var segs []string
						for _, a := range x.Args[:min(len(x.Args), 3)] {
							if v, ok := value(a); ok && v != "" {
								segs = append(segs, v)
							} else {
								break
							}
						}
						if sel.Sel.Name == "NewDesc" && len(segs) > 0 {
							add(segs[0], "", rel)
						} else if len(segs) == 3 {
							add(strings.Join(segs, "_"), "", rel)
						}
					}
				}
				return true
			})
		}
	}

	// Recording rules are metrics Prometheus computes.
	for _, r := range loadRules(t) {
		if r.Record != "" {
			e.names[r.Record] = "rules/" + r.File
		}
	}
	// Series Prometheus makes for every target and alert.
	for _, n := range []string{"up", "scrape_duration_seconds", "scrape_samples_scraped",
		"scrape_samples_post_metric_relabeling", "scrape_series_added", "ALERTS", "ALERTS_FOR_STATE"} {
		e.names[n] = "prometheus"
	}
	// Alertmanager's own metrics: the stack scrapes it (job alertmanager), and the rules watch
	// its deliveries to the remediator.
	e.prefixes["alertmanager_"] = "alertmanager"
	return e
}

// optsKind returns the metric kind for client_golang option structs (prometheus.CounterOpts{...}).
func optsKind(typ ast.Expr) string {
	var name string
	switch x := typ.(type) {
	case *ast.SelectorExpr:
		name = x.Sel.Name
	case *ast.Ident:
		name = x.Name
	default:
		return ""
	}
	switch name {
	case "CounterOpts", "GaugeOpts", "Opts", "UntypedOpts":
		return "Counter"
	case "HistogramOpts":
		return "Histogram"
	case "SummaryOpts":
		return "Summary"
	}
	return ""
}

func stringLit(x ast.Expr) (string, bool) {
	bl, ok := x.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}

// rule is one recording or alerting rule of rules/*.yml.
type rule struct {
	File   string
	Record string            `yaml:"record"`
	Alert  string            `yaml:"alert"`
	Expr   string            `yaml:"expr"`
	Labels map[string]string `yaml:"labels"`
}

func loadRules(t testing.TB) []rule {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(testutil.RepoRoot(t), "rules", "*.yml"))
	if len(files) == 0 {
		t.Fatal("no rule files in rules/")
	}
	var out []rule
	for _, f := range files {
		var rf struct {
			Groups []struct {
				Rules []rule `yaml:"rules"`
			} `yaml:"groups"`
		}
		readYAML(t, filepath.Join("rules", filepath.Base(f)), &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				r.File = filepath.Base(f)
				out = append(out, r)
			}
		}
	}
	return out
}

var promParser = promql.NewParser(promql.Options{})

// metricNames returns the metric names an expression selects.
func metricNames(expr promql.Expr) []string {
	seen := map[string]bool{}
	promql.Inspect(expr, func(n promql.Node, _ []promql.Node) error {
		vs, ok := n.(*promql.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" && m.Type.String() == "=" {
					name = m.Value
				}
			}
		}
		if name != "" {
			seen[name] = true
		}
		return nil
	})
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// comparisonThresholds returns the constants an alert expression compares against.
func comparisonThresholds(expr promql.Expr) []float64 {
	var out []float64
	promql.Inspect(expr, func(n promql.Node, _ []promql.Node) error {
		be, ok := n.(*promql.BinaryExpr)
		if !ok || !be.Op.IsComparisonOperator() {
			return nil
		}
		if nl, ok := be.RHS.(*promql.NumberLiteral); ok {
			out = append(out, nl.Val)
		}
		return nil
	})
	return out
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
