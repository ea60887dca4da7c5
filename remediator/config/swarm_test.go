package config

import (
	"strings"
	"testing"
)

func swarmPlaybook(step string) string {
	return "playbooks:\n  - name: api-down\n    match: ['alertname=\"SwarmServiceDown\"']\n    steps:\n      - swarm: " + step + "\n"
}

func TestSwarmStepValid(t *testing.T) {
	for _, step := range []string{
		"{action: force-update}",
		"{action: Force-Update, service: '{{ .Labels.service_name }}'}",
		"{action: rollback, service: shop_api}",
		"{action: scale, replicas: 3}",
		"{action: scale, replicas: 0, min: 0, max: 2}",
		"{action: scale, by: 1, min: 1, max: 5}",
		"{action: scale, by: -2, min: 1, max: 5}",
	} {
		cfg, err := Parse([]byte(swarmPlaybook(step)), "p.yml")
		if err != nil {
			t.Errorf("%s: %v", step, err)
			continue
		}
		st := cfg.Playbooks[0].Steps[0]
		if st.Action() != "swarm" || st.Swarm == nil || st.Name != "1-swarm" {
			t.Errorf("%s: step is %q named %q, want a swarm step named 1-swarm", step, st.Action(), st.Name)
		}
		if a := st.Swarm.Action; a != strings.ToLower(a) {
			t.Errorf("%s: action %q is not normalised", step, a)
		}
	}
}

func TestSwarmStepInvalid(t *testing.T) {
	for _, tc := range []struct{ step, want string }{
		{"{action: restart}", `p.yml:5: playbook "api-down": step 1: swarm.action "restart" is not supported (hint: use one of force-update, scale, rollback)`},
		{"{}", `p.yml:5: playbook "api-down": step 1: swarm.action "" is not supported (hint: use one of force-update, scale, rollback)`},
		{"{action: rollback, service: ../nodes}", `p.yml:5: playbook "api-down": step 1: swarm.service "../nodes" is not a valid service name (hint: service names are letters, digits, '_' and '-', at most 63)`},
		{"{action: force-update, replicas: 2}", `p.yml:5: playbook "api-down": step 1: swarm.replicas is only used by action scale, not "force-update" (hint: remove replicas, or use action: scale)`},
		{"{action: scale}", `p.yml:5: playbook "api-down": step 1: swarm scale needs replicas (a number) or by (a step) (hint: e.g. swarm: {action: scale, by: 1, min: 1, max: 5} or swarm: {action: scale, replicas: 3})`},
		{"{action: scale, replicas: 2, by: 1}", `p.yml:5: playbook "api-down": step 1: swarm scale takes replicas or by, not both (hint: keep one of them)`},
		{"{action: scale, by: 0, min: 1, max: 3}", `p.yml:5: playbook "api-down": step 1: swarm.by must not be 0 (hint: e.g. by: 1 to add a task, by: -1 to remove one)`},
		{"{action: scale, by: 1, max: 3}", `p.yml:5: playbook "api-down": step 1: swarm scale by a step needs min and max (hint: add both, e.g. min: 1, max: 5)`},
		{"{action: scale, by: 1, min: 4, max: 3}", `p.yml:5: playbook "api-down": step 1: swarm.max (3) is below swarm.min (4) (hint: raise max or lower min)`},
		{"{action: scale, replicas: -1}", `p.yml:5: playbook "api-down": step 1: swarm.replicas must not be negative, got -1 (hint: use 0 or more)`},
		{"{action: scale, replicas: 9, max: 5}", `p.yml:5: playbook "api-down": step 1: swarm.replicas (9) is outside min and max (hint: keep replicas within min and max)`},
		{"{action: scale, replicas: two}", `p.yml:5: playbook "api-down": step 1: swarm.replicas must be a whole number, got "two"`},
		{"{action: scale, replica: 2}", `p.yml:5: unknown key "replica" in a swarm action`},
	} {
		_, err := Parse([]byte(swarmPlaybook(tc.step)), "p.yml")
		if err == nil {
			t.Errorf("%s: accepted, want %s", tc.step, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got: %v\nwant: %s", tc.step, err, tc.want)
		}
	}
}

// FuzzRenderSwarmService: whatever a label holds, the service a swarm step names is the label's
// value itself (surrounding space aside), a valid service name that cannot be read as another
// API path, or the step is refused.
func FuzzRenderSwarmService(f *testing.F) {
	for _, v := range append([]string{"shop_api", " api ", "api/update", "..", "a.b", strings.Repeat("x", 64)}, hostile...) {
		f.Add(v)
	}
	tmpl, err := NewTemplate("{{ .Labels.service_name }}")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, err := RenderSwarmService(tmpl, TemplateData{Labels: map[string]string{"service_name": v}})
		if err != nil {
			return
		}
		if s != strings.TrimSpace(v) || len(s) > 63 || strings.ContainsAny(s, "/.?#% \t\n") {
			t.Fatalf("label %q rendered service %q", v, s)
		}
	})
}
