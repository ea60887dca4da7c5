package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/selfheal/selfheal/remediator/action"
	"github.com/selfheal/selfheal/remediator/intake"
	"github.com/selfheal/selfheal/remediator/pipeline"
	"github.com/selfheal/selfheal/remediator/store"
)

// history is a Controller holding heals; the overrides are not what these tests are about.
type history struct{ heals map[string]store.Heal }

func (h history) TargetList(pipeline.TargetPage) pipeline.TargetList { return pipeline.TargetList{} }
func (h history) Heals(store.HealFilter) ([]store.Heal, error) {
	var out []store.Heal
	for _, hl := range h.heals {
		out = append(out, hl)
	}
	return out, nil
}
func (h history) Heal(id string) (store.Heal, bool, error) {
	hl, ok := h.heals[id]
	return hl, ok, nil
}
func (h history) Awaiting(string) *pipeline.AwaitingApproval { return nil }
func (h history) History(string, bool, int) ([]store.Override, error) {
	return nil, nil
}
func (h history) PauseBy(string, string, time.Duration, string) error { return nil }
func (h history) ResumeBy(string, string) error                       { return nil }
func (h history) ResetBy(string, string) error                        { return nil }
func (h history) Approve(string, string, string) error                { return nil }
func (h history) Reject(string, string, string) error                 { return nil }

const evidenceLog = "2026-01-02T03:04:05Z level=ERROR msg=\"out of memory soon\"\n"

func restartHeal() store.Heal {
	return store.Heal{
		ID: "7", Target: "order-service", Playbook: "memory-high", Result: store.HealRestartedOutside,
		Reason: "container order-service (3f2a9c1b0d4e) was restarted by its restart policy",
		Alert: store.AlertRef{Name: "ServiceMemoryHigh", Annotations: map[string]string{
			"summary": "Memory high on order-service", "runbook_url": "docs/runbooks.md#servicememoryhigh",
		}},
		Steps: []store.StepRecord{{
			Name: "restart", Action: "docker", Outcome: store.StepSucceeded,
			Evidence: &action.Evidence{
				Object: "container order-service (3f2a9c1b0d4e)",
				State:  map[string]string{"oom_killed": "true", "restart_count": "1"},
				Log:    evidenceLog,
			},
		}},
		OutsideRestart: &store.OutsideRestart{What: "restarted by its restart policy", After: action.Incarnation{Restarts: 1, OOMKilled: true}},
	}
}

func serve(t *testing.T, o Options) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	Register(mux, o)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode
}

func TestHealByID(t *testing.T) {
	srv := serve(t, Options{Controller: history{heals: map[string]store.Heal{"7": restartHeal()}}})

	var h store.Heal
	if code := get(t, srv.URL+"/api/v1/heals/7", &h); code != http.StatusOK {
		t.Fatalf("GET /api/v1/heals/7: %d", code)
	}
	ev := h.Steps[0].Evidence
	if ev == nil || ev.Log != evidenceLog || ev.State["oom_killed"] != "true" {
		t.Errorf("evidence = %+v, want state and log", ev)
	}
	if h.Alert.Annotations["runbook_url"] != "docs/runbooks.md#servicememoryhigh" || h.OutsideRestart == nil || !h.OutsideRestart.After.OOMKilled {
		t.Errorf("heal = %+v, want its annotations and outside restart", h)
	}

	for _, tc := range []struct {
		id   string
		code int
		msg  string
	}{
		{"8", http.StatusNotFound, "no heal 8 in the history"},
		{"abc", http.StatusBadRequest, "heal id must be a number"},
		{"-1", http.StatusBadRequest, "heal id must be a number"},
	} {
		var e map[string]string
		if code := get(t, srv.URL+"/api/v1/heals/"+tc.id, &e); code != tc.code || !strings.Contains(e["error"], tc.msg) {
			t.Errorf("GET /api/v1/heals/%s: %d %v, want %d %q", tc.id, code, e, tc.code, tc.msg)
		}
	}
}

func TestHealListLeavesLogsOut(t *testing.T) {
	c := history{heals: map[string]store.Heal{"7": restartHeal()}}
	srv := serve(t, Options{Controller: c})
	var list struct{ Heals []store.Heal }
	if code := get(t, srv.URL+"/api/v1/heals", &list); code != http.StatusOK || len(list.Heals) != 1 {
		t.Fatalf("GET /api/v1/heals: %d %+v", code, list)
	}
	ev := list.Heals[0].Steps[0].Evidence
	if ev == nil || ev.Log != "" || ev.State["restart_count"] != "1" {
		t.Errorf("listed evidence = %+v, want the state without the log", ev)
	}
	if c.heals["7"].Steps[0].Evidence.Log != evidenceLog {
		t.Error("listing changed the stored heal's evidence")
	}
}

func TestHealByIDNeedsReadAuth(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := intake.LoadAuth(token, "", "")
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, Options{Controller: history{heals: map[string]store.Heal{"7": restartHeal()}}, Auth: auth, ReadAuth: true})
	resp, err := http.Get(srv.URL + "/api/v1/heals/7")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/heals/7 without the token: %s, want 401", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/heals/7", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/v1/heals/7 with the token: %s, want 200", resp.Status)
	}
}

// pages is a Controller that says which page of targets it was asked for.
type pages struct {
	history
	asked *pipeline.TargetPage
}

func (p pages) TargetList(page pipeline.TargetPage) pipeline.TargetList {
	*p.asked = page
	return pipeline.TargetList{Targets: []pipeline.TargetView{}, Total: 1}
}

func TestTargetsArePagedUnlessAllAreAskedFor(t *testing.T) {
	var asked pipeline.TargetPage
	srv := serve(t, Options{Controller: pages{asked: &asked}})
	for _, c := range []struct {
		query string
		code  int
		want  pipeline.TargetPage
	}{
		{"", 200, pipeline.TargetPage{Limit: DefaultTargetLimit}},
		{"?limit=50&after=c7", 200, pipeline.TargetPage{After: "c7", Limit: 50}},
		{"?all=true", 200, pipeline.TargetPage{}},
		{"?all=false&limit=3", 200, pipeline.TargetPage{Limit: 3}},
		{"?limit=0", 400, pipeline.TargetPage{}},
		{"?limit=10001", 400, pipeline.TargetPage{}},
		{"?limit=ten", 400, pipeline.TargetPage{}},
		{"?all=yes", 400, pipeline.TargetPage{}},
		{"?all=true&limit=5", 400, pipeline.TargetPage{}},
	} {
		asked = pipeline.TargetPage{After: "untouched"}
		var body map[string]any
		code := get(t, srv.URL+"/api/v1/targets"+c.query, &body)
		if code != c.code {
			t.Errorf("%q: %d %v, want %d", c.query, code, body, c.code)
			continue
		}
		if code != 200 {
			if asked.After != "untouched" || body["error"] == nil {
				t.Errorf("%q: refused with %v, yet the controller was asked %+v", c.query, body, asked)
			}
			continue
		}
		if asked != c.want || body["total"] != 1.0 {
			t.Errorf("%q: asked for %+v (answer %v), want %+v", c.query, asked, body, c.want)
		}
	}
}
