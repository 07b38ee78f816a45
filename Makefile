# OpenAnomaly. `make build` leaves the binary in bin/; `make test` runs every
# test (unit and end-to-end against real Prometheus, VictoriaMetrics and
# node_exporter, which `.ci/run` installs); `make demo` runs the sidecar on
# live data from this machine.

GO        ?= go
PKG       := github.com/openanomaly/openanomaly
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/prometheus/common/version.Version=$(VERSION) \
             -X github.com/prometheus/common/version.Revision=$(REVISION) \
             -X github.com/prometheus/common/version.Branch=main
TEST_FLAGS ?= -timeout 25m -count=1

.PHONY: all build test unit vet fmt demo check-examples test-rules clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/openanomaly ./cmd/openanomaly

vet:
	$(GO) vet ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Every test, including the end-to-end ones that start real servers.
test: fmt vet build check-examples test-rules
	$(GO) test $(TEST_FLAGS) ./...

# Unit tests only (no servers started).
unit:
	$(GO) test -short ./...

check-examples: build
	./bin/openanomaly check config examples/openanomaly.yml

# Check the shipped pipeline packs and the examples, and run their unit
# tests (rules/tests/, examples/tests/) with `openanomaly test rules`.
test-rules: build
	./bin/openanomaly check rules rules/*.yml examples/pipelines.yml
	./bin/openanomaly test rules rules/tests/*.yml examples/tests/*.yml

# Regenerate the JSON Schema editors use for pipeline files from the types in
# pkg/rulefmt (a test fails when the committed file is stale).
.PHONY: schema
schema:
	$(GO) run ./internal/cmd/genschema -o schema/pipelines.schema.json

demo: build
	./deploy/demo/demo.sh

clean:
	rm -rf bin

# The 10,000-series engine benchmark (BENCHMARKS.md): real Prometheus,
# VictoriaMetrics + vmalert and the sidecar on loopback ports; takes about
# half an hour at full size. A small run:
#   make bench BENCH_FLAGS='-series=500 -history=6h -evals=3'
BENCH_FLAGS ?= -series=10000 -history=24h -evals=5
.PHONY: bench
bench: build
	$(GO) run ./internal/cmd/bench $(BENCH_FLAGS)
