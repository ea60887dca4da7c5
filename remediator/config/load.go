package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Options adjust loading to the command line.
type Options struct {
	// PrometheusURL, when set (the --prometheus.url flag), overrides global.prometheus_url.
	PrometheusURL string
	// AlertmanagerURL, when set (the --alertmanager.url flag), overrides global.alertmanager.url.
	AlertmanagerURL string
}

// Load reads and validates a playbooks file.
func Load(path string) (*Config, error) { return LoadWithOptions(path, Options{}) }

// LoadWithOptions is Load with command-line overrides.
func LoadWithOptions(path string, o Options) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseWithOptions(data, path, o)
}

// Parse decodes and validates a playbooks file's content; file names it in messages. The error,
// if any, is an Errors listing every problem found.
func Parse(data []byte, file string) (*Config, error) {
	return ParseWithOptions(data, file, Options{})
}

// Check runs the same code path as a start and returns a one-line summary for --config.check,
// e.g. "remediator/playbooks.yml: 6 playbooks, 14 steps, OK". On failure err is an Errors: print
// one problem per line and exit non-zero.
func Check(path string) (summary string, err error) { return CheckWithOptions(path, Options{}) }

// CheckWithOptions is Check with command-line overrides.
func CheckWithOptions(path string, o Options) (string, error) {
	cfg, err := LoadWithOptions(path, o)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: %d playbooks, %d steps, OK", path, len(cfg.Playbooks), cfg.StepCount()), nil
}

// StepCount is the number of steps over all playbooks.
func (c *Config) StepCount() int {
	n := 0
	for _, p := range c.Playbooks {
		n += len(p.Steps)
	}
	return n
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// ParseWithOptions is Parse with command-line overrides.
func ParseWithOptions(data []byte, file string, o Options) (*Config, error) {
	e := &errs{file: file}
	root, err := parseDocument(data)
	if err != nil {
		line, msg := 1, err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		e.add(line, "", "YAML syntax error: %s", msg)
		return nil, e.err()
	}
	if root == nil || isNull(root) {
		e.add(1, "start from remediator/playbooks.yml", "the file is empty; it needs at least one playbook")
		return nil, e.err()
	}

	s := newSchema(e, root)
	s.walk(root, reflect.TypeOf(Config{}), "", 0)
	if s.blocking {
		return nil, e.err()
	}

	cfg, err := decode(root)
	if err != nil {
		// The schema check should have caught it; still never a panic or a silent default.
		e.add(1, "", "%v", err)
		return nil, e.err()
	}
	cfg.File = file
	settleHTTPConfigs(cfg, s.pos, e)
	if o.PrometheusURL != "" {
		cfg.Global.PrometheusURL = o.PrometheusURL
	}
	applyAlertmanagerURL(cfg, o.AlertmanagerURL)
	validate(cfg, s.pos, e, o)
	if err := e.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseDocument returns the single document's root node (nil for an empty file).
func parseDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, fmt.Errorf("yaml: line %d: a second YAML document (---) follows; put all playbooks in one document", max(extra.Line, 1))
	} else if !errors.Is(err, io.EOF) {
		return nil, err
	}
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			return nil, nil
		}
		return doc.Content[0], nil
	}
	return &doc, nil
}

// decode fills a Config from the checked tree: built-in defaults, then the file's defaults
// block, then each playbook over a copy of the defaults, then each step over its playbook's
// verify and step_timeout.
func decode(root *yaml.Node) (*Config, error) {
	cfg := &Config{Global: DefaultGlobal(), Defaults: DefaultDefaults()}
	top := mappingValues(root)
	if n := top["global"]; n != nil && !isNull(n) {
		if err := n.Decode(&cfg.Global); err != nil {
			return nil, fmt.Errorf("global: %w", err)
		}
	}
	if n := top["defaults"]; n != nil && !isNull(n) {
		if err := n.Decode(&cfg.Defaults); err != nil {
			return nil, fmt.Errorf("defaults: %w", err)
		}
	}
	pbs := top["playbooks"]
	if pbs == nil || isNull(pbs) {
		return cfg, nil
	}
	pbs = resolve(pbs)
	for i, pn := range pbs.Content {
		pb := playbookFromDefaults(cfg.Defaults)
		if err := pn.Decode(pb); err != nil {
			return nil, fmt.Errorf("playbooks[%d]: %w", i, err)
		}
		pb.Line = resolve(pn).Line
		pb.Steps = nil
		if sn := mappingValues(pn)["steps"]; sn != nil && !isNull(sn) {
			for j, stn := range resolve(sn).Content {
				st := &Step{Verify: pb.Verify, Timeout: pb.StepTimeout}
				if err := stn.Decode(st); err != nil {
					return nil, fmt.Errorf("playbooks[%d].steps[%d]: %w", i, j, err)
				}
				st.Line = resolve(stn).Line
				applyStepDefaults(st, j, mappingValues(stn))
				pb.Steps = append(pb.Steps, st)
			}
		}
		cfg.Playbooks = append(cfg.Playbooks, pb)
	}
	return cfg, nil
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// mappingValues indexes a mapping node's values by key, following merge keys the way the
// decoder does (explicit keys win). It runs on unchecked input too, so it stops at merge loops.
func mappingValues(n *yaml.Node) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	collectMapping(n, out, map[*yaml.Node]bool{}, 0)
	return out
}

func collectMapping(n *yaml.Node, out map[string]*yaml.Node, seen map[*yaml.Node]bool, depth int) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode || seen[n] || depth > maxDepth {
		return
	}
	seen[n] = true
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Value == "<<" && k.ShortTag() == "!!merge" {
			merges = append(merges, resolve(n.Content[i+1]))
			continue
		}
		if _, ok := out[k.Value]; !ok {
			out[k.Value] = n.Content[i+1]
		}
	}
	for _, m := range merges {
		if m != nil && m.Kind == yaml.SequenceNode {
			for _, mm := range m.Content {
				collectMapping(mm, out, seen, depth+1)
			}
			continue
		}
		collectMapping(m, out, seen, depth+1)
	}
}
