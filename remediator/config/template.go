package config

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
	"text/template"

	amtemplate "github.com/prometheus/alertmanager/template"
	"go.yaml.in/yaml/v3"
)

// TemplateData is what a playbook template sees: `{{ .Labels.container }}`, `{{ .Target }}`.
// Build it with NewTemplateData; render it only through the Render functions, which know what a
// value from an alert may do where it lands.
type TemplateData struct {
	Labels      map[string]string
	Annotations map[string]string
	Target      string
	Playbook    string
}

// NewTemplateData is what the templates of playbook pb (nil: none) see for one alert and its
// target. The target is empty while the target itself is being rendered.
func NewTemplateData(alert amtemplate.Alert, target string, pb *Playbook) TemplateData {
	d := TemplateData{Labels: alert.Labels, Annotations: alert.Annotations, Target: target}
	if pb != nil {
		d.Playbook = pb.Name
	}
	return d
}

// Template is a text/template compiled when the file is loaded, so a typo is a load error with
// a line number rather than a failed heal at 3 AM.
type Template struct {
	Text string
	tmpl *template.Template
}

// templateFuncs are the few helpers a playbook needs to shape a label into a URL or an argument.
// pathEscape and queryEscape also tell RenderURL that a value was escaped on purpose.
var templateFuncs = template.FuncMap{
	"toLower":     strings.ToLower,
	"toUpper":     strings.ToUpper,
	"trimPrefix":  func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix":  func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	"replace":     func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"pathEscape":  url.PathEscape,
	"queryEscape": url.QueryEscape,
}

// NewTemplate compiles text. Missing keys are errors, never "<no value>" in a URL.
func NewTemplate(text string) (Template, error) {
	t, err := template.New("").Option("missingkey=error").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return Template{}, err
	}
	return Template{Text: text, tmpl: t}, nil
}

// UnmarshalYAML compiles the scalar as a template.
func (t *Template) UnmarshalYAML(node *yaml.Node) error {
	var s string
	if err := node.Decode(&s); err != nil {
		return err
	}
	nt, err := NewTemplate(s)
	if err != nil {
		return fmt.Errorf("line %d: invalid template %q: %w", node.Line, s, err)
	}
	*t = nt
	return nil
}

// MarshalYAML writes the template's source.
func (t Template) MarshalYAML() (any, error) { return t.Text, nil }

// IsZero reports whether no template was given.
func (t Template) IsZero() bool { return t.Text == "" }

// String returns the template's source.
func (t Template) String() string { return t.Text }

// execute renders the template. It is unexported so that every template that sees alert data
// goes through a Render function and its rule for that kind of value.
func (t Template) execute(data TemplateData) (string, error) {
	if t.tmpl == nil {
		return t.Text, nil
	}
	var b bytes.Buffer
	if err := t.tmpl.Execute(&b, data); err != nil {
		return "", err
	}
	return b.String(), nil
}
