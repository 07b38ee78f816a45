#!/usr/bin/env bash
# Installs libtorch the canonical way (DESIGN.md §5): the pinned torch wheel
# from PyPI, in a virtual environment in a per-machine cache, reused when
# present (a second run only prints the paths).
#
#   get-libtorch.sh          torch and the NVIDIA wheels it names, except
#                            triton (compiler only): what `import torch`
#                            needs, so fixtures and exports work (~4 GB)
#   get-libtorch.sh --cpu    torch, the CUDA runtime and CUPTI wheels only:
#                            enough to build the tagged binary and run it on
#                            CPU, not enough for `import torch` (~1.3 GB)
#
# Prints the paths as shell assignments:
#   TORCH_DIR   the torch package (include/, lib/), what `make LIBTORCH=` takes
#   PYTHON      the venv's python with that torch (full install only)
# Environment: OPENANOMALY_CACHE (default ~/.cache/openanomaly),
# TORCH_VERSION (default 2.11.0), PYTHON3 (default python3).
set -euo pipefail

mode=full
case "${1:-}" in
  --cpu) mode=cpu ;;
  "") ;;
  *) echo "usage: $0 [--cpu]" >&2; exit 2 ;;
esac
version=${TORCH_VERSION:-2.11.0}
cache=${OPENANOMALY_CACHE:-$HOME/.cache/openanomaly}
root=$cache/torch-$version
py=${PYTHON3:-python3}
# pip install, without pip's notice that torch's other requirements are
# missing: leaving them out is the point of the --cpu install.
pip() {
  # --no-cache-dir: the venv is the cache; a second copy of the wheels in
  # pip's cache would cost another 2.7 GB.
  "$root/bin/python" -m pip install -q --disable-pip-version-check --no-cache-dir "$@" 2>&1 >&2 |
    { grep -v -e "which is not installed" -e "dependency resolver does not currently" >&2 || true; }
}

if [ ! -f "$root/.complete-cpu" ]; then
  echo "--- installing torch==$version (no dependencies) into $root" >&2
  rm -rf "$root"
  mkdir -p "$cache"
  "$py" -m venv "$root"
  pip --no-deps "torch==$version"
  # libtorch_cpu.so itself needs libcudart.so.13 and libcupti.so.13 (the
  # profiler links them), even on CPU; both wheels are small.
  "$root/bin/python" - >"$root/requirements-cpu.txt" <<'PY'
import importlib.metadata as md
for r in md.requires("torch"):
    name = r.split(";")[0].strip()
    if name.startswith("cuda-toolkit["):
        # keep the pinned version, take only the two runtime parts
        print("cuda-toolkit[cudart,cupti]" + name[name.index("]") + 1:])
PY
  pip -r "$root/requirements-cpu.txt"
  ln -sfn "$("$root/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torch" "$root/torch"
  touch "$root/.complete-cpu"
fi

if [ "$mode" = full ] && [ ! -f "$root/.complete-full" ]; then
  echo "--- installing what import torch needs (NVIDIA wheels, pure-Python deps) into $root" >&2
  # torch's own pins, from its metadata, less triton and the extras.
  "$root/bin/python" - >"$root/requirements-full.txt" <<'PY'
import importlib.metadata as md
for r in md.requires("torch"):
    req, _, marker = r.partition(";")
    if "extra ==" in marker or req.strip().startswith("triton"):
        continue
    print(req.strip())
PY
  pip -r "$root/requirements-full.txt"
  got=$("$root/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null)
  if [ "$got" != "$version" ]; then
    echo "get-libtorch: import torch gives version '$got', want $version" >&2
    exit 1
  fi
  touch "$root/.complete-full"
fi

echo "TORCH_DIR=$root/torch"
if [ -f "$root/.complete-full" ]; then
  echo "PYTHON=$root/bin/python"
fi
