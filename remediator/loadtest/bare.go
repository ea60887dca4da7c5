package loadtest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/alertmanager/template"
)

// BareHandler is the practical limit of a webhook receiver in Go: it only reads the body and
// decodes it with encoding/json into Alertmanager's template.Data, then answers 202. It records
// nothing, checks nothing and decides nothing.
func BareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, d, ok := decodeBare(w, r); ok {
			acceptBare(w, d)
		}
	})
}

// decodeBare reads and decodes a notification, the only work of the bare handlers; when it
// cannot, it has answered 400.
func decodeBare(w http.ResponseWriter, r *http.Request) ([]byte, *template.Data, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, nil, false
	}
	var d template.Data
	if err := json.Unmarshal(body, &d); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, nil, false
	}
	return body, &d, true
}

func acceptBare(w http.ResponseWriter, d *template.Data) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "accepted", "accepted": len(d.Alerts)})
}

// ServeBare serves BareHandler on a loopback port with the remediator's server timeouts; stop
// it by calling the returned function.
func ServeBare() (url string, stop func(), err error) { return Serve(BareHandler()) }

// PostTo returns a post function for Deliver that sends to url (with a bearer token if set).
func PostTo(url, token string) func(*http.Client, []byte) (int, string, error) {
	r := &Remediator{URL: url, Token: token}
	return r.Post
}

// DurableBareHandler is the practical limit of a receiver that, like the remediator, may only
// answer 2xx once the notification is on disk: it decodes the body like BareHandler, appends it
// to a log file, and answers after an fsync that concurrent requests share (a leader group
// commit: whatever queued while the previous sync ran goes into the next one).
func DurableBareHandler(path string) (http.Handler, func() error, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	type req struct {
		body []byte
		done chan error
	}
	queue := make(chan req, 1024)
	go func() {
		for r := range queue {
			batch := []req{r}
		drain:
			for {
				select {
				case r := <-queue:
					batch = append(batch, r)
				default:
					break drain
				}
			}
			var err error
			for _, r := range batch {
				if _, werr := f.Write(r.body); werr != nil && err == nil {
					err = werr
				}
			}
			if serr := f.Sync(); serr != nil && err == nil {
				err = serr
			}
			for _, r := range batch {
				r.done <- err
			}
		}
	}()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, d, ok := decodeBare(w, r)
		if !ok {
			return
		}
		done := make(chan error, 1)
		queue <- req{body: body, done: done}
		if err := <-done; err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		acceptBare(w, d)
	})
	return h, func() error { close(queue); return f.Close() }, nil
}

// Serve serves h on a loopback port with the remediator's server timeouts.
func Serve(h http.Handler) (url string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
	}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), func() { _ = srv.Close() }, nil
}
