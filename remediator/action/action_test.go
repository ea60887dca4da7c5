package action

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/selfheal/selfheal/remediator/config"
)

func mustTemplate(t *testing.T, s string) config.Template {
	t.Helper()
	tm, err := config.NewTemplate(s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

func request(st *config.Step, labels map[string]string) Request {
	return Request{
		Playbook: &config.Playbook{Name: "memory-high"},
		Step:     st,
		Alert: template.Alert{
			Status:      "firing",
			Labels:      template.KV(labels),
			Annotations: template.KV{"summary": "memory at 93%"},
			StartsAt:    time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
			Fingerprint: "3f2a9c",
		},
		Target: labels["container"],
	}
}

func httpStep(t *testing.T, urlTmpl string, timeout time.Duration) *config.Step {
	return &config.Step{Name: "flush-cache", Timeout: model.Duration(timeout),
		HTTP: &config.HTTPAction{URL: mustTemplate(t, urlTmpl)}}
}

func TestHTTPRunner(t *testing.T) {
	var hits atomic.Int32
	var last atomic.Pointer[http.Request]
	var lastBody atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		b, _ := io.ReadAll(r.Body)
		last.Store(r)
		lastBody.Store(string(b))
		switch r.URL.Path {
		case "/recover/flush-cache":
			w.Write([]byte(`{"freed_bytes": 1048576}`))
		case "/recover/broken":
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte("pool reset failed:\nno database\x1b[31m"))
		case "/recover/conflict":
			w.WriteHeader(http.StatusConflict)
		case "/recover/moved":
			http.Redirect(w, r, "http://127.0.0.1:1/elsewhere", http.StatusFound)
		case "/recover/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	labels := map[string]string{"instance": host, "container": "order-service", "alertname": "ServiceMemoryHigh"}
	r := &HTTPRunner{}

	t.Run("default POST, 2xx, response in detail", func(t *testing.T) {
		detail, err := r.Run(context.Background(), request(httpStep(t, "http://{{ .Labels.instance }}/recover/flush-cache", time.Second), labels))
		if err != nil {
			t.Fatal(err)
		}
		if want := "POST " + srv.URL + "/recover/flush-cache: 200 OK in "; !strings.HasPrefix(detail, want) || !strings.HasSuffix(detail, `{"freed_bytes": 1048576}`) {
			t.Errorf("detail = %q", detail)
		}
		if got := last.Load(); got.Method != http.MethodPost || got.Header.Get("User-Agent") != "selfheal-remediator" {
			t.Errorf("request = %s %v", got.Method, got.Header)
		}
	})
	t.Run("method, headers, body", func(t *testing.T) {
		st := httpStep(t, "http://{{ .Labels.instance }}/recover/flush-cache?alert={{ .Labels.alertname }}", time.Second)
		st.HTTP.Method, st.HTTP.Body = "PUT", `{"reason":"memory"}`
		st.HTTP.Headers = map[string]string{"X-Requested-By": "selfheal"}
		if _, err := r.Run(context.Background(), request(st, labels)); err != nil {
			t.Fatal(err)
		}
		got := last.Load()
		if got.Method != "PUT" || got.Header.Get("X-Requested-By") != "selfheal" || got.Header.Get("Content-Type") != "application/json" ||
			lastBody.Load() != `{"reason":"memory"}` || got.URL.Query().Get("alert") != "ServiceMemoryHigh" {
			t.Errorf("request = %s %s %v body %q", got.Method, got.URL, got.Header, lastBody.Load())
		}
	})
	t.Run("unexpected status, snippet in the error", func(t *testing.T) {
		_, err := r.Run(context.Background(), request(httpStep(t, "http://{{ .Labels.instance }}/recover/broken", time.Second), labels))
		want := "POST " + srv.URL + "/recover/broken: got 500 Internal Server Error, want 2xx: pool reset failed: no database [31m"
		if err == nil || err.Error() != want {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	})
	t.Run("expect_status", func(t *testing.T) {
		st := httpStep(t, "http://{{ .Labels.instance }}/recover/conflict", time.Second)
		st.HTTP.ExpectStatus = []int{200, 409}
		if _, err := r.Run(context.Background(), request(st, labels)); err != nil {
			t.Errorf("409 expected: %v", err)
		}
		st.HTTP.ExpectStatus = []int{200, 204}
		if _, err := r.Run(context.Background(), request(st, labels)); err == nil || !strings.Contains(err.Error(), "want 200 or 204") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("redirects are not followed", func(t *testing.T) {
		_, err := r.Run(context.Background(), request(httpStep(t, "http://{{ .Labels.instance }}/recover/moved", time.Second), labels))
		if err == nil || !strings.Contains(err.Error(), "got 302 Found") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("timeout from the step", func(t *testing.T) {
		start := time.Now()
		_, err := r.Run(context.Background(), request(httpStep(t, "http://{{ .Labels.instance }}/recover/slow", 200*time.Millisecond), labels))
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "/recover/slow: no result within") {
			t.Errorf("err = %v", err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("took %s", took)
		}
	})
	t.Run("unsafe label never reaches the network", func(t *testing.T) {
		before := hits.Load()
		bad := map[string]string{"instance": host + "/recover/flush-cache?x=", "container": "c"}
		_, err := r.Run(context.Background(), request(httpStep(t, "http://{{ .Labels.instance }}/recover/broken", time.Second), bad))
		if err == nil || !strings.Contains(err.Error(), `label "instance" has value`) {
			t.Errorf("err = %v", err)
		}
		if hits.Load() != before {
			t.Error("the request was sent")
		}
	})
	t.Run("missing label", func(t *testing.T) {
		_, err := r.Run(context.Background(), request(httpStep(t, "http://{{ .Labels.pod }}:8080/", time.Second), labels))
		if err == nil || !strings.Contains(err.Error(), `no entry for key "pod"`) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		_, err := r.Run(context.Background(), request(httpStep(t, "http://127.0.0.1:1/recover/flush-cache", time.Second), labels))
		if err == nil || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("err = %v", err)
		}
	})
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is part of every Unix system: %v", name, err)
	}
	return p
}

func commandStep(t *testing.T, timeout time.Duration, argv ...string) *config.Step {
	st := &config.Step{Name: "run", Timeout: model.Duration(timeout), Command: &config.CommandAction{}}
	for _, a := range argv {
		st.Command.Argv = append(st.Command.Argv, mustTemplate(t, a))
	}
	return st
}

func TestCommandRunner(t *testing.T) {
	labels := map[string]string{"container": "order-service", "alertname": "ServiceMemoryHigh", "com.docker/compose-service": "order"}
	r := CommandRunner{}
	ctx := context.Background()

	if d, err := r.Run(ctx, request(commandStep(t, time.Second, lookPath(t, "true")), labels)); err != nil || !strings.Contains(d, "exited 0") {
		t.Errorf("true: %q, %v", d, err)
	}
	if _, err := r.Run(ctx, request(commandStep(t, time.Second, lookPath(t, "false")), labels)); err == nil ||
		!strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("false: %v", err)
	}
	// A plain program name is looked up in PATH.
	if _, err := r.Run(ctx, request(commandStep(t, time.Second, "true"), labels)); err != nil {
		t.Errorf("true from PATH: %v", err)
	}
	if _, err := r.Run(ctx, request(commandStep(t, time.Second, "/nonexistent/flush"), labels)); err == nil ||
		!strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing program: %v", err)
	}

	t.Run("environment: the alert and PATH, nothing else", func(t *testing.T) {
		t.Setenv("SELFHEAL_TEST_SECRET", "do-not-leak")
		st := commandStep(t, time.Second, lookPath(t, "env"))
		st.Command.Env = map[string]string{"NOTIFY_CHANNEL": "ops"}
		if _, err := r.Run(ctx, request(st, labels)); err != nil {
			t.Fatal(err)
		}
		env := commandEnv(request(st, labels))
		joined := strings.Join(env, "\n")
		for _, want := range []string{
			"ALERT_LABEL_CONTAINER=order-service", "ALERT_LABEL_ALERTNAME=ServiceMemoryHigh",
			"ALERT_LABEL_COM_DOCKER_COMPOSE_SERVICE=order", "ALERT_ANNOTATION_SUMMARY=memory at 93%",
			"ALERT_TARGET=order-service", "ALERT_PLAYBOOK=memory-high", "ALERT_STEP=run", "ALERT_STATUS=firing",
			"ALERT_FINGERPRINT=3f2a9c", "ALERT_STARTS_AT=2026-11-25T10:00:00Z", "NOTIFY_CHANNEL=ops", "PATH=",
		} {
			if !strings.Contains(joined, want) {
				t.Errorf("env lacks %s:\n%s", want, joined)
			}
		}
		if len(env) != 12 {
			t.Errorf("env has %d entries, want 12:\n%s", len(env), joined)
		}
		// And the program really sees it, and nothing of the remediator's own environment.
		pe := lookPath(t, "printenv")
		if d, err := r.Run(ctx, request(commandStep(t, time.Second, pe, "ALERT_LABEL_CONTAINER"), labels)); err != nil || !strings.HasSuffix(d, ": order-service") {
			t.Errorf("printenv ALERT_LABEL_CONTAINER: %q, %v", d, err)
		}
		if d, err := r.Run(ctx, request(commandStep(t, time.Second, pe, "SELFHEAL_TEST_SECRET"), labels)); err == nil {
			t.Errorf("the remediator's environment leaked: %q", d)
		}
	})

	t.Run("arguments are never shell syntax", func(t *testing.T) {
		st := commandStep(t, time.Second, lookPath(t, "echo"), "{{ .Labels.container }}")
		d, err := r.Run(ctx, request(st, map[string]string{"container": "x; kill 1 $(id) `id`"}))
		if err != nil || !strings.HasSuffix(d, ": x; kill 1 $(id) `id`") {
			t.Errorf("detail = %q, %v", d, err)
		}
		if _, err := r.Run(ctx, request(st, map[string]string{"container": "--help"})); err == nil ||
			!strings.Contains(err.Error(), "must not become an option") {
			t.Errorf("option from a label: %v", err)
		}
	})

	t.Run("output tail in the error", func(t *testing.T) {
		st := commandStep(t, time.Second, lookPath(t, "ls"), "/nonexistent-selfheal-dir")
		if _, err := r.Run(ctx, request(st, labels)); err == nil || !strings.Contains(err.Error(), "exit status 2") ||
			!strings.Contains(err.Error(), "/nonexistent-selfheal-dir") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("timeout kills the program", func(t *testing.T) {
		start := time.Now()
		_, err := r.Run(ctx, request(commandStep(t, 200*time.Millisecond, lookPath(t, "sleep"), "30"), labels))
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "no result within") {
			t.Errorf("err = %v", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("took %s", took)
		}
	})
}

func waitStep(d time.Duration) *config.Step {
	w := model.Duration(d)
	return &config.Step{Name: "settle", Wait: &w}
}

func TestWaitRunner(t *testing.T) {
	start := time.Now()
	d, err := WaitRunner{}.Run(context.Background(), request(waitStep(50*time.Millisecond), nil))
	if err != nil || d != "waited 50ms" || time.Since(start) < 50*time.Millisecond {
		t.Errorf("%q, %v after %s", d, err, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start = time.Now()
	if _, err := (WaitRunner{}).Run(ctx, request(waitStep(time.Minute), nil)); !errors.Is(err, context.Canceled) || time.Since(start) > time.Second {
		t.Errorf("cancel: %v after %s", err, time.Since(start))
	}
}

type fakeDocker struct {
	got   Request
	block bool
}

func (f *fakeDocker) Kind() string { return "docker" }

func (f *fakeDocker) Run(ctx context.Context, req Request) (string, error) {
	f.got = req
	if f.block {
		<-ctx.Done()
		return "", ctx.Err()
	}
	return "restarted container " + req.Target, nil
}

func TestDispatcher(t *testing.T) {
	ctx := context.Background()
	labels := map[string]string{"container": "order-service"}
	docker := &config.Step{Name: "restart", Timeout: model.Duration(100 * time.Millisecond), Docker: &config.DockerAction{Action: "restart"}}

	if _, err := NewDispatcher(DispatcherOptions{}).Run(ctx, request(docker, labels)); !errors.Is(err, ErrNotConfigured) ||
		err.Error() != "docker steps cannot run: actions of this kind are not configured (start the remediator with its docker flags)" {
		t.Errorf("no docker: %v", err)
	}
	fd := &fakeDocker{}
	d := NewDispatcher(DispatcherOptions{Actuators: []Actuator{fd}})
	if detail, err := d.Run(ctx, request(docker, labels)); err != nil || detail != "restarted container order-service" || fd.got.Step != docker {
		t.Errorf("docker: %q, %v", detail, err)
	}
	// The step's timeout bounds the docker runner too.
	fd.block = true
	if _, err := d.Run(ctx, request(docker, labels)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("docker timeout: %v", err)
	}
	// A wait longer than the step's timeout is not cut short by it.
	w := waitStep(150 * time.Millisecond)
	w.Timeout = model.Duration(50 * time.Millisecond)
	if detail, err := d.Run(ctx, request(w, labels)); err != nil || detail != "waited 150ms" {
		t.Errorf("wait: %q, %v", detail, err)
	}
	if _, err := d.Run(ctx, request(commandStep(t, time.Second, lookPath(t, "true")), labels)); err != nil {
		t.Errorf("command: %v", err)
	}
	if _, err := d.Run(ctx, request(&config.Step{Name: "empty"}, labels)); err == nil || err.Error() != `step "empty" has no action` {
		t.Errorf("no action: %v", err)
	}
	if _, err := d.Run(ctx, Request{}); err == nil {
		t.Error("nil step accepted")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	if _, err := d.Run(ctx, request(httpStep(t, "http://{{ .Labels.instance }}/", time.Second), map[string]string{"instance": u.Host})); err != nil {
		t.Errorf("http: %v", err)
	}
}
