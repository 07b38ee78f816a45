#!/usr/bin/env bash
# The device check of issue 4, for a machine with a GPU, python3 and the
# same torch (2.11) but no Go toolchain. Build here, carry bin/ and run it
# there from the repository root:
#
#   make torch-test-binary                       # bin/torch.test
#   make bench-torch TORCHBENCH_FLAGS=-version   # bin/torchbench (optional)
#
# 1. The tagged tests, bin/torch.test, on cpu and on cuda against that
#    machine's libtorch. The fixtures and Python's reference numbers are
#    made there, on CPU, by libtorch/make_fixtures.py; on cuda the Go
#    results must match them within 1e-5 of each series' scale.
# 2. When bin/torchbench is there: the benchmark's file (about 11 M
#    parameters, libtorch/make_bench_fixture.py) on BENCH_DEVICE (cuda): the
#    Go path against Python on that device, and against the Go path on cpu
#    (-compare-device: the largest difference relative to each series'
#    scale is printed, and must be under BENCH_TOLERANCE, 1e-4 by default:
#    TF32 or other GPU kernels sum in another order than the CPU ones over
#    a 6-layer transformer), and series per second on the GPU, batches 1,
#    32 and 256. The NAB data set is not carried: synthetic series.
#
# Environment: PYTHON3 (default python3), DEVICES (default "cpu cuda"), RUN
# (a -test.run pattern), BENCH_DEVICE (default cuda), BENCH_ROUNDS (3),
# BENCH_TOLERANCE (1e-4), BENCH_FLAGS (more torchbench flags), BENCH_JSON
# (a copy of its -json), SKIP_TESTS=1 or SKIP_BENCH=1. Tested on the 2-core
# CPU build machine with DEVICES=cpu BENCH_DEVICE=cpu.
set -euo pipefail
py=${PYTHON3:-python3}
torch_dir=$("$py" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
# The binaries' rpath names this build machine's cache; LD_LIBRARY_PATH
# comes first, so the other machine's libtorch is the one loaded.
export LD_LIBRARY_PATH=$torch_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OPENANOMALY_TORCH_PYTHON=$py
root=$PWD
rc=0
if [ "${SKIP_TESTS:-}" != 1 ]; then
  (
    cd pkg/forecast/torch
    for dev in ${DEVICES:-cpu cuda}; do
      echo "--- tagged tests on $dev"
      OPENANOMALY_TORCH_DEVICE=$dev "$root/bin/torch.test" -test.count=1 -test.v -test.run "${RUN:-.}" || exit 1
    done
  ) || rc=1
fi
if [ "${SKIP_BENCH:-}" != 1 ] && [ -x bin/torchbench ]; then
  dev=${BENCH_DEVICE:-cuda}
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "--- benchmark file on $dev"
  "$py" libtorch/make_bench_fixture.py "$tmp/bench.pt" --device "$dev"
  if bin/torchbench -model "$tmp/bench.pt" -python "$py" -device "$dev" -compare-device cpu \
    -data synthetic -rounds "${BENCH_ROUNDS:-3}" -json "$tmp/bench.json" ${BENCH_FLAGS:-} | tee "$tmp/bench.md"; then
    worst=$(sed -n 's/.*differs by at most \([^ ]*\) of each.*/\1/p' "$tmp/bench.md" | head -1)
    if awk -v w="$worst" -v t="${BENCH_TOLERANCE:-1e-4}" 'BEGIN { exit !(w != "" && w + 0 <= t + 0) }'; then
      echo "--- $dev and cpu agree: $worst <= ${BENCH_TOLERANCE:-1e-4}"
    else
      echo "--- $dev and cpu disagree: ${worst:-no comparison} > ${BENCH_TOLERANCE:-1e-4}" >&2
      rc=1
    fi
  else
    rc=1
  fi
  if [ -n "${BENCH_JSON:-}" ]; then cp "$tmp/bench.json" "$BENCH_JSON"; fi
elif [ "${SKIP_BENCH:-}" != 1 ]; then
  echo "--- no bin/torchbench: benchmark skipped (make bench-torch TORCHBENCH_FLAGS=-version builds it)"
fi
exit $rc
