package config

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/prometheus/prometheus/promql/parser"
)

// Alert values in PromQL (verify.query, preconditions). A label value is untrusted: with plain
// text substitution, `instance="{{ .Labels.instance }}"` and the value `x"} or vector(1) or
// up{a="` would make any query hold. The rule:
//
//   - A value may stand only inside a double- or single-quoted string of the query (a matcher's
//     value or a string argument). There it is escaped as PromQL string content (quotes,
//     backslashes and control bytes as octal escapes), so it stays one string whatever it
//     holds, and Prometheus compares against the label's exact value. Inside a `=~` or `!~`
//     matcher it is also regex-quoted, so that ".*" matches only ".*".
//   - A value anywhere else (a metric or label name, a number, a duration, a backtick string, a
//     comment) is refused: it cannot be made safe there. The loader reports this for every
//     template it can follow; RenderQuery refuses the rest with the reason, so a precondition
//     does not hold, or a verification fails, saying which value was refused.
//   - The rendered query must lex into the same tokens as the template rendered with
//     placeholders, strings aside, and must parse.

// checkPromQL renders a query template with placeholder values and checks it with Prometheus'
// own lexer and parser, so that a PromQL typo, or an alert value placed outside a quoted string,
// is a load error with a line number rather than a verification that can never succeed.
// Templates that read values dynamically (range, index) cannot be rendered without an alert
// and are left to RenderQuery.
func checkPromQL(t Template) error {
	r := templateRefs(t)
	if r.dynamic || len(r.unknown) > 0 || t.tmpl == nil {
		return nil
	}
	data := TemplateData{Labels: map[string]string{}, Annotations: map[string]string{}, Target: "target", Playbook: "playbook"}
	for k := range r.allLabels {
		data.Labels[k] = "value"
	}
	for k := range r.allAnns {
		data.Annotations[k] = "value"
	}
	q, err := t.execute(data)
	if err != nil {
		return nil // depends on values only an alert has
	}
	if _, err := parser.NewParser(parser.Options{}).ParseExpr(q); err != nil {
		return fmt.Errorf("is not valid PromQL: %v", err)
	}
	shape, names, err := queryShape(t, data)
	if err != nil {
		return nil
	}
	_, err = valueContexts(shape, names)
	return err
}

// RenderQuery renders a templated PromQL expression for one alert by the rule above. Its error
// says which value was refused and why.
func RenderQuery(t Template, data TemplateData) (string, error) {
	shape, names, err := queryShape(t, data)
	if err != nil {
		return "", fmt.Errorf("query template %q: %w", t.Text, err)
	}
	regex, err := valueContexts(shape, names)
	if err != nil {
		return "", fmt.Errorf("query template %q %w", t.Text, err)
	}
	q, err := t.execute(data.withValues(func(i int, _, v string) string {
		if regex[i] {
			v = regexp.QuoteMeta(v)
		}
		return escapePromQLString(v)
	}))
	if err != nil {
		return "", fmt.Errorf("query template %q: %w", t.Text, err)
	}
	if strings.TrimSpace(q) == "" {
		return "", fmt.Errorf("query template %q rendered an empty query", t.Text)
	}
	if err := sameTokens(shape, q); err != nil {
		return "", fmt.Errorf("query template %q: refused for this alert: %w", t.Text, err)
	}
	if _, err := parser.NewParser(parser.Options{}).ParseExpr(q); err != nil {
		return "", fmt.Errorf("query template %q rendered invalid PromQL for this alert: %v", t.Text, err)
	}
	return q, nil
}

// A placeholder is made of letters and digits only, so it lexes as part of whatever it stands
// in (a string, an identifier, a number's neighbour), and case-insensitively recognisable after
// toUpper or toLower.
var placeholderPattern = regexp.MustCompile(`(?i)zzalertvalue(\d+)zz`)

func placeholder(i int) string { return "zzalertvalue" + strconv.Itoa(i) + "zz" }

// queryShape renders t with every value of data replaced by a placeholder and returns it with
// the values' names, indexed like the placeholders.
func queryShape(t Template, data TemplateData) (string, []string, error) {
	var names []string
	shape, err := t.execute(data.withValues(func(i int, name, _ string) string {
		names = append(names, name)
		return placeholder(i)
	}))
	return shape, names, err
}

