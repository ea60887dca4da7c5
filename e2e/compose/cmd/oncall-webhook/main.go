// Command oncall-webhook is the compose test's person on call: it answers the shipped
// Alertmanager's `oncall` webhook (http://127.0.0.1:5001/oncall, run in Alertmanager's network
// namespace) and prints every notification as one line of JSON on standard output, where the
// test reads the escalations from the container's log.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:5001", "address to listen on")
	flag.Parse()
	http.HandleFunc("POST /oncall", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var line bytes.Buffer
		if err := json.Compact(&line, body); err != nil {
			http.Error(w, "not JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(os.Stdout, line.String())
	})
	srv := &http.Server{Addr: *addr, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, srv.ListenAndServe())
	os.Exit(1)
}
