// Command remediator receives Alertmanager's notifications and heals what its playbooks cover,
// safely: see remediator/server for the parts and README for the flags.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/selfheal/selfheal/internal/probe"
	"github.com/selfheal/selfheal/remediator/cli"
	"github.com/selfheal/selfheal/remediator/config"
	"github.com/selfheal/selfheal/remediator/server"
)

func main() {
	os.Exit(run())
}

func run() int {
	app := kingpin.New("remediator", "Heals what Alertmanager reports, by playbook, with budgets, cooldowns and verification.")
	var (
		configFile  = app.Flag("config.file", "Playbooks file.").Default("remediator/playbooks.yml").String()
		configCheck = app.Flag("config.check", "Validate the playbooks file and exit: 0 and a summary when valid, else one file:line problem per line.").Bool()
		storagePath = app.Flag("storage.path", "Directory of the state database.").Default("data/").String()
		promURL     = app.Flag("prometheus.url", "Prometheus used for verification and preconditions (overrides global.prometheus_url).").String()
		amURL       = app.Flag("alertmanager.url", "Alertmanager told of heals: silences while healing, alerts when a heal fails or is declined (overrides global.alertmanager.url).").String()
		externalURL = app.Flag("web.external-url", "URL under which people reach the remediator, for the links to heals in Alertmanager (default: http://<hostname>:<port>).").String()
		tokenFile   = app.Flag("webhook.token-file", "File with the bearer token Alertmanager presents (the webhook role; every role without --web.credentials-file).").String()
		basicUser   = app.Flag("webhook.basic-auth-user", "Basic auth user accepted on the webhook and the write API.").String()
		basicPass   = app.Flag("webhook.basic-auth-password-file", "File with the basic auth password.").String()
		maxBody     = app.Flag("webhook.max-body-bytes", "Largest notification accepted; larger ones get 413.").Default("1MiB").Bytes()
		credsFile   = app.Flag("web.credentials-file", "Named credentials with roles (webhook, reader, operator): bearer token files, bcrypt basic-auth users, client certificate CNs. Reloaded on SIGHUP and /-/reload.").String()
		readAuth    = app.Flag("web.api.read-auth", "Require the reader or operator role on the read-only API too.").Bool()
		maxRequests = app.Flag("web.max-requests", "Requests served at once; more get 503.").Default("64").Int()
		rhTimeout   = app.Flag("web.read-header-timeout", "Time allowed to read request headers.").Default("5s").Duration()
		rTimeout    = app.Flag("web.read-timeout", "Time allowed to read a whole request.").Default("15s").Duration()
		wTimeout    = app.Flag("web.write-timeout", "Time allowed to write a response.").Default("30s").Duration()
		idleTimeout = app.Flag("web.idle-timeout", "Keep-alive connections idle longer are closed.").Default("2m").Duration()
		seriesLimit = app.Flag("metrics.target-series-limit", "Most targets with per-target series (remediator_target_state and the like); past it, the most urgent ones, and remediator_targets counts all (0: no limit).").Default("1000").Int()
		docker      = dockerFlags(app)
		swarm       = swarmFlags(app)
		kube        = kubernetesFlags(app)
	)
	webFlags := kingpinflag.AddFlags(app, ":9096")
	// The image has no shell or curl, so the binary is its own container healthcheck.
	app.Command("serve", "Run the remediator (the default).").Default()
	hc := app.Command("healthcheck", "Exit 0 when a URL answers 2xx (the container healthcheck).")
	hcURL := hc.Flag("url", "URL to check.").Default("http://127.0.0.1:9096/-/healthy").String()
	hcTimeout := hc.Flag("timeout", "How long to wait for the answer.").Default("2s").Duration()
	client := cli.Register(app, cli.Shared{ConfigFile: configFile, PrometheusURL: promURL})
	logCfg := &promslog.Config{}
	promslogflag.AddFlags(app, logCfg)
	app.Version(version.Print("remediator"))
	app.HelpFlag.Short('h')
	cmd, err := app.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if handled, code := client.Run(context.Background(), cmd); handled {
		return code
	}
	if cmd == hc.FullCommand() {
		if err := probe.Check(context.Background(), *hcURL, *hcTimeout); err != nil {
			fmt.Fprintln(os.Stderr, "unhealthy:", err)
			return 1
		}
		return 0
	}
	cfgOpts := config.Options{PrometheusURL: *promURL, AlertmanagerURL: *amURL}
	if *configCheck {
		summary, err := config.CheckWithOptions(*configFile, cfgOpts)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(summary)
		return 0
	}
	logger := promslog.New(logCfg)
	logger.Info("starting remediator", "version", version.Info(), "build_context", version.BuildContext())

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("remediator"),
	)
	runner, err := newRunner(logger, docker, swarm, kube)
	if err != nil {
		logger.Error("cannot build the action runner", "err", err)
		return 1
	}
	srv, err := server.New(server.Options{
		ConfigFile: *configFile, ConfigOptions: cfgOpts, StoragePath: *storagePath,
		WebhookTokenFile: *tokenFile, BasicAuthUser: *basicUser, BasicAuthPassFile: *basicPass, CredentialsFile: *credsFile,
		MaxBodyBytes: int64(*maxBody), ReadAuth: *readAuth, MaxRequests: *maxRequests, TargetSeriesLimit: *seriesLimit,
		ReadHeaderTimeout: *rhTimeout, ReadTimeout: *rTimeout, WriteTimeout: *wTimeout, IdleTimeout: *idleTimeout,
		Runner: runner, Logger: logger, Registerer: reg, Gatherer: reg,
		ExternalURL: defaultExternalURL(*externalURL, *webFlags.WebListenAddresses),
	})
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = srv.Reload() // logged and exported by Reload
			}
		}
	}()
	if err := srv.Serve(ctx, webFlags); err != nil {
		logger.Error("remediator stopped", "err", err)
		return 1
	}
	logger.Info("remediator stopped")
	return 0
}

// defaultExternalURL is the flag's value, or http://<hostname>:<port of the first listen
// address>, as Prometheus and Alertmanager default their --web.external-url.
func defaultExternalURL(flag string, listen []string) string {
	if flag != "" || len(listen) == 0 {
		return flag
	}
	_, port, err := net.SplitHostPort(listen[0])
	if err != nil {
		return ""
	}
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
