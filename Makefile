# dms — build, test and demo. `make help` lists the targets.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/dmsnet/dms/internal/cli.version=$(VERSION)
BIN      := bin/dms
REPORTS  := build/reports
# Seconds each fuzz target runs in `make fuzz` (CI keeps it brief).
FUZZTIME ?= 10s
# Feature files `make acceptance` runs (comma-separated names; empty: all).
FEATURES ?=
# The packages of the go test runs: all but the acceptance suite, which
# `make acceptance` runs against bin/dms.
PKGS      = $(shell $(GO) list ./... | grep -v '/e2e/acceptance$$')
# gotestsum turns `go test -json` into JUnit XML (installed on demand).
GOTESTSUM_VERSION := v1.13.0
GOBIN_DIR = $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)
GOTESTSUM = $(GOBIN_DIR)/gotestsum

.PHONY: help build first-build-notice test unit integration reports allocs acceptance coverage-check tools fuzz bench bench-executors demo vet clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 14

build: first-build-notice ## build bin/dms
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/dms

# The first build on an empty Go cache downloads the modules and compiles
# some 400 packages: minutes of silence on 2 cores. Say so when the module
# cache lacks go-libp2p at go.mod's version or the build cache is missing or
# under 100 MB (a dms build leaves several hundred).
LIBP2P_MOD = $(shell awk '$$1 == "github.com/libp2p/go-libp2p" { print $$1 "@" $$2; exit }' go.mod)
first-build-notice:
	@mods=$$($(GO) env GOMODCACHE); cache=$$($(GO) env GOCACHE); \
	if [ ! -d "$$mods/$(LIBP2P_MOD)" ] || [ ! -d "$$cache" ] || [ "$$(du -sk "$$cache" | cut -f1)" -lt 102400 ]; then \
		echo "First build on an empty Go cache: downloading modules and compiling take a few minutes (about 4 on 2 cores); later builds take seconds."; \
	fi

vet: ## go vet and gofmt
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags integration ./...

# The groups of `make test`. reports and allocs run one after the other (they
# use both cores), while fuzz's instrumented test binaries build at nice 19
# into build/fuzz-bin (scripts/fuzz.sh --build: the idle cycles of the tests
# that wait); then fuzz and acceptance run side by side: the acceptance
# suite mostly waits on its nodes, and fuzz runs for a fixed time per target
# whatever CPU it gets, so it runs at nice $(FUZZ_NICE) and takes the cores
# acceptance leaves idle without slowing the suite's steps. fuzz's output goes
# to $(REPORTS)/fuzz.txt and is printed whole after acceptance ends; every
# group's exit status counts.
FUZZ_NICE ?= 10
test: vet build ## every test group, with reports in build/reports: unit + integration (race, coverage), fuzz beside acceptance, coverage check
	@mkdir -p $(REPORTS); failed=""; export FUZZ_BIN_DIR=$(CURDIR)/build/fuzz-bin; \
	nice -n 19 ./scripts/fuzz.sh --build > $(REPORTS)/fuzz-build.txt 2>&1 & prebuild_pid=$$!; \
	group() { g=$$1; shift; t0=$$(date +%s); rc=0; "$$@" $(MAKE) --no-print-directory $$g || rc=$$?; \
		echo "make test: $$g took $$(( $$(date +%s) - t0 )) s$${1:+ ($$*, beside acceptance)}"; return $$rc; }; \
	for g in reports allocs; do group $$g || failed="$$failed $$g"; done; \
	group fuzz nice -n $(FUZZ_NICE) > $(REPORTS)/fuzz.txt 2>&1 & fuzz_pid=$$!; \
	echo "make test: fuzz runs beside acceptance at nice $(FUZZ_NICE); its output ($(REPORTS)/fuzz.txt) follows acceptance's"; \
	group acceptance || failed="$$failed acceptance"; \
	fuzz_rc=0; wait $$fuzz_pid || fuzz_rc=$$?; \
	echo "make test: fuzz's output ($(REPORTS)/fuzz.txt, exit status $$fuzz_rc):"; cat $(REPORTS)/fuzz.txt; \
	[ "$$fuzz_rc" -eq 0 ] || failed="$$failed fuzz"; \
	wait $$prebuild_pid || { echo "make test: the fuzz binaries' prebuild failed ($(REPORTS)/fuzz-build.txt; fuzz built them itself):"; cat $(REPORTS)/fuzz-build.txt; }; \
	group coverage-check || failed="$$failed coverage-check"; \
	if [ -n "$$failed" ]; then echo "make test: failed:$$failed (reports in $(REPORTS))"; exit 1; fi; \
	echo "make test: all groups passed (reports in $(REPORTS))"

unit: ## unit tests only (no Docker, QEMU or S3 needed)
	$(GO) test -race -count=1 $(PKGS)

integration: ## unit + integration tests (Docker, QEMU)
	$(GO) test -race -tags integration -count=1 -timeout 30m $(PKGS)

reports: tools ## unit + integration tests (race) writing build/reports: junit.xml, test.json, coverage.out/.txt/.html, test-times.txt
	@mkdir -p $(REPORTS)
	@# The coverage reports are written even when a test fails.
	@rc=0; $(GOTESTSUM) --format pkgname-and-test-fails --junitfile $(REPORTS)/junit.xml --jsonfile $(REPORTS)/test.json -- \
		-race -tags integration -count=1 -timeout 30m -coverprofile=$(REPORTS)/coverage.out $(PKGS) || rc=$$?; \
	./scripts/coverage-report.sh $(REPORTS)/coverage.out > $(REPORTS)/coverage.txt && \
	$(GO) tool cover -html=$(REPORTS)/coverage.out -o $(REPORTS)/coverage.html && \
	sed -n '/^TOTAL/p' $(REPORTS)/coverage.txt; \
	./scripts/test-times.sh $(REPORTS)/test.json $(GOTESTSUM) > $(REPORTS)/test-times.txt && \
	echo "slowest packages and tests ($(REPORTS)/test-times.txt):" && \
	{ sed -n '1,/^$$/p' $(REPORTS)/test-times.txt | head -n 16; sed -n '/^TESTS OF/,$$p' $(REPORTS)/test-times.txt | head -n 16; }; \
	exit $$rc

allocs: ## the tests that count heap allocations per packet, which skip under the race detector: once without it
	$(GO) test -count=1 -run 'ZeroAllocs|NoAllocs' ./internal/subnet/...

acceptance: build ## the Gherkin acceptance suite on bin/dms: a table per feature, build/reports/acceptance.{txt,xml,json} (FEATURES=a,b to choose)
	@mkdir -p $(REPORTS)
	cd e2e/acceptance && DMS_BIN=$(CURDIR)/$(BIN) DMS_REPORTS=$(CURDIR)/$(REPORTS) DMS_ACCEPTANCE_FEATURES=$(FEATURES) \
		$(GO) test -count=1 -timeout 25m -run '^TestAcceptance$$'

coverage-check: ## fail when internal/cap, match, ensemble or actor is under 85 % (reads build/reports/coverage.txt)
	@./scripts/coverage-check.sh $(REPORTS)/coverage.txt

tools: $(GOTESTSUM) ## install the test tools (gotestsum)

$(GOTESTSUM):
	$(GO) install gotest.tools/gotestsum@$(GOTESTSUM_VERSION)

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
