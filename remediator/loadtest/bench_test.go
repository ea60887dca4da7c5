package loadtest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The Go benchmarks measure the same two receivers as cmd/loadtest, per notification, for
// `go test -bench`; cmd/loadtest adds latency quantiles, decision latency and memory, and
// writes docs/benchmarks.md.

func BenchmarkWebhookBare(b *testing.B) {
	url, stop, err := ServeBare()
	if err != nil {
		b.Fatal(err)
	}
	defer stop()
	benchPost(b, PostTo(url, ""))
}

func BenchmarkWebhookRemediator(b *testing.B) {
	rec := &Recovery{Delay: 100 * time.Millisecond}
	endpoint := httptest.NewServer(rec)
	defer endpoint.Close()
	r, err := Start(Options{Dir: b.TempDir(), Playbooks: fmt.Sprintf(benchPlaybooks, endpoint.URL), Token: "bench-token"})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Stop()
	benchPost(b, r.Post)
	b.ReportMetric(float64(rec.Calls()), "heals")
}

// benchPost posts new two-alert notifications from 16 concurrent senders.
func benchPost(b *testing.B, post func(c *http.Client, body []byte) (int, string, error)) {
	var seq atomic.Int64
	run := time.Now().UnixNano()
	b.SetParallelism(benchParallelism) // 16 senders on 2 CPUs by default
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := Client(1)
		for pb.Next() {
			i := int(seq.Add(1))
			target := fmt.Sprintf("bench-%04d", i%500)
			at := time.Unix(0, run).Add(time.Duration(i) * time.Millisecond)
			body := Notification(target,
				Alert{Name: "BenchMemoryHigh", Target: target, Severity: "warning", StartsAt: at},
				Alert{Name: "BenchMemoryHigh", Target: target, Severity: "critical", StartsAt: at})
			code, msg, err := post(c, body)
			if err != nil || code != 202 {
				b.Fatalf("%d %s %v", code, msg, err)
			}
		}
	})
}

// BenchmarkWebhookRepeat posts one notification again and again, both of its alerts acting
// (their heals hang), as cmd/loadtest's repeat row does.
func BenchmarkWebhookRepeat(b *testing.B) {
	rec := &Recovery{Hang: true, Notify: make(chan string, 4)}
	endpoint := httptest.NewServer(rec)
	defer endpoint.Close()
	defer rec.Release()
	r, err := Start(Options{Dir: b.TempDir(), Playbooks: fmt.Sprintf(benchPlaybooks, endpoint.URL), Token: "bench-token"})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Stop()
	at := time.Now().Add(-time.Minute)
	body := Notification("g", Alert{Name: "BenchMemoryHigh", Target: "repeat-a", Severity: "critical", StartsAt: at},
		Alert{Name: "BenchMemoryHigh", Target: "repeat-b", Severity: "critical", StartsAt: at})
	if code, msg, err := r.Post(Client(1), body); err != nil || code != 202 {
		b.Fatalf("%d %s %v", code, msg, err)
	}
	<-rec.Notify
	<-rec.Notify
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c := Client(1)
		for pb.Next() {
			if code, msg, err := r.Post(c, body); err != nil || code != 202 || !strings.Contains(msg, `"deduplicated":2`) {
				b.Fatalf("%d %s %v", code, msg, err)
			}
		}
	})
}

// benchParallelism is goroutines per CPU for the parallel benchmarks; BENCH_PARALLELISM changes it.
var benchParallelism = 8

func init() {
	if n, err := strconv.Atoi(os.Getenv("BENCH_PARALLELISM")); err == nil && n > 0 {
		benchParallelism = n
	}
}
