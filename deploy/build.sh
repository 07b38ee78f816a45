#!/bin/sh
# Builds the binaries the CPU image ships: the sidecar and its healthcheck
# probe, pure Go (CGO_ENABLED=0), statically linked, with no VCS stamping
# (the version comes in through ldflags). deploy/Dockerfile runs this
# script, and so do `make build-static` and the tests in deploy/ (outside
# Docker), so that what the image builds is what CI checks.
#
#   deploy/build.sh [OUTDIR]     default OUTDIR: bin/static
#
# leaves OUTDIR/openanomaly and OUTDIR/openanomaly-healthcheck. VERSION,
# REVISION and BRANCH default to what git says, else dev/unknown; the
# Dockerfile passes them as build args, since its build context has no .git.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bin/static}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
cd "$root"

: "${GO:=go}"
: "${VERSION:=$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
: "${REVISION:=$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
: "${BRANCH:=$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)}"

pkg=github.com/prometheus/common/version
ldflags="-s -w -X $pkg.Version=$VERSION -X $pkg.Revision=$REVISION -X $pkg.Branch=$BRANCH"
mkdir -p "$out"
# netgo and osusergo: Go's own DNS resolver and user lookup, so that nothing
# would reach for libc even if cgo were on.
export CGO_ENABLED=0
"$GO" build -trimpath -buildvcs=false -tags netgo,osusergo -ldflags "$ldflags" \
  -o "$out/openanomaly" ./cmd/openanomaly
"$GO" build -trimpath -buildvcs=false -tags netgo,osusergo -ldflags "-s -w" \
  -o "$out/openanomaly-healthcheck" ./internal/cmd/healthcheck
echo "built $out/openanomaly and $out/openanomaly-healthcheck ($VERSION)"
