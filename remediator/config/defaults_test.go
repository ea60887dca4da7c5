package config

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestValidateOnlyValidates runs validation a second time over a loaded file: every default and
// every canonical form was set before it, so it must find nothing to change in any step.
func TestValidateOnlyValidates(t *testing.T) {
	for _, file := range []string{"testdata/good.yml", "../playbooks.yml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		root, err := parseDocument(data)
		if err != nil {
			t.Fatal(err)
		}
		e := &errs{file: file}
		s := newSchema(e, root)
		s.walk(root, reflect.TypeOf(Config{}), "", 0)
		cfg, err := decode(root)
		if err != nil {
			t.Fatal(err)
		}
		before, _ := decode(root)
		validate(cfg, s.pos, e, Options{})
		if err := e.err(); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for i, pb := range cfg.Playbooks {
			for j, st := range pb.Steps {
				got, was := stepYAML(t, st), stepYAML(t, before.Playbooks[i].Steps[j])
				if got != was {
					t.Errorf("%s: playbook %q step %d changed in validation:\n%s\nwas\n%s", file, pb.Name, j+1, got, was)
				}
			}
		}
	}
}

// stepYAML is a step as the file would write it (templates compare by their text).
func stepYAML(t *testing.T, st *Step) string {
	t.Helper()
	b, err := yaml.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStepDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`
playbooks:
  - name: p
    match: ['alertname="A"']
    step_timeout: 30s
    steps:
      - http: {url: 'http://x:8080/', method: put}
      - docker: {action: KILL}
      - docker: {action: kill, signal: pwr}
      - docker: {action: kill, signal: "31"}
      - wait: 1m
      - name: bounded
        wait: 1m
        timeout: 2m
`), "t.yml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range cfg.Playbooks[0].Steps {
		s := st.Name + " " + st.Timeout.String()
		switch {
		case st.HTTP != nil:
			s += " " + st.HTTP.Method
		case st.Docker != nil:
			s += " " + st.Docker.Action + " " + st.Docker.Signal
		}
		got = append(got, s)
	}
	want := []string{"1-http 30s PUT", "2-docker 30s kill SIGKILL", "3-docker 30s kill SIGPWR", "4-docker 30s kill SIGSYS", "5-wait 1m30s", "bounded 2m"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestSignalsAccepted: the loader takes exactly the signals of the table, by name or number.
func TestSignalsAccepted(t *testing.T) {
	for signal, ok := range map[string]bool{"SIGPWR": true, "term": true, "9": true, "30": true, "SIGRTMIN": false, "34": false, "64": false, "0": false, "-9": false} {
		_, err := Parse([]byte(`
playbooks:
  - name: p
    match: ['alertname="A"']
    steps:
      - docker: {action: kill, signal: "`+signal+`"}
`), "t.yml")
		if (err == nil) != ok {
			t.Errorf("signal %q: err = %v, want accepted %v", signal, err, ok)
		}
	}
}
