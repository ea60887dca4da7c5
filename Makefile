# One build, one test command. Binaries are statically linked so that tests can run them in
# images built FROM scratch, with nothing pulled.
GO        ?= go
GOFLAGS   ?=
export CGO_ENABLED = 0
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
# remediator_build_info and --version report what was built, as the ecosystem's daemons do.
VPKG      := github.com/prometheus/common/version
LDFLAGS   := -s -w -X $(VPKG).Version=$(VERSION) -X $(VPKG).Revision=$(REVISION) -X $(VPKG).Branch=$(BRANCH)
PKGS      := ./...

.PHONY: all build test unit fuzz bench lint fmt e2e compose-e2e clean up down check

# Fuzz targets run for a bounded time in CI; each entry is package:target.
FUZZ_TARGETS := ./remediator/config:FuzzParse ./remediator/config:FuzzRenderURL ./remediator/config:FuzzRenderQuery \
                ./remediator/intake:FuzzDecode ./remediator/notify:FuzzMatchers
FUZZ_TIME    ?= 15s

all: build

build: $(BIN)/demo-service $(BIN)/remediator

$(BIN)/demo-service: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./services/cmd/demo-service

$(BIN)/remediator: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./remediator/cmd/remediator

FORCE:

# In CI the test command also runs the fuzzers briefly and the end-to-end suite, so a change is
# proven on the whole loop; by hand, `make unit`, `make fuzz` and `make e2e` run them one by one.
test: build unit $(if $(CI),fuzz e2e compose-e2e)

unit:
	$(GO) test -count=1 -timeout 15m $(PKGS)

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "fuzz $$pkg $$fn for $(FUZZ_TIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn$$" -fuzztime $(FUZZ_TIME) $$pkg; \
	done

e2e: build
	E2E=1 $(GO) test -count=1 -timeout 30m -v ./e2e

# The shipped docker-compose.yml, started on the local engine with images .ci/compose-images builds
# (nothing pulled), healing README scenarios; it rewrites docs/compose-timeline.md.
compose-e2e:
	COMPOSE_E2E=1 $(GO) test -count=1 -timeout 30m -v ./e2e/compose

# The intake benchmark drives the real remediator and two bare baselines with one load driver in
# one run, prints the table and rewrites docs/benchmarks.md (figures as ratios to the baselines).
bench: build
	$(GO) run ./remediator/loadtest/cmd/loadtest --remediator.binary $(BIN)/remediator --out docs/benchmarks.md

STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)

# The demo stack: services, Prometheus, Alertmanager, Grafana and the remediator, built here.
COMPOSE  ?= docker compose
PROMTOOL ?= promtool
AMTOOL   ?= amtool

up:
	$(COMPOSE) up -d --build

down:
	$(COMPOSE) down

# Every shipped configuration file, checked by the program that reads it, with the same code
# path as a real start.
check: $(BIN)/remediator
	$(PROMTOOL) check config prometheus/prometheus.yml
	$(PROMTOOL) check rules rules/*.yml
	$(AMTOOL) check-config alertmanager/alertmanager.yml
	$(AMTOOL) check-config deploy/kubernetes/alertmanager-receiver.yml
	$(BIN)/remediator --config.check --config.file remediator/playbooks.yml
	@# The Kubernetes example keeps its playbooks in a ConfigMap: checked as the pod reads them.
	@set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	  sed -n '/^  playbooks.yml: |$$/,$$p' deploy/kubernetes/configmap.yaml | tail -n +2 | sed 's/^    //' > "$$dir/playbooks.yml"; \
	  echo "deploy/kubernetes/configmap.yaml:"; $(BIN)/remediator --config.check --config.file "$$dir/playbooks.yml"
