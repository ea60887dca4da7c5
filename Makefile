# One build, one test command. Binaries are statically linked so that tests can run them in
# images built FROM scratch, with nothing pulled.
GO        ?= go
GOFLAGS   ?=
export CGO_ENABLED = 0
BIN       := bin
LDFLAGS   := -s -w
PKGS      := ./...

.PHONY: all build test unit bench lint fmt e2e clean

all: build

build: $(BIN)/demo-service $(BIN)/remediator

$(BIN)/demo-service: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./services/cmd/demo-service

$(BIN)/remediator: FORCE
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./remediator/cmd/remediator

FORCE:

test: build
	$(GO) test -timeout 15m $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

lint:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
