#!/usr/bin/env bash
# The device check of issue 4, for a machine with a GPU, python3 and the
# same torch (2.11) but no Go toolchain: runs the tagged tests, built here
# with `make torch-test-binary` and carried as bin/torch.test, on cpu and
# on cuda against that machine's libtorch. The fixtures and Python's
# reference numbers are made there, on CPU, by libtorch/make_fixtures.py;
# on cuda the Go results must match them within 1e-5 of each series' scale.
# Run from the repository root. PYTHON3 picks the python (default python3).
set -euo pipefail
py=${PYTHON3:-python3}
torch_dir=$("$py" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
"$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
# The binary's rpath names this build machine's cache; LD_LIBRARY_PATH
# comes first, so the other machine's libtorch is the one loaded.
export LD_LIBRARY_PATH=$torch_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export OPENANOMALY_TORCH_PYTHON=$py
bin=$PWD/bin/torch.test
cd pkg/forecast/torch
rc=0
for dev in ${DEVICES:-cpu cuda}; do
  echo "--- tagged tests on $dev"
  OPENANOMALY_TORCH_DEVICE=$dev "$bin" -test.count=1 -test.v -test.run "${RUN:-.}" || rc=1
done
exit $rc
