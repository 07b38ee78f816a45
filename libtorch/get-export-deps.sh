#!/usr/bin/env bash
# Installs the export tool's Python packages (libtorch/requirements-export.txt:
# chronos-forecasting, timesfm and what they need) into the torch venv that
# get-libtorch.sh makes, once (a marker file), without replacing its torch:
# the exported files must come from the torch the Go binary links.
#
#   get-export-deps.sh      prints PYTHON=<the venv's python>
#
# It runs get-libtorch.sh first (a no-op when torch is there). pip resolves the
# requirements with torch constrained to the pinned version and reports what it
# would install; everything but torch and its own NVIDIA/triton wheels is then
# installed --no-deps, so torch stays exactly as get-libtorch.sh left it (and
# triton, which only torch.compile uses, stays out). Finally
# `import torch, chronos, timesfm` must work and report the pinned torch.
# Environment: OPENANOMALY_CACHE (default ~/.cache/openanomaly),
# TORCH_VERSION (default 2.11.0), as get-libtorch.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
version=${TORCH_VERSION:-2.11.0}
cache=${OPENANOMALY_CACHE:-$HOME/.cache/openanomaly}
root=$cache/torch-$version
req=$here/requirements-export.txt
marker=$root/.complete-export

OPENANOMALY_CACHE=$cache TORCH_VERSION=$version "$here/get-libtorch.sh" >/dev/null
py=$root/bin/python

# Reinstall when the requirements changed since the last install.
sum=$(sha256sum "$req" | cut -d' ' -f1)
if [ ! -f "$marker" ] || [ "$(cat "$marker")" != "$sum" ]; then
  echo "--- installing the export tool's packages ($req) into $root" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # The torch pin of requirements-export.txt must be the venv's torch.
  grep -E '^torch==' "$req" | grep -qx "torch==$version" || {
    echo "get-export-deps: $req pins $(grep -E '^torch==' "$req" || echo 'no torch'), the venv has torch==$version" >&2
    exit 1
  }
  echo "torch==$version" >"$tmp/constraints.txt"
  grep -v -E '^(torch==|#|$)' "$req" >"$tmp/requirements.txt"
  "$py" -m pip install -q --disable-pip-version-check --no-cache-dir --dry-run \
    --report "$tmp/report.json" -c "$tmp/constraints.txt" -r "$tmp/requirements.txt" >&2
  "$py" - "$tmp/report.json" >"$tmp/pinned.txt" <<'PY'
import json, sys
skip = ("torch", "triton")
for item in json.load(open(sys.argv[1]))["install"]:
    m = item["metadata"]
    name = m["name"].lower().replace("_", "-")
    # torch and the wheels torch itself pins stay as get-libtorch.sh made them
    if name in skip or name.startswith(("nvidia-", "cuda-")):
        continue
    print(f'{m["name"]}=={m["version"]}')
PY
  echo "--- $(wc -l <"$tmp/pinned.txt") packages: $(tr '\n' ' ' <"$tmp/pinned.txt")" >&2
  if [ -s "$tmp/pinned.txt" ]; then
    "$py" -m pip install -q --disable-pip-version-check --no-cache-dir --no-deps -r "$tmp/pinned.txt" >&2
  fi
  got=$("$py" -c 'import warnings; warnings.filterwarnings("ignore")
import torch, chronos, timesfm; print(torch.__version__.split("+")[0])')
  if [ "$got" != "$version" ]; then
    echo "get-export-deps: import torch gives version '$got' after the install, want $version" >&2
    exit 1
  fi
  echo "$sum" >"$marker"
fi
echo "PYTHON=$py"
