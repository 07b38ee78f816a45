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

.PHONY: all build build-static image test unit vet fmt demo check-examples test-rules clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/openanomaly ./cmd/openanomaly

# The static, pure-Go binaries of the CPU image (bin/static/), built by the
# script deploy/Dockerfile runs.
build-static:
	./deploy/build.sh bin/static

# The CPU image, where a Docker engine exists (none does on CI's machines;
# there `make test` runs deploy/build.sh and lints deploy/Dockerfile).
IMAGE ?= openanomaly:$(VERSION)
image:
	docker build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$(REVISION) -t $(IMAGE) .

# The CUDA image (deploy/Dockerfile.cuda): the libtorch-tagged sidecar with
# the torch wheel's libraries, tagged <version>-<CUDA flavour>, e.g.
# openanomaly:0.1.0-cu130 (the tag deploy/helm/openanomaly/values-gpu.yaml
# names). PyPI's torch 2.11.0 is cu130; for another flavour also pass
# TORCH_INDEX_URL (deploy/Dockerfile.cuda says which).
CUDA_FLAVOUR    ?= cu130
TORCH_INDEX_URL ?= https://pypi.org/simple
IMAGE_CUDA      ?= openanomaly:$(VERSION)-$(CUDA_FLAVOUR)
.PHONY: image-cuda build-cuda
image-cuda:
	docker build -f deploy/Dockerfile.cuda --build-arg VERSION=$(VERSION) \
	  --build-arg REVISION=$(REVISION) --build-arg TORCH_VERSION=$(TORCH_VERSION) \
	  --build-arg CUDA_FLAVOUR=$(CUDA_FLAVOUR) --build-arg TORCH_INDEX_URL=$(TORCH_INDEX_URL) \
	  -t $(IMAGE_CUDA) .

# What the CUDA image's build stage runs, here (bin/cuda/): the tagged
# sidecar, the probe, and the runtime libraries in bin/cuda/libtorch (hard
# links into the libtorch cache where the file system allows).
build-cuda:
	./deploy/build.sh --libtorch $(LIBTORCH) --bundle bin/cuda

vet:
	$(GO) vet ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Every test, including the end-to-end ones that start real servers.
# LIBTORCH: go test ./deploy builds the CUDA image's binary with it.
test: fmt vet build build-static check-examples test-rules test-libtorch
	LIBTORCH=$(LIBTORCH) $(GO) test $(TEST_FLAGS) ./...

# Unit tests only (no servers started).
unit:
	$(GO) test -short ./...

check-examples: build
	./bin/openanomaly check config examples/openanomaly.yml

