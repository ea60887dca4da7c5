package demo

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/selfheal/selfheal/services/dependency"
	"github.com/selfheal/selfheal/services/faults"
)

// Route labels of demo_http_requests_total.
const (
	routeRoot    = "/"
	routeHealthz = "/healthz"
	routeReadyz  = "/readyz"
	routeMetrics = "/metrics"
	routeChaos   = "/chaos"
	routeFault   = "/chaos/{fault}"
	routeRecover = "/recover/{action}"
	routeOther   = "other"
)

func (s *Service) routes(gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	metricsHandler := promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})
	// Everything but /chaos goes through the partition: the chaos API is the test harness's
	// hand on the service, and must keep working to end the partition.
	handle := func(pattern, route string, partitioned bool, methods []string, h http.HandlerFunc) {
		var handler http.Handler = s.instrument(route, allow(methods, h))
		if partitioned {
			handler = s.partition(handler)
		}
		mux.Handle(pattern, handler)
	}
	get := []string{http.MethodGet, http.MethodHead}
	handle("/{$}", routeRoot, true, get, s.work)
	handle("/healthz", routeHealthz, true, get, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "service": s.cfg.Service})
	})
	handle("/readyz", routeReadyz, true, get, s.readyz)
	handle("/metrics", routeMetrics, true, get, metricsHandler.ServeHTTP)
	handle("/chaos", routeChaos, false, []string{http.MethodGet, http.MethodDelete}, s.chaos)
	handle("/chaos/{fault}", routeFault, false, []string{http.MethodPost, http.MethodDelete}, s.fault)
	handle("/recover/{action}", routeRecover, true, []string{http.MethodPost}, s.recovery)
	handle("/", routeOther, true, nil, func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	return mux
}

// allow answers 405 with a JSON error for methods the route does not take (nil: any method).
func allow(methods []string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if methods != nil {
			ok := false
			for _, m := range methods {
				ok = ok || r.Method == m
			}
			if !ok {
				w.Header().Set("Allow", strings.Join(methods, ", "))
				writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on "+r.URL.Path+"; use "+strings.Join(methods, " or "))
				return
			}
		}
		h(w, r)
	}
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (s *Service) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.code == 0 {
			rec.code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(rec.code)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// partition makes the service unreachable while the partition fault runs: the request hangs,
// as if its packets went nowhere, until the caller gives up or the hang ends, and is then
// dropped without an answer.
func (s *Service) partition(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		until := s.faults.PartitionedUntil()
		if until.IsZero() {
			h.ServeHTTP(w, r)
			return
		}
		t := time.NewTimer(min(time.Until(until), s.cfg.PartitionHang))
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-t.C:
		}
		panic(http.ErrAbortHandler) // closes the connection without a response, quietly
	})
}

func (s *Service) work(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if ms, err := strconv.ParseInt(r.Header.Get(dependency.DeadlineHeader), 10, 64); err == nil && ms > 0 && ms <= 60000 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
		defer cancel()
	}
	if d := s.faults.Latency(); d > 0 {
		// A slow service stays slow when its caller stops waiting: the delay is not cut short,
		// so that this service's own latency histogram shows it.
		time.Sleep(d)
	}
	if s.faults.ShouldFail() {
		writeError(w, http.StatusInternalServerError, "injected failure (errors fault)")
		return
	}
	resp := map[string]any{"service": s.cfg.Service, "status": "ok"}
	// A little real work per request, so CPU per request is not zero.
	sum := sha256.Sum256([]byte(s.cfg.Service + time.Now().String()))
	for range 200 {
		sum = sha256.Sum256(sum[:])
	}
	if s.pool != nil {
		id, err := s.pool.InsertOrder(ctx)
		if err != nil {
			s.logger.Debug("cannot store order", "err", err)
			writeError(w, http.StatusServiceUnavailable, "cannot store order: "+err.Error())
			return
		}
		resp["status"], resp["order_id"] = "accepted", id
	}
	degraded := false
	for _, dep := range s.deps.Names() {
		key := strings.TrimSuffix(dep, "-service")
		if _, err := s.deps.Call(ctx, dep); err != nil {
			// Degrade rather than fail: the order is kept and the rest happens later.
			degraded = true
			resp[key] = "pending"
			s.metrics.degraded.WithLabelValues(degradedReason(dep)).Inc()
			s.logger.Debug("dependency failed, degrading", "dependency", dep, "err", err)
			continue
		}
		resp[key] = "ok"
	}
	resp["degraded"] = degraded
	writeJSON(w, http.StatusOK, resp)
}

func (s *Service) readyz(w http.ResponseWriter, r *http.Request) {
	if ok, why := s.Ready(); !ok {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"ready": false, "reason": why})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": true})
}

func (s *Service) chaosState() map[string]any {
	list := s.faults.List()
	if list == nil {
		list = []faults.Active{}
	}
	st := map[string]any{
		"faults":              list,
		"memory_leaked_bytes": s.faults.LeakedBytes(),
	}
	if s.pool != nil {
		st["pool_leaked_connections"] = s.pool.LeakedConnections()
	}
	return st
}

func (s *Service) chaos(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		writeError(w, http.StatusBadRequest, "/chaos takes no parameters")
		return
	}
	if r.Method == http.MethodDelete {
		s.faults.StopAll()
		s.logger.Info("all faults stopped")
	}
	writeJSON(w, http.StatusOK, s.chaosState())
}

func (s *Service) fault(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("fault")
	var err error
	if r.Method == http.MethodPost {
		var a faults.Active
		a, err = s.faults.Start(name, r.URL.Query())
		if err == nil {
			s.logger.Warn("fault started", "fault", a.Fault, "params", a.Params)
			writeJSON(w, http.StatusOK, map[string]any{"started": a, "state": s.chaosState()})
			return
		}
	} else {
		err = s.faults.Stop(name, r.URL.Query())
		if err == nil {
			s.logger.Info("fault stopped", "fault", name)
			writeJSON(w, http.StatusOK, map[string]any{"stopped": name, "state": s.chaosState()})
			return
		}
	}
	writeFaultError(w, err)
}

func (s *Service) recovery(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		writeError(w, http.StatusBadRequest, "recovery actions take no parameters")
		return
	}
	switch action := r.PathValue("action"); action {
	case "flush-cache":
		freed := s.faults.FlushCache()
		s.logger.Info("cache flushed", "freed_bytes", freed)
		writeJSON(w, http.StatusOK, map[string]any{"action": action, "freed_bytes": freed, "state": s.chaosState()})
	case "reset-pool":
		if s.pool == nil {
			writeError(w, http.StatusConflict, "no connection pool to reset: --database.url is not set")
			return
		}
		released := s.pool.Reset()
		writeJSON(w, http.StatusOK, map[string]any{"action": action, "released_connections": released, "state": s.chaosState()})
	default:
		writeError(w, http.StatusNotFound, "unknown recovery action "+strconv.Quote(action)+" (known: flush-cache, reset-pool)")
	}
}

func writeFaultError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, faults.ErrUnknownFault):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, faults.ErrUnsupported):
		writeError(w, http.StatusConflict, err.Error())
	default:
		writeError(w, http.StatusBadRequest, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
