package dependency

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestParse(t *testing.T) {
	tests := []struct {
		spec    string
		want    []Spec
		wantErr string
	}{
		{spec: "", want: nil},
		{spec: "order-service:8080", want: []Spec{{"order-service", []string{"order-service:8080"}}}},
		{spec: "payment-service=p1:8080|p2:8080, user:80", want: []Spec{
			{"payment-service", []string{"p1:8080", "p2:8080"}}, {"user", []string{"user:80"}}}},
		{spec: "http://order-service:8080/", want: []Spec{{"order-service", []string{"order-service:8080"}}}},
		{spec: "order-service", wantErr: "not host:port"},
		{spec: "=a:1", wantErr: "empty name"},
		{spec: "a:1|b:2", wantErr: "need a name"},
		{spec: "x=a:1,x=b:1", wantErr: "given twice"},
		{spec: "x=a:1|", wantErr: "not host:port"},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := Parse(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func server(t *testing.T, handler http.HandlerFunc) (string, *atomic.Int64) {
	var hits atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		handler(w, r)
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://"), &hits
}

// TestRoutesAroundFailingEndpoint: a failing endpoint costs three failed attempts, then its
// breaker opens and every call goes to the healthy one within the same call.
func TestRoutesAroundFailingEndpoint(t *testing.T) {
	bad, badHits := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	good, goodHits := server(t, func(w http.ResponseWriter, r *http.Request) {})
	reg := prometheus.NewRegistry()
	c := New("order-service", []Spec{{"payment-service", []string{bad, good}}}, Settings{OpenTimeout: time.Minute}, reg)
	for i := range 20 {
		ep, err := c.Call(context.Background(), "payment-service")
		if err != nil || ep != good {
			t.Fatalf("call %d: %s, %v", i, ep, err)
		}
	}
	if badHits.Load() != 3 || goodHits.Load() != 20 {
		t.Errorf("hits: bad %d (want 3), good %d (want 20)", badHits.Load(), goodHits.Load())
	}
	if got := testutil.ToFloat64(c.requests.WithLabelValues("payment-service", bad, ResultRejected)); got != 7 {
		t.Errorf("rejected = %v, want 7", got)
	}
	want := `
# HELP demo_dependency_circuit_state Circuit breaker state of a dependency's endpoint: 0 closed, 1 half-open, 2 open.
# TYPE demo_dependency_circuit_state gauge
demo_dependency_circuit_state{dependency="payment-service",endpoint="` + bad + `"} 2
demo_dependency_circuit_state{dependency="payment-service",endpoint="` + good + `"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "demo_dependency_circuit_state"); err != nil {
		t.Error(err)
	}
}

// TestHangingEndpointIsCutShort: a hanging endpoint costs one attempt timeout, not the hang.
func TestHangingEndpointIsCutShort(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	hang, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	good, _ := server(t, func(w http.ResponseWriter, r *http.Request) {})
	c := New("order-service", []Spec{{"payment-service", []string{hang, good}}}, Settings{AttemptTimeout: 100 * time.Millisecond}, nil)
	start := time.Now()
	for range 2 { // one of the two starts at the hanging endpoint
		if _, err := c.Call(context.Background(), "payment-service"); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 600*time.Millisecond {
		t.Errorf("two calls took %s with a 100ms attempt timeout", d)
	}
}

// TestDeadlineShared: the caller's deadline is shared among the endpoints and passed on.
func TestDeadlineShared(t *testing.T) {
	var got atomic.Value
	ep, _ := server(t, func(w http.ResponseWriter, r *http.Request) { got.Store(r.Header.Get(DeadlineHeader)) })
	c := New("user-service", []Spec{{"order-service", []string{ep}}}, Settings{AttemptTimeout: time.Second}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := c.Call(ctx, "order-service"); err != nil {
		t.Fatal(err)
	}
	if ms, _ := strconv.Atoi(got.Load().(string)); ms < 150 || ms > 180 {
		t.Errorf("%s = %d, want about 90%% of 200ms", DeadlineHeader, ms)
	}
}

func TestAllEndpointsFail(t *testing.T) {
	bad, _ := server(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	c := New("order-service", []Spec{{"payment-service", []string{bad}}}, Settings{}, nil)
	if _, err := c.Call(context.Background(), "payment-service"); err == nil || !strings.Contains(err.Error(), "payment-service unavailable") {
		t.Errorf("err = %v", err)
	}
	if _, err := c.Call(context.Background(), "nope"); err == nil {
		t.Error("unknown dependency accepted")
	}
}
