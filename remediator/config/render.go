package config

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"text/template/parse"
)

// Values from alert labels end up in URLs, container names and program arguments. Whoever can
// post an alert chooses them, so each place checks what a value may look like before it is used.

// urlSafeValue is what an unescaped value may contain where it becomes part of a URL: enough for
// host names, ports and path segments, and nothing that can start a new path segment, a query, a
// fragment or user info ("/", "?", "#", "@", "%", spaces).
var urlSafeValue = regexp.MustCompile(`^[A-Za-z0-9._~:-]*$`)

// escapers are the functions whose output is safe in a URL whatever their input.
var escapers = map[string]bool{"pathEscape": true, "queryEscape": true, "urlquery": true}

// refs is what a template reads from its data, as far as the parse tree says.
type refs struct {
	labels, annotations map[string]bool // read without escaping
	allLabels, allAnns  map[string]bool // read at all
	target, playbook    bool
	// dynamic: the template reads values in ways we do not follow (range, index, variables), so
	// every value is treated as used.
	dynamic bool
	// unknown lists fields that TemplateData does not have, such as ".Label.container".
	unknown []string
}

func templateRefs(t Template) refs {
	r := refs{labels: map[string]bool{}, annotations: map[string]bool{}, allLabels: map[string]bool{}, allAnns: map[string]bool{}}
	if t.tmpl == nil || t.tmpl.Tree == nil {
		return r
	}
	r.list(t.tmpl.Tree.Root, false, false)
	return r
}

func (r *refs) list(l *parse.ListNode, dotUnknown, escaped bool) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		r.node(n, dotUnknown, escaped)
	}
}

func (r *refs) node(n parse.Node, dotUnknown, escaped bool) {
	switch n := n.(type) {
	case *parse.ActionNode:
		r.pipe(n.Pipe, dotUnknown, escaped)
	case *parse.IfNode:
		r.pipe(n.Pipe, dotUnknown, escaped)
		r.list(n.List, dotUnknown, escaped)
		r.list(n.ElseList, dotUnknown, escaped)
	case *parse.RangeNode:
		r.dynamic = true
		r.pipe(n.Pipe, dotUnknown, escaped)
		r.list(n.List, true, escaped)
		r.list(n.ElseList, dotUnknown, escaped)
	case *parse.WithNode:
		r.dynamic = true
		r.pipe(n.Pipe, dotUnknown, escaped)
		r.list(n.List, true, escaped)
		r.list(n.ElseList, dotUnknown, escaped)
	case *parse.TemplateNode:
		r.dynamic = true
	case *parse.PipeNode:
		r.pipe(n, dotUnknown, escaped)
	case *parse.FieldNode:
		r.field(n.Ident, dotUnknown, escaped)
	case *parse.VariableNode:
		if len(n.Ident) > 1 && n.Ident[0] == "$" {
			r.field(n.Ident[1:], false, escaped)
		} else {
			r.dynamic = true
		}
	case *parse.ChainNode, *parse.DotNode:
		r.dynamic = true
	}
}

func (r *refs) pipe(p *parse.PipeNode, dotUnknown, escaped bool) {
	if p == nil {
		return
	}
	if len(p.Decl) > 0 {
		r.dynamic = true
	}
	// `.Labels.x | pathEscape`: everything before the final escaper is escaped.
	if n := len(p.Cmds); n > 1 && isEscaper(p.Cmds[n-1]) {
		escaped = true
	}
	for _, c := range p.Cmds {
		cmdEscaped := escaped || isEscaper(c) // `pathEscape .Labels.x`
		for _, a := range c.Args {
			r.node(a, dotUnknown, cmdEscaped)
		}
	}
}

func isEscaper(c *parse.CommandNode) bool {
	if len(c.Args) == 0 {
		return false
	}
	id, ok := c.Args[0].(*parse.IdentifierNode)
	return ok && escapers[id.Ident]
}

func (r *refs) field(ident []string, dotUnknown, escaped bool) {
	if dotUnknown || len(ident) == 0 {
		return
	}
	switch ident[0] {
	case "Labels", "Annotations":
		if len(ident) != 2 {
			if len(ident) == 1 {
				r.dynamic = true
				return
			}
			r.unknown = append(r.unknown, "."+strings.Join(ident, "."))
			return
		}
		if ident[0] == "Labels" {
			r.allLabels[ident[1]] = true
		} else {
			r.allAnns[ident[1]] = true
		}
		if escaped {
			return
		}
		if ident[0] == "Labels" {
			r.labels[ident[1]] = true
		} else {
			r.annotations[ident[1]] = true
		}
	case "Target", "Playbook":
		if len(ident) > 1 {
			r.unknown = append(r.unknown, "."+strings.Join(ident, "."))
			return
		}
		if !escaped {
			if ident[0] == "Target" {
				r.target = true
			} else {
				r.playbook = true
			}
		}
	default:
		r.unknown = append(r.unknown, "."+strings.Join(ident, "."))
	}
}

