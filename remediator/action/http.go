package action

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/selfheal/selfheal/remediator/config"
)

// HTTPRunner calls a recovery endpoint, e.g. POST http://order-service:8080/recover/flush-cache.
type HTTPRunner struct {
	// Client serves steps without http_config; nil means NewHTTPClient().
	Client *http.Client

	// clients holds one client per http_config of the loaded playbooks, so that connections
	// are reused across heals.
	clients clientCache
}

// NewHTTPClient is the client http steps use by default. It follows no redirects (a redirect
// could send the call anywhere; a 3xx is judged against expect_status like any other status) and
// ignores proxy settings (recovery endpoints live next to the remediator, not on the internet).
func NewHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

var defaultClient = NewHTTPClient()

const maxResponseBytes = 64 << 10

// Run performs the step's HTTP call.
func (r *HTTPRunner) Run(ctx context.Context, req Request) (string, error) {
	if req.Step == nil || req.Step.HTTP == nil {
		return "", errors.New("not an http step")
	}
	h := req.Step.HTTP
	ctx, cancel := withStepTimeout(ctx, req.Step)
	defer cancel()

	url, err := config.RenderURL(h.URL, config.NewTemplateData(req.Alert, req.Target, req.Playbook))
	if err != nil {
		return "", err
	}
	method := strings.ToUpper(h.Method)
	if method == "" {
		method = http.MethodPost
	}
	what := method + " " + url
	var body io.Reader
	if h.Body != "" {
		body = strings.NewReader(h.Body)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	hreq.Header.Set("User-Agent", "selfheal-remediator")
	if h.Body != "" {
		ct := "text/plain; charset=utf-8"
		if b := strings.TrimSpace(h.Body); strings.HasPrefix(b, "{") || strings.HasPrefix(b, "[") {
			ct = "application/json"
		}
		hreq.Header.Set("Content-Type", ct)
	}
	for k, v := range h.Headers {
		hreq.Header.Set(k, v)
	}

	client, err := r.client(h)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	start := time.Now()
	resp, err := client.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return "", timeoutError(ctx, what, start)
		}
		return "", fmt.Errorf("%s: %w", what, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	took := time.Since(start).Round(time.Millisecond)
	if !statusExpected(resp.StatusCode, h.ExpectStatus) {
		return "", fmt.Errorf("%s: got %s, want %s: %s", what, resp.Status, describeExpected(h.ExpectStatus), snippet(data, 256))
	}
	detail := fmt.Sprintf("%s: %s in %s", what, resp.Status, took)
	if s := strings.TrimSpace(snippet(data, 120)); s != "" {
		detail += ": " + s
	}
	return detail, nil
}

func statusExpected(code int, expect []int) bool {
	if len(expect) == 0 {
		return code >= 200 && code < 300
	}
	return slices.Contains(expect, code)
}

func describeExpected(expect []int) string {
	if len(expect) == 0 {
		return "2xx"
	}
	s := make([]string, len(expect))
	for i, c := range expect {
		s[i] = fmt.Sprint(c)
	}
	return strings.Join(s, " or ")
}
