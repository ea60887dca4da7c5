// Command demo-service runs one demo service (user-service, order-service, payment-service:
// the same program under different names), as `demo-service loadgen` the load generator, or as
// `demo-service pager` the stand-in for a paging integration that Alertmanager's human
// receivers post to.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"

	"github.com/selfheal/selfheal/internal/probe"
	"github.com/selfheal/selfheal/services/demo"
	"github.com/selfheal/selfheal/services/loadgen"
	"github.com/selfheal/selfheal/services/pager"
)

func main() {
	app := kingpin.New("demo-service", "A demo service whose failures are real, and its load generator.")
	app.UsageTemplate(kingpin.LongHelpTemplate)
	var (
		cfg      demo.Config
		memLimit units.Base2Bytes
		lcfg     loadgen.Config
		pcfg     pager.Config
		pMaxBody units.Base2Bytes
	)
	logCfg := &promslog.Config{}
	promslogflag.AddFlags(app, logCfg)

	serve := app.Command("serve", "Run a demo service (the default command).").Default()
	serve.Flag("cgroup.root", "Root under which /proc and /sys/fs/cgroup are read (for tests).").
		Hidden().Default("/").StringVar(&cfg.CgroupRoot)
	lg := app.Command("loadgen", "Send steady traffic to demo services.")
	pg := app.Command("pager", "Receive Alertmanager's notifications for people and log them (it pages nobody).")
	addFlags([]envFlag{
		{serve, "service.name", "SERVICE_NAME", "demo-service", "Name of this service (user-service, order-service, payment-service).", &cfg.Service},
		{serve, "web.listen-address", "LISTEN_ADDR", ":8080", "Address to listen on.", &cfg.ListenAddress},
		{serve, "dependencies", "DEPENDENCIES", "", "Services called on each request: comma list of host:port, or name=host1:port|host2:port for several instances of one dependency.", &cfg.Dependencies},
		{serve, "database.url", "DATABASE_URL", "", "PostgreSQL URL; orders are stored there when set.", &cfg.DatabaseURL},
		{serve, "faults", "FAULTS", "", "Faults active from start, comma list of name[:value], e.g. errors:1.0,cpu:1,memory-leak-unflushable:8.", &cfg.Faults},
		{serve, "memory.limit", "MEMORY_LIMIT", "512MiB", "Memory limit reported when no cgroup limits the process.", &memLimit},
		{serve, "cpu.limit", "CPU_LIMIT", fmt.Sprint(runtime.NumCPU()), "CPU cores reported (and burnt at most) when no cgroup limits the process.", &cfg.CPULimit},
		{serve, "database.max-connections", "DATABASE_MAX_CONNECTIONS", "10", "Size of the connection pool.", &cfg.DBMaxConns},
		{serve, "database.acquire-timeout", "DATABASE_ACQUIRE_TIMEOUT", "1s", "How long a request waits for a pooled connection before it fails.", &cfg.DBAcquireTimeout},
		{serve, "dependency.timeout", "DEPENDENCY_TIMEOUT", "400ms", "Timeout of one attempt at one endpoint of a dependency.", &cfg.DependencyTimeout},
		{serve, "dependency.breaker-open-timeout", "DEPENDENCY_BREAKER_OPEN_TIMEOUT", "5s", "How long an open circuit breaker waits before letting a probe through.", &cfg.BreakerOpenTimeout},
		{lg, "target", "LOADGEN_TARGETS", "http://user-service:8080/", "URL to send GET requests to; repeat for several (LOADGEN_TARGETS: comma list).", &lcfg.Targets},
		{lg, "rate", "LOADGEN_RATE", "10", "Requests per second, per target.", &lcfg.Rate},
		{lg, "concurrency", "LOADGEN_CONCURRENCY", "20", "Requests in flight per target at most; ticks beyond it are skipped and counted.", &lcfg.Concurrency},
		{lg, "timeout", "LOADGEN_TIMEOUT", "5s", "Timeout of one request.", &lcfg.Timeout},
		{lg, "web.listen-address", "LOADGEN_LISTEN_ADDR", ":8089", "Address to serve the load generator's /metrics on.", &lcfg.ListenAddress},
		{pg, "web.listen-address", "PAGER_LISTEN_ADDR", ":9097", "Address to listen on.", &pcfg.ListenAddress},
		{pg, "receiver", "PAGER_RECEIVERS", "oncall,chat", "Receiver names taken as POST /NAME; repeat for several (PAGER_RECEIVERS: comma list).", &pcfg.Receivers},
		{pg, "keep", "PAGER_KEEP", "200", "Notifications GET /api/v1/pages remembers.", &pcfg.Keep},
		{pg, "max-body-bytes", "PAGER_MAX_BODY_BYTES", "1MiB", "Largest notification accepted.", &pMaxBody},
	})

	hc := app.Command("healthcheck", "Exit 0 when a URL answers 2xx (the container healthcheck; the image has no curl).")
	hcURL := hc.Flag("url", "URL to check.").Default("http://127.0.0.1:8080/healthz").String()
	hcTimeout := hc.Flag("timeout", "How long to wait for the answer.").Default("2s").Duration()

	app.Version(version.Print("demo-service"))
	app.HelpFlag.Short('h')
	cmd := kingpin.MustParse(app.Parse(os.Args[1:]))
	logger := promslog.New(logCfg)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var err error
	switch cmd {
	case serve.FullCommand():
		cfg.MemoryLimit = int64(memLimit)
		err = demo.Run(ctx, cfg, logger.With("service", cfg.Service), reg, reg)
	case hc.FullCommand():
		if err := probe.Check(ctx, *hcURL, *hcTimeout); err != nil {
			fmt.Fprintln(os.Stderr, "unhealthy:", err)
			os.Exit(1)
		}
		return
	case lg.FullCommand():
		lcfg.Targets = loadgen.SplitTargets(lcfg.Targets)
		err = loadgen.Run(ctx, lcfg, logger, reg, reg)
	case pg.FullCommand():
		pcfg.Receivers = loadgen.SplitTargets(pcfg.Receivers) // the same comma lists as LOADGEN_TARGETS
		pcfg.MaxBodyBytes = int64(pMaxBody)
		err = pager.Run(ctx, pcfg, logger.With("service", "pager"))
	}
	if err != nil {
		logger.Error("exiting", "err", err)
		os.Exit(1)
	}
}

// envFlag is a flag that an environment variable can set too, which is how the compose file
// configures each service.
type envFlag struct {
	cmd                    *kingpin.CmdClause
	name, envar, def, help string
	dest                   any
}

func addFlags(flags []envFlag) {
	for _, f := range flags {
		c := f.cmd.Flag(f.name, f.help).Envar(f.envar).Default(f.def)
		switch d := f.dest.(type) {
		case *string:
			c.StringVar(d)
		case *[]string:
			c.StringsVar(d)
		case *float64:
			c.Float64Var(d)
		case *int:
			c.IntVar(d)
		case *int32:
			c.Int32Var(d)
		case *time.Duration:
			c.DurationVar(d)
		case *units.Base2Bytes:
			c.BytesVar(d)
		default:
			kingpin.Fatalf("flag --%s: no parser for %T", f.name, d)
		}
	}
}
