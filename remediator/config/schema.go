package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// The schema check walks the YAML node tree against the Go types before anything is decoded.
// yaml.v3's KnownFields does not reach into custom unmarshalers (Node.Decode starts a lenient
// decoder) and stops at the first bad scalar without a line number; walking the tree ourselves
// gives every unknown key, duplicate key and bad value with its line, all in one pass.

var (
	typeTemplate = reflect.TypeOf(Template{})
	typeDuration = reflect.TypeOf(model.Duration(0))
	typeAdaptive = reflect.TypeOf(Adaptive{})
)

// Limits that keep a hostile file (alias bombs, deep nesting) from costing more than a real one.
const (
	maxNodeVisits = 200000
	maxDepth      = 64
)

// nouns name a mapping's type in messages.
var nouns = map[reflect.Type]string{
	reflect.TypeOf(Config{}):           "the top level",
	reflect.TypeOf(Global{}):           "global",
	reflect.TypeOf(Prometheus{}):       "global.prometheus",
	reflect.TypeOf(Defaults{}):         "defaults",
	reflect.TypeOf(Playbook{}):         "a playbook",
	reflect.TypeOf(Step{}):             "a step",
	reflect.TypeOf(HTTPAction{}):       "an http action",
	reflect.TypeOf(DockerAction{}):     "a docker action",
	reflect.TypeOf(CommandAction{}):    "a command action",
	reflect.TypeOf(SwarmAction{}):      "a swarm action",
	reflect.TypeOf(Cooldown{}):         "cooldown",
	reflect.TypeOf(Budget{}):           "budget",
	reflect.TypeOf(BlastRadius{}):      "blast_radius",
	reflect.TypeOf(Adaptive{}):         "adaptive",
	reflect.TypeOf(Verify{}):           "verify",
	reflect.TypeOf(Precondition{}):     "a precondition",
	typeOlderTimeWindow:                "a time window",
	reflect.TypeOf(Approval{}):         "approval",
	reflect.TypeOf(KubernetesAction{}): "a kubernetes action",
	reflect.TypeOf(Alertmanager{}):     "alertmanager",
}

type schema struct {
	names  map[string]string // "playbooks[0]" -> the playbook's name, for messages
	errs   *errs
	pos    map[string]int // dotted path -> line where it is given
	visits int
	active map[*yaml.Node]bool
	abort  bool
	// blocking: a problem that keeps the tree from being decoded (a bad value, a wrong shape, a
	// duplicate key). Unknown keys are not: decoding ignores them, so validation can still run
	// and report its problems in the same round.
	blocking bool
}

func (s *schema) fail(line int, hint, format string, args ...any) {
	s.blocking = true
	s.errs.add(line, hint, format, args...)
}

// at names a path for a message.
func (s *schema) at(path string) string { return s.pretty(path) }

func newSchema(e *errs, root *yaml.Node) *schema {
	s := &schema{errs: e, pos: map[string]int{}, active: map[*yaml.Node]bool{}, names: map[string]string{}}
	if pbs := resolve(mappingValues(root)["playbooks"]); pbs != nil && pbs.Kind == yaml.SequenceNode {
		for i, pn := range pbs.Content {
			if n := resolve(mappingValues(pn)["name"]); n != nil && n.Kind == yaml.ScalarNode && n.Value != "" {
				s.names[fmt.Sprintf("playbooks[%d]", i)] = n.Value
			}
		}
	}
	return s
}

var playbookPath = regexp.MustCompile(`^(playbooks\[\d+\])(?:\.steps\[(\d+)\])?(?:\.(.*))?$`)

// pretty turns "playbooks[0].steps[1].http.url" into `playbook "memory-high": step 2: http.url`,
// the way validation messages name things.
func (s *schema) pretty(path string) string {
	m := playbookPath.FindStringSubmatch(path)
	if m == nil {
		return path
	}
	out := m[1]
	if name, ok := s.names[m[1]]; ok {
		out = fmt.Sprintf("playbook %q", name)
	}
	if m[2] != "" {
		n, _ := strconv.Atoi(m[2])
		out += fmt.Sprintf(": step %d", n+1)
	}
	if m[3] != "" {
		out += ": " + m[3]
	}
	return out
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

func (s *schema) walk(n *yaml.Node, t reflect.Type, path string, depth int) {
	if s.abort {
		return
	}
	if s.visits++; s.visits > maxNodeVisits || depth > maxDepth {
		s.fail(n.Line, "remove anchors and aliases that expand into each other", "document is too large or too deeply nested")
		s.abort = true
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil || s.active[n.Alias] {
			s.fail(n.Line, "", "alias %q refers to itself", n.Value)
			return
		}
		s.active[n.Alias] = true
		s.walk(n.Alias, t, path, depth+1)
		delete(s.active, n.Alias)
		return
	}
	if t.Kind() == reflect.Pointer {
		if isNull(n) {
			return
		}
		t = t.Elem()
	}
	switch {
	case t == typeTemplate:
		s.template(n, path)
		return
	case t == typeDuration:
		s.duration(n, path)
		return
	case t == typeHTTPClientConfig:
		s.httpConfig(n, path)
		return
	case t == typeTimeWindow:
		s.timeWindow(n, path, depth)
		return
	case t == typeAdaptive && n.Kind == yaml.ScalarNode:
		s.scalar(n, reflect.TypeOf(true), path)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		s.mapping(n, t, path, depth)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			s.fail(n.Line, "write it as a YAML list, one `- item` per line", "%s must be a list, got %s", s.at(path), kindName(n))
			return
		}
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			s.set(p, c.Line)
			s.walk(c, t.Elem(), p, depth+1)
		}
	case reflect.Map:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			s.fail(n.Line, "write it as `key: value` lines", "%s must be a mapping, got %s", s.at(path), kindName(n))
			return
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if first, dup := seen[k.Value]; dup {
				s.fail(k.Line, "remove one of them", "key %q in %s is given twice (first on line %d)", k.Value, s.at(path), first)
				continue
			}
			seen[k.Value] = k.Line
			s.walk(v, t.Elem(), path+"."+k.Value, depth+1)
		}
	default:
		s.scalar(n, t, path)
	}
}

