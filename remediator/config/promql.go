package config

import (
	"fmt"

	"github.com/prometheus/prometheus/promql/parser"
)

// checkPromQL renders a query template with placeholder values and parses the result with
// Prometheus' own parser, so that a PromQL typo is a load error with a line number rather than
// a verification that can never succeed. Templates that read values dynamically (range, index)
// cannot be rendered without an alert and are left to run time.
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
	q, err := t.Execute(data)
	if err != nil {
		return nil // depends on values only an alert has
	}
	if _, err := parser.NewParser(parser.Options{}).ParseExpr(q); err != nil {
		return fmt.Errorf("is not valid PromQL: %v", err)
	}
	return nil
}
