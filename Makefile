# dms — build, test and demo. `make help` lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/dmsnet/dms/internal/cli.version=$(VERSION)
BIN      := bin/dms
REPORTS  := build/reports
# Seconds each fuzz target runs in `make fuzz` (CI keeps it brief).
FUZZTIME ?= 10s

.PHONY: help build test unit integration fuzz bench bench-executors demo vet clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

build: ## build bin/dms
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/dms

vet: ## go vet and gofmt
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./...

test: vet build ## every test group: unit + integration (race), fuzz (brief)
	$(GO) test -race -tags integration -count=1 -timeout 30m ./...
	$(MAKE) fuzz

unit: ## unit tests only (no Docker, QEMU or S3 needed)
	$(GO) test -race -count=1 ./...

integration: ## unit + integration tests (Docker, QEMU)
	$(GO) test -race -tags integration -count=1 -timeout 30m ./...

fuzz: ## run every fuzz target for FUZZTIME
	@./scripts/fuzz.sh $(FUZZTIME)

bench: ## go benchmarks (see docs/PERFORMANCE.md)
	$(GO) test -run '^$$' -bench . -benchmem ./...

bench-executors: ## executor benchmarks (Docker, wasm, microVM), the figures of docs/PERFORMANCE.md
	$(GO) test -tags integration -run '^$$' -bench . -benchtime 20x ./internal/executor/docker ./internal/executor/wasm
	$(GO) test -tags integration -run '^$$' -bench . -benchtime 5x ./internal/executor/vm

demo: build ## start a local network, run examples/hello.yaml, tear down
	@DMS_BIN=$(BIN) ./scripts/demo.sh

clean: ## remove build outputs
	rm -rf bin build
