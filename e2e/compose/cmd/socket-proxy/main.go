// Command socket-proxy is the compose test's stand-in for wollomatic/socket-proxy: the same
// flags the shipped compose file passes, the same per-client label allowlists (package
// socketproxy). Installed as /healthcheck too, it is the image's healthcheck, as the real one.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/selfheal/selfheal/e2e/compose/socketproxy"
)

// healthAddr is where the real proxy answers its healthcheck, on the loopback only.
const healthAddr = "127.0.0.1:55555"

func main() {
	if filepath.Base(os.Args[0]) == "healthcheck" {
		os.Exit(healthcheck())
	}
	listenIP := flag.String("listenip", "127.0.0.1", "address to listen on")
	port := flag.Int("proxyport", 2375, "port to listen on")
	self := flag.String("proxycontainername", "", "the proxy's own container name; clients are found on its networks")
	health := flag.Bool("allowhealthcheck", false, "answer HEAD /health on "+healthAddr)
	sock := flag.String("socketpath", "/var/run/docker.sock", "the engine's socket")
	flag.Int("watchdoginterval", 0, "accepted for the shipped compose file; the stand-in has no watchdog")
	flag.Bool("stoponwatchdog", false, "accepted for the shipped compose file; the stand-in has no watchdog")
	flag.String("loglevel", "INFO", "accepted for the shipped compose file; the stand-in logs every request")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stdout, nil))
	if *self == "" {
		logger.Error("-proxycontainername is required: clients are identified on the proxy's own networks")
		os.Exit(2)
	}
	if *health {
		go func() {
			mux := http.NewServeMux()
			mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {})
			logger.Error("healthcheck listener", "err", http.ListenAndServe(healthAddr, mux))
		}()
	}
	addr := net.JoinHostPort(*listenIP, fmt.Sprint(*port))
	logger.Info("listening", "address", addr, "socket", *sock)
	srv := &http.Server{Addr: addr, Handler: socketproxy.New(*sock, *self, logger), ReadHeaderTimeout: 10 * time.Second}
	logger.Error("proxy stopped", "err", srv.ListenAndServe())
	os.Exit(1)
}

func healthcheck() int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodHead, "http://"+healthAddr+"/health", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "health:", resp.Status)
		return 1
	}
	return 0
}