// checkFields reports fields a template reads that TemplateData does not have: at load time,
// instead of a failed heal later.
func checkFields(t Template) error {
	r := templateRefs(t)
	if len(r.unknown) == 0 {
		return nil
	}
	return fmt.Errorf("refers to %s, which a template cannot see", strings.Join(r.unknown, ", "))
}

// usedValues returns the values a template reads unescaped, named for messages.
func usedValues(t Template, data TemplateData) map[string]string {
	r := templateRefs(t)
	out := map[string]string{}
	add := func(kind string, m map[string]string, names map[string]bool) {
		for k, v := range m {
			if r.dynamic || names[k] {
				out[fmt.Sprintf("%s %q", kind, k)] = v
			}
		}
	}
	add("label", data.Labels, r.labels)
	add("annotation", data.Annotations, r.annotations)
	if r.dynamic || r.target {
		out["target"] = data.Target
	}
	if r.dynamic || r.playbook {
		out["playbook name"] = data.Playbook
	}
	return out
}

// RenderURL renders an http step's URL for one alert. The result must be an http or https URL
// with a host and no user info or fragment, and every value the template inserts without
// pathEscape/queryEscape must be made of letters, digits and . _ ~ : - only, so that a label
// cannot add path segments, a query, or redirect the call to another host by way of "user@host".
func RenderURL(t Template, data TemplateData) (string, error) {
	if err := checkValues(t, data, urlSafeValue, "letters, digits and . _ ~ : -",
		" (pipe it through pathEscape or queryEscape in the template if it is meant to be escaped)"); err != nil {
		return "", err
	}
	s, err := t.execute(data)
	if err != nil {
		return "", fmt.Errorf("url template %q: %w", t.Text, err)
	}
	if err := checkURL(s); err != nil {
		return "", err
	}
	return s, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("rendered url %q is not valid: %w", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("rendered url %q: scheme must be http or https", s)
	case u.Hostname() == "":
		return fmt.Errorf("rendered url %q has no host", s)
	case u.User != nil:
		return fmt.Errorf("rendered url %q must not contain user info", s)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Errorf("rendered url %q must not contain a fragment", s)
	}
	return nil
}

func checkValues(t Template, data TemplateData, re *regexp.Regexp, allowed, hint string) error {
	used := usedValues(t, data)
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !re.MatchString(used[n]) {
			return fmt.Errorf("%s has value %q, which may only contain %s here%s", n, used[n], allowed, hint)
		}
	}
	return nil
}

// RenderContainerName renders a docker step's container name; the result must be a valid Docker
// container name (ValidContainerName), so that a label cannot name something else (an id prefix
// with a slash, a path).
func RenderContainerName(t Template, data TemplateData) (string, error) {
	s, err := t.execute(data)
	if err != nil {
		return "", fmt.Errorf("container template %q: %w", t.Text, err)
	}
	s = strings.TrimPrefix(strings.TrimSpace(s), "/") // Docker's API reports names with a leading slash
	if s == "" {
		return "", fmt.Errorf("container template %q rendered empty for this alert", t.Text)
	}
	if err := ValidContainerName(s); err != nil {
		return "", fmt.Errorf("container template %q: %w", t.Text, err)
	}
	return s, nil
}

// RenderTarget renders a playbook's target (surrounding space trimmed); the result must be a
// valid target (ValidTarget). A zero template renders DefaultTarget.
func RenderTarget(t Template, data TemplateData) (string, error) {
	if t.IsZero() {
		t = defaultTarget
	}
	s, err := t.execute(data)
	if err != nil {
		return "", fmt.Errorf("target template: %w", err)
	}
	s = strings.TrimSpace(s)
	if err := ValidTarget(s); err != nil {
		return "", err
	}
	return s, nil
}

// RenderArgv renders a command step's arguments. They go to the program directly, never through
// a shell, so quoting cannot break out; what a label could still do is smuggle in an option, so
// an argument may start with "-" only when its template does. A NUL byte cannot be passed to a
// program at all and is refused.
func RenderArgv(argv []Template, data TemplateData) ([]string, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("command has no argv")
	}
	out := make([]string, len(argv))
	for i, t := range argv {
		s, err := t.execute(data)
		if err != nil {
			return nil, fmt.Errorf("argv[%d] template %q: %w", i, t.Text, err)
		}
		if strings.ContainsRune(s, 0) {
			return nil, fmt.Errorf("argv[%d] contains a NUL byte", i)
		}
		if strings.HasPrefix(s, "-") && !strings.HasPrefix(t.Text, "-") {
			return nil, fmt.Errorf("argv[%d] rendered %q, which starts with \"-\" although its template %q does not: a label value must not become an option", i, s, t.Text)
		}
		if i == 0 && s == "" {
			return nil, fmt.Errorf("argv[0] rendered empty")
		}
		out[i] = s
	}
	return out, nil
}