func (s *schema) set(path string, line int) {
	if _, ok := s.pos[path]; !ok {
		s.pos[path] = line
	}
}

func (s *schema) mapping(n *yaml.Node, t reflect.Type, path string, depth int) {
	if isNull(n) {
		return
	}
	noun := nouns[t]
	if n.Kind != yaml.MappingNode {
		s.fail(n.Line, "write it as `key: value` lines", "%s must be a mapping, got %s", s.at(displayPath(path)), kindName(n))
		return
	}
	fields := map[string]reflect.StructField{}
	var names []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		fields[name] = f
		names = append(names, name)
	}
	seen := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
			merges = append(merges, v)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			s.fail(k.Line, "keys are plain words such as `name`", "a key in %s must be a plain word, got %s", noun, kindName(k))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			s.fail(k.Line, "remove one of them", "key %q in %s is given twice (first on line %d)", k.Value, noun, first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := fields[k.Value]
		if !ok {
			s.errs.add(k.Line, unknownKeyHint(k.Value, names), "unknown key %q in %s", k.Value, noun)
			continue
		}
		p := joinPath(path, k.Value)
		s.set(p, k.Line)
		s.walk(v, f.Type, p, depth+1)
	}
	for _, m := range merges {
		if m.Kind == yaml.SequenceNode {
			for _, c := range m.Content {
				s.walk(c, t, path, depth+1)
			}
			continue
		}
		s.walk(m, t, path, depth+1)
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func displayPath(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

func unknownKeyHint(key string, valid []string) string {
	best, bestD := "", 3
	for _, v := range valid {
		if d := editDistance(key, v); d < bestD {
			best, bestD = v, d
		}
	}
	h := "valid keys: " + strings.Join(valid, ", ")
	if best != "" {
		h = fmt.Sprintf("did you mean %q? %s", best, h)
	}
	return h
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (s *schema) scalar(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind != yaml.ScalarNode {
		s.fail(n.Line, "", "%s must be a single value, got %s", s.at(path), kindName(n))
		return
	}
	if err := n.Decode(reflect.New(t).Interface()); err != nil {
		switch t.Kind() {
		case reflect.Bool:
			s.fail(n.Line, "", "%s must be true or false, got %q", s.at(path), n.Value)
		case reflect.Int, reflect.Int64:
			s.fail(n.Line, "", "%s must be a whole number, got %q", s.at(path), n.Value)
		case reflect.Float64:
			s.fail(n.Line, "", "%s must be a number, got %q", s.at(path), n.Value)
		default:
			s.fail(n.Line, "", "%s: %v", s.at(path), err)
		}
	}
}

func (s *schema) duration(n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode {
		s.fail(n.Line, "", "%s must be a duration, got %s", s.at(path), kindName(n))
		return
	}
	if isNull(n) {
		return
	}
	if _, err := model.ParseDuration(n.Value); err != nil {
		s.fail(n.Line, "use a whole number with a unit: 500ms, 30s, 5m, 1h, 7d", "%s: invalid duration %q", s.at(path), n.Value)
	}
}

func (s *schema) template(n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode {
		s.fail(n.Line, "", "%s must be a string, got %s", s.at(path), kindName(n))
		return
	}
	t, err := NewTemplate(n.Value)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "template: :")
		s.fail(n.Line, "templates use Go template syntax, e.g. {{ .Labels.container }}", "%s: invalid template: %s", s.at(path), msg)
		return
	}
	if err := checkFields(t); err != nil {
		s.fail(n.Line, "a template sees .Labels.<name>, .Annotations.<name>, .Target and .Playbook", "%s: template %s", s.at(path), err)
	}
}