# Check the shipped pipeline packs and the examples, and run their unit
# tests (rules/tests/, examples/tests/) with `openanomaly test rules`.
test-rules: build
	./bin/openanomaly check rules rules/*.yml examples/pipelines.yml examples/backtest/*.yml
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

# TorchScript models through libtorch (libtorch/README.md). `make libtorch`
# installs the pinned torch wheel once per machine into OPENANOMALY_CACHE;
# LIBTORCH may instead name any libtorch (an official libtorch zip, or an
# installed torch package): a folder with include/ and lib/.
OPENANOMALY_CACHE ?= $(HOME)/.cache/openanomaly
TORCH_VERSION     ?= 2.11.0
LIBTORCH          ?= $(OPENANOMALY_CACHE)/torch-$(TORCH_VERSION)/torch
TORCH_PYTHON      ?= $(OPENANOMALY_CACHE)/torch-$(TORCH_VERSION)/bin/python
# The real path: libtorch's own RPATH ($$ORIGIN/../../nvidia/...) only finds
# the CUDA runtime from the wheel's real folder, not through a symlink.
TORCH_ENV = lt=$$(readlink -f $(LIBTORCH)) && test -f "$$lt/lib/libtorch_cpu.so" || \
	{ echo "no libtorch at $(LIBTORCH): run make libtorch, or set LIBTORCH" >&2; exit 1; } && \
	export CGO_ENABLED=1 CGO_CFLAGS="-I$$lt/include" \
	CGO_CXXFLAGS="-I$$lt/include -I$$lt/include/torch/csrc/api/include" \
	CGO_LDFLAGS="-L$$lt/lib -Wl,-rpath,$$lt/lib" &&

.PHONY: libtorch build-libtorch test-libtorch vet-libtorch torch-test-binary
libtorch:
	OPENANOMALY_CACHE=$(OPENANOMALY_CACHE) TORCH_VERSION=$(TORCH_VERSION) libtorch/get-libtorch.sh

# bin/openanomaly-libtorch: the binary with the torchscript model kind.
build-libtorch:
	$(TORCH_ENV) $(GO) build -tags libtorch -ldflags '$(LDFLAGS)' -o bin/openanomaly-libtorch ./cmd/openanomaly

vet-libtorch:
	$(TORCH_ENV) $(GO) vet -tags libtorch ./pkg/forecast/torch/... ./pkg/forecast/tsfm/... ./cmd/openanomaly/... ./test/e2e/...

# The tagged tests: fixtures are made by libtorch/make_fixtures.py with the
# same torch the binary links (TORCH_PYTHON). In test/e2e only the
# torchscript end-to-end test: make test runs the rest untagged. Installs the canonical
# libtorch and the export tool's packages (the Chronos/TimesFM parity tests
# export with it) first unless LIBTORCH was given.
test-libtorch: $(if $(filter file,$(origin LIBTORCH)),libtorch export-deps) vet-libtorch
	$(TORCH_ENV) OPENANOMALY_TORCH_PYTHON=$(TORCH_PYTHON) \
	$(GO) test -tags libtorch $(TEST_FLAGS) ./pkg/forecast/torch/... ./pkg/forecast/tsfm/... ./cmd/openanomaly/...
	$(TORCH_ENV) OPENANOMALY_TORCH_PYTHON=$(TORCH_PYTHON) \
	$(GO) test -tags libtorch $(TEST_FLAGS) -run 'TorchScript' ./test/e2e/...

# The export tool's Python packages (libtorch/requirements-export.txt:
# chronos-forecasting, timesfm) into the same venv, once; torch stays pinned.
# Then: $(TORCH_PYTHON) libtorch/export.py --help (libtorch/MODELS.md).
.PHONY: export-deps
export-deps:
	OPENANOMALY_CACHE=$(OPENANOMALY_CACHE) TORCH_VERSION=$(TORCH_VERSION) libtorch/get-export-deps.sh

# bin/torch.test: the tagged tests as one binary, for libtorch/gpu-check.sh
# on a machine without Go.
torch-test-binary:
	$(TORCH_ENV) $(GO) test -c -tags libtorch -o bin/torch.test ./pkg/forecast/torch

# The BOOM forecasting-accuracy benchmark of the built-in models
# (BENCHMARKS.md, protocol in ../shared/bench/README.md): every series in
# ../shared/data/boom, MASE and WQL relative to seasonal naive; seconds. E.g.
#   make bench-boom BOOM_FLAGS='-models default,holt_winters -json /tmp/boom.json'
BOOM_FLAGS ?=
.PHONY: bench-boom
bench-boom:
	$(GO) run ./internal/cmd/boom $(BOOM_FLAGS)

# The 10,000-series engine benchmark (BENCHMARKS.md): real Prometheus,
# VictoriaMetrics + vmalert and the sidecar on loopback ports; takes about
# half an hour at full size. A small run:
#   make bench BENCH_FLAGS='-series=500 -history=6h -evals=3'
BENCH_FLAGS ?= -series=10000 -history=24h -evals=5
.PHONY: bench
bench: build
	$(GO) run ./internal/cmd/bench $(BENCH_FLAGS)

# The TorchScript throughput and overhead benchmark of issue 4
# (BENCHMARKS.md): builds bin/torchbench and runs it: (*torch.Model).Forecast
# against a Python loop calling the same file (libtorch/make_bench_fixture.py,
# written first), batches 1, 32 and 256, 2 threads, interleaved rounds; a few
# minutes. E.g. make bench-torch TORCHBENCH_FLAGS='-rounds 9 -json /tmp/tb.json';
# TORCHBENCH_FLAGS=-version only builds it (for libtorch/gpu-check.sh).
TORCHBENCH_FLAGS ?=
.PHONY: bench-torch
bench-torch: $(if $(filter file,$(origin LIBTORCH)),libtorch)
	$(TORCH_ENV) $(GO) build -tags libtorch -o bin/torchbench ./internal/cmd/torchbench
	bin/torchbench -python $(TORCH_PYTHON) $(TORCHBENCH_FLAGS)

# The foundation-model benchmark of issue 5 (BENCHMARKS.md, "Foundation
# model in the sidecar"): builds bin/tsfmbench and runs it: the sidecar's
# whole evaluation (PromQL read from an in-process TSDB, prepare, Chronos-Bolt
# TorchScript forward, score, emit) against chronos-forecasting's
# ChronosBoltPipeline on the same rows and random weights
# (libtorch/bench_chronos_python.py), interleaved rounds. Exports the file
# into bin/tsfmbench-models/ first (once). 256 series at context 512, 9 rounds:
# about 3 minutes on 2 quiet cores, 15-20 on busy ones. E.g.
#   make bench-tsfm TSFMBENCH_FLAGS='-context 2048 -series 128 -rounds 3 -json /tmp/tsfm.json'
TSFMBENCH_FLAGS ?=
.PHONY: bench-tsfm
bench-tsfm: $(if $(filter file,$(origin LIBTORCH)),libtorch) export-deps
	$(TORCH_ENV) $(GO) build -tags libtorch -o bin/tsfmbench ./internal/cmd/tsfmbench
	bin/tsfmbench -python $(TORCH_PYTHON) $(TSFMBENCH_FLAGS)

# The vmalert z-score peer on NAB (issue 6, BENCHMARKS.md): VictoriaMetrics +
# vmalert replay of internal/nabpeer/peer-rules.yml over the 58 NAB files,
# scored with pkg/nab; about 2 minutes. Results in bin/nabpeer/. E.g.
# make bench-nab-peer NABPEER_FLAGS='-files realKnownCause/nyc_taxi.csv'
NABPEER_FLAGS ?=
# The NAB benchmark of the built-in default (BENCHMARKS.md, "NAB corpus"):
# examples/backtest/nab.yml (novelty) and nab-plain.yml replayed over the
# 58 files and scored with NAB; about 3 minutes each on 2 cores.
.PHONY: bench-nab
bench-nab: build
	./bin/openanomaly backtest --nab.data ../shared/data/nab --output.dir bin/nab/novelty --progress log examples/backtest/nab.yml
	./bin/openanomaly nab score --data ../shared/data/nab --results bin/nab/novelty/scores/all-pipelines
	./bin/openanomaly nab score --data ../shared/data/nab --results bin/nab/novelty/scores/all-pipelines --threshold 1
	./bin/openanomaly backtest --nab.data ../shared/data/nab --output.dir bin/nab/plain --progress log examples/backtest/nab-plain.yml
	./bin/openanomaly nab score --data ../shared/data/nab --results bin/nab/plain/scores/all-pipelines
	./bin/openanomaly nab score --data ../shared/data/nab --results bin/nab/plain/scores/all-pipelines --threshold 1

.PHONY: bench-nab-peer
bench-nab-peer:
	$(GO) run ./internal/cmd/nabpeer -out bin/nabpeer -json bin/nabpeer/report.json $(NABPEER_FLAGS)