// withValues returns data with every value replaced by f(i, name, value), in a fixed order
// (labels and annotations by name, then target and playbook).
func (d TemplateData) withValues(f func(i int, name, v string) string) TemplateData {
	out := TemplateData{Labels: make(map[string]string, len(d.Labels)), Annotations: make(map[string]string, len(d.Annotations))}
	i := 0
	for _, k := range sortedKeys(d.Labels) {
		out.Labels[k] = f(i, fmt.Sprintf("label %q", k), d.Labels[k])
		i++
	}
	for _, k := range sortedKeys(d.Annotations) {
		out.Annotations[k] = f(i, fmt.Sprintf("annotation %q", k), d.Annotations[k])
		i++
	}
	out.Target = f(i, "target", d.Target)
	out.Playbook = f(i+1, "playbook name", d.Playbook)
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// valueContexts finds where each placeholder stands in shape: regex[i] is true when value i is
// in a regex matcher. A value outside a quoted string is an error naming it.
func valueContexts(shape string, names []string) (map[int]bool, error) {
	items, err := lex(shape)
	if err != nil {
		return nil, fmt.Errorf("is not valid PromQL: %v", err)
	}
	regex := map[int]bool{}
	for j, it := range items {
		for _, m := range placeholderPattern.FindAllStringSubmatch(it.Val, -1) {
			i, _ := strconv.Atoi(m[1])
			name := "a value"
			if i < len(names) {
				name = names[i]
			}
			if it.Typ != parser.STRING || it.Val[0] == '`' {
				return nil, valueError{fmt.Sprintf("puts %s outside a quoted string, where it could change the query", name)}
			}
			inRegex := j > 0 && (items[j-1].Typ == parser.EQL_REGEX || items[j-1].Typ == parser.NEQ_REGEX)
			if was, seen := regex[i]; seen && was != inRegex {
				return nil, valueError{fmt.Sprintf("uses %s both in a regex matcher and as a plain string", name)}
			}
			regex[i] = inRegex
		}
	}
	return regex, nil
}

// sameTokens checks that the rendered query q has the structure of shape: the same tokens, of
// which only strings may differ.
func sameTokens(shape, q string) error {
	want, err := lex(shape)
	if err != nil {
		return err
	}
	got, err := lex(q)
	if err != nil {
		return fmt.Errorf("the alert's values make it invalid PromQL: %v", err)
	}
	if len(got) != len(want) {
		return errors.New("the alert's values change the structure of the query")
	}
	for i := range got {
		if got[i].Typ != want[i].Typ || (got[i].Typ != parser.STRING && got[i].Val != want[i].Val) {
			return errors.New("the alert's values change the structure of the query")
		}
	}
	return nil
}

// valueError is a query template that places an alert value where it cannot be made safe.
type valueError struct{ msg string }

func (e valueError) Error() string { return e.msg }

// promQLHint is the hint for an error of checkPromQL.
func promQLHint(err error) string {
	if errors.As(err, new(valueError)) {
		return `alert values go inside double or single quotes, as in instance="{{ .Labels.instance }}"; use each in exact or regex matchers, not both`
	}
	return "test the expression in Prometheus' expression browser first"
}

func lex(q string) ([]parser.Item, error) {
	l := parser.Lex(q)
	var items []parser.Item
	for {
		var it parser.Item
		l.NextItem(&it)
		switch it.Typ {
		case parser.EOF:
			return items, nil
		case parser.ERROR:
			return nil, errors.New(it.Val)
		}
		items = append(items, it)
	}
}

// escapePromQLString escapes s for the inside of a double- or single-quoted PromQL string:
// backslashes, both quotes, control bytes and invalid UTF-8 as octal escapes (\042), which both
// kinds of string accept and which toUpper or toLower in the template cannot change; everything
// else, unicode included, as it is.
func escapePromQLString(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		c := s[i]
		if c == '\\' || c == '"' || c == '\'' || c < 0x20 || c == 0x7f || (r == utf8.RuneError && size == 1) {
			fmt.Fprintf(&b, `\%03o`, c)
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}
