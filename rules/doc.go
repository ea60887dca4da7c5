// Package rules holds the Prometheus recording and alerting rules of selfheal (the *.yml files in
// this directory) and their promtool unit tests (tests/*.yml). The package has no Go code of its
// own: its tests run promtool on the files, check that every alerting rule, per alert name and
// severity, has a unit test where it fires and one where it does not, and that its runbook_url
// and every link of the documentation lead to a heading that exists.
package rules
