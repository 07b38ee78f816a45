#!/bin/sh
# Builds the binaries the images ship. deploy/Dockerfile and
# deploy/Dockerfile.cuda run this script, and so do `make build-static`,
# `make build-cuda` and the tests in deploy/ (outside Docker), so that what
# the images build is what CI checks.
#
#   deploy/build.sh [OUTDIR]
#       the CPU image's: the sidecar and its healthcheck probe, pure Go
#       (CGO_ENABLED=0), statically linked. Default OUTDIR: bin/static.
#   deploy/build.sh --libtorch DIR [--bundle] [OUTDIR]
#       the CUDA image's: the sidecar with the build tag libtorch, linked
#       with cgo against the libtorch in DIR (a folder with include/ and
#       lib/, e.g. the torch package get-libtorch.sh installs), with the
#       cgo flags of `make build-libtorch`; the probe stays static.
#       --bundle also copies the shared libraries the binary needs at run
#       time into OUTDIR/libtorch: DIR/lib as libtorch/torch/lib and the
#       NVIDIA wheels' lib/ folders next to DIR as libtorch/nvidia/*/lib,
#       the layout torch's own RPATH ($ORIGIN/../../nvidia/...) expects.
#       Hard links where the file system allows, copies otherwise.
#       Default OUTDIR: bin/cuda.
#
# leaves OUTDIR/openanomaly and OUTDIR/openanomaly-healthcheck. VERSION,
# REVISION and BRANCH default to what git says, else dev/unknown; the
# Dockerfiles pass them as build args, since their build context has no
# .git. With --libtorch, the binary's RPATH is LIBTORCH_RPATH when set (the
# CUDA image sets the folder it copies the bundle to), else
# $ORIGIN/libtorch/torch/lib with --bundle, else DIR/lib (real path).
set -eu

libtorch=
bundle=
while [ $# -gt 0 ]; do
  case $1 in
    --libtorch) [ $# -ge 2 ] || { echo "build.sh: --libtorch needs a folder" >&2; exit 2; }
                libtorch=$2; shift 2 ;;
    --bundle) bundle=1; shift ;;
    -*) echo "usage: $0 [--libtorch DIR [--bundle]] [OUTDIR]" >&2; exit 2 ;;
    *) break ;;
  esac
done
[ -z "$bundle" ] || [ -n "$libtorch" ] || { echo "build.sh: --bundle needs --libtorch" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "$libtorch" ]; then def=$root/bin/cuda; else def=$root/bin/static; fi
out=${1:-$def}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
cd "$root"

: "${GO:=go}"
: "${VERSION:=$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
: "${REVISION:=$(git rev-parse HEAD 2>/dev/null || echo unknown)}"
: "${BRANCH:=$(git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)}"

pkg=github.com/prometheus/common/version
ldflags="-s -w -X $pkg.Version=$VERSION -X $pkg.Revision=$REVISION -X $pkg.Branch=$BRANCH"
mkdir -p "$out"

if [ -z "$libtorch" ]; then
  # netgo and osusergo: Go's own DNS resolver and user lookup, so that
  # nothing would reach for libc even if cgo were on.
  CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false -tags netgo,osusergo -ldflags "$ldflags" \
    -o "$out/openanomaly" ./cmd/openanomaly
else
  # The real path: torch's own RPATH ($ORIGIN/../../nvidia/...) only finds
  # the CUDA runtime from the wheel's real folder, not through a symlink.
  lt=$(readlink -f "$libtorch") || lt=
  if [ -z "$lt" ] || [ ! -f "$lt/lib/libtorch_cpu.so" ] || [ ! -d "$lt/include/torch" ]; then
    echo "build.sh: no libtorch at $libtorch (want include/torch and lib/libtorch_cpu.so): run make libtorch, or libtorch/get-libtorch.sh" >&2
    exit 1
  fi
  if [ -n "$bundle" ]; then
    rm -rf "$out/libtorch"
    mkdir -p "$out/libtorch/torch" "$out/libtorch/nvidia"
    # cp -l: hard links (instant, no space) where the file system allows.
    copy() { cp -al "$1" "$2" 2>/dev/null || { rm -rf "$2"; cp -a "$1" "$2"; }; }
    copy "$lt/lib" "$out/libtorch/torch/lib"
    # Python's binding: not needed by the Go binary.
    rm -f "$out/libtorch/torch/lib/libtorch_python.so"
    for d in "$lt"/../nvidia/*/lib; do
      [ -d "$d" ] || continue
      name=$(basename "$(dirname "$d")")
      mkdir -p "$out/libtorch/nvidia/$name"
      copy "$d" "$out/libtorch/nvidia/$name/lib"
    done
    : "${LIBTORCH_RPATH:=\$ORIGIN/libtorch/torch/lib}"
  fi
  : "${LIBTORCH_RPATH:=$lt/lib}"
  CGO_ENABLED=1 CGO_CFLAGS="-I$lt/include" \
  CGO_CXXFLAGS="-I$lt/include -I$lt/include/torch/csrc/api/include" \
  CGO_LDFLAGS="-L$lt/lib -Wl,-rpath,$LIBTORCH_RPATH" \
    "$GO" build -trimpath -buildvcs=false -tags libtorch -ldflags "$ldflags" \
    -o "$out/openanomaly" ./cmd/openanomaly
fi
CGO_ENABLED=0 "$GO" build -trimpath -buildvcs=false -tags netgo,osusergo -ldflags "-s -w" \
  -o "$out/openanomaly-healthcheck" ./internal/cmd/healthcheck
echo "built $out/openanomaly${libtorch:+ (libtorch $libtorch)} and $out/openanomaly-healthcheck ($VERSION)"
