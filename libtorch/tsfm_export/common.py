"""What every export does, whatever the model: argument checks, tracing,
checking the traced file against the eager module, the tsfm/v1 metadata,
saving. See the package docstring (tsfm_export/__init__.py) for the family
plugin contract."""

import argparse
import importlib
import json
import math
import os
import sys
import tempfile
import time
import warnings

import torch

from . import FAMILY_MODULES

CONTRACT = "tsfm/v1"

# The traced file, loaded back, against the eager module on the same rows:
# |traced - eager| <= TOLERANCE[device kind] * max(1, max |eager| of that
# row). Same kernels, so on CPU the differences are float32 rounding of a
# reordered graph (observed: 0 or a few ulps); CUDA kernels may pick other
# algorithms per batch size.
TOLERANCE = {"cpu": 1e-5, "cuda": 1e-3}


class ExportError(Exception):
    """A refused argument or a failed check; the CLI prints it and exits 2."""


def _family_modules():
    mods = []
    for name in FAMILY_MODULES:
        try:
            mods.append(importlib.import_module(f"{__package__}.{name}"))
        except ModuleNotFoundError as e:
            # a family module not written yet; anything else it fails to
            # import is a real error
            if e.name != f"{__package__}.{name}":
                raise
    return mods


def known_models():
    """model id -> (family module, MODELS entry), in FAMILY_MODULES order."""
    out = {}
    for mod in _family_modules():
        for model_id, spec in mod.MODELS.items():
            out[model_id] = (mod, spec)
    return out


def check_device(device):
    """The torch device string, or ExportError when it is not there."""
    if device == "cpu":
        return "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ExportError(f"--device {device}: CUDA is not available on this machine (torch {torch.__version__}, "
                              f"{torch.cuda.device_count()} GPUs visible); export with --device cpu, or run where a GPU is")
        if device.startswith("cuda:"):
            idx = device[5:]
            if not idx.isdigit():
                raise ExportError(f"--device {device}: want cpu, cuda or cuda:N")
            if int(idx) >= torch.cuda.device_count():
                raise ExportError(f"--device {device}: only {torch.cuda.device_count()} GPUs visible (cuda:0..cuda:{torch.cuda.device_count() - 1})")
        return device
    raise ExportError(f"--device {device}: want cpu, cuda or cuda:N")


def check_args(model_id, context, horizon, device):
    """Checks the arguments before anything is built. Returns
    (family module, spec, context, horizon, device) with defaults filled."""
    models = known_models()
    if model_id not in models:
        raise ExportError(f"unknown model {model_id!r}; known models: {', '.join(models)}")
    mod, spec = models[model_id]
    missing = [k for k in ("family", "patch_size", "max_context", "default_context", "max_horizon", "default_horizon") if k not in spec]
    if missing:
        raise ExportError(f"{mod.__name__}.MODELS[{model_id!r}] lacks {missing} (tsfm_export/__init__.py says what a family module provides)")
    if context is None:
        context = spec["default_context"]
    if horizon is None:
        horizon = spec["default_horizon"]
    p = spec["patch_size"]
    if context > spec["max_context"]:
        raise ExportError(f"--context {context}: {model_id} takes at most {spec['max_context']} points")
    if context < p or context % p != 0:
        raise ExportError(f"--context {context}: {model_id} takes contexts that are a positive multiple of its patch size {p} "
                          f"(e.g. {max(p, context // p * p)} or {min((context // p + 1) * p, spec['max_context'] // p * p)})")
    if not 1 <= horizon <= spec["max_horizon"]:
        raise ExportError(f"--horizon {horizon}: out of range for {model_id}, 1..{spec['max_horizon']} steps per file "
                          f"(longer horizons are forecast by the sidecar's {spec['family']} adapter from a file's horizon)")
    return mod, spec, context, horizon, check_device(device)


def realistic_rows(batch, length, seed):
    """float32 [batch, length] rows that look like metrics: level, trend,
    daily-ish seasonality, noise, spikes; with NaN gaps, NaN left padding of
    several lengths (one row observed only in its last point), and a flat
    row."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float64)
    rows = []
    for r in range(batch):
        level = [1000.0, 0.0, 3.5, -50.0, 1e5][r % 5]
        amp = [120.0, 1.0, 0.4, 5.0, 2e4][r % 5]
        period = [24.0, 60.0, 7.0, 144.0, 12.0][r % 5]
        x = level + amp * torch.sin(2 * math.pi * t / period) + 0.01 * amp * t / 10
        x = x + 0.1 * amp * torch.randn(length, generator=g, dtype=torch.float64)
        if r % 3 == 0:
            x[length // 3] += 8 * amp  # a spike
        rows.append(x)
    x = torch.stack(rows).to(torch.float32)
    for r in range(batch):
        kind = r % 6
        if kind == 1:  # left padding: a short series
            x[r, : length // 2 + 3] = float("nan")
        elif kind == 2:  # gaps
            x[r, length // 5 : length // 5 + 7] = float("nan")
            x[r, length - 9 : length - 6] = float("nan")
        elif kind == 3:  # padding and gaps
            x[r, : length - length // 4] = float("nan")
            x[r, length - 5] = float("nan")
        elif kind == 4:  # a single observed point
            x[r, :-1] = float("nan")
        elif kind == 5:  # constant
            x[r] = 42.0
    return x


def compare(got, want, tol, what):
    """Raises ExportError unless |got - want| <= tol * max(1, max |want| of
    the row) everywhere; returns the largest such relative difference."""
    if got.shape != want.shape:
        raise ExportError(f"{what}: shape {tuple(got.shape)}, eager module gives {tuple(want.shape)}")
    if not torch.isfinite(got).all():
        raise ExportError(f"{what}: non-finite outputs")
    b = want.shape[0]
    scale = want.reshape(b, -1).abs().amax(dim=1).clamp(min=1.0).view(b, *([1] * (want.dim() - 1)))
    rel = ((got.double() - want.double()).abs() / scale.double()).max().item()
    if rel > tol:
        raise ExportError(f"{what}: differs from the eager module by {rel:.3g} of the series' scale (tolerance {tol:g})")
    return rel


def export(model_id, context, horizon, device, out, random_init=False, seed=0, checkpoint=None, log=print,
           covariates=False):
    """Builds, traces, checks and saves one tsfm/v1 file; returns its metadata.
    covariates: the experimental multi-input graph of a family whose MODELS
    entry says "covariates": True (see the package docstring)."""
    mod, spec, context, horizon, device = check_args(model_id, context, horizon, device)
    if covariates and not spec.get("covariates"):
        raise ExportError(f"--covariates: {model_id} takes no covariates (models that do: "
                          f"{', '.join(m for m, (_, sp) in known_models().items() if sp.get('covariates')) or 'none'})")
    if not random_init and checkpoint is not None and not os.path.isdir(checkpoint):
        raise ExportError(f"--checkpoint {checkpoint}: not a folder (want a local copy of the model's hub repository: config.json and weights)")
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        import transformers
        transformers.logging.set_verbosity_error()
    except ImportError:
        pass
    t0 = time.time()
    try:
        with torch.no_grad():
            module, meta = mod.build(model_id, context, horizon, random_init, seed, device, checkpoint=checkpoint,
                                     **({"covariates": True} if covariates else {}))
    except ValueError as e:
        raise ExportError(str(e)) from e
    except OSError as e:  # from_pretrained: no network, no such repository or folder
        raise ExportError(f"loading {model_id} from {checkpoint or 'the Hugging Face hub'}: {e}\n"
                          "(without network access, download the repository elsewhere and pass --checkpoint DIR; "
                          "--random-init needs no weights)") from e
    module = module.eval()
    q = list(meta["quantiles"])
    for k in ("family", "name", "quantiles"):
        if k not in meta:
            raise ExportError(f"family module {mod.__name__} returned meta without {k!r}")
    log(f"built {model_id} ({'random weights, seed %d' % seed if random_init else 'weights from ' + (checkpoint or 'the hub')}): "
        f"{sum(p.numel() for p in module.parameters()) / 1e6:.1f} M parameters, {time.time() - t0:.1f} s")

    inputs = list(meta.pop("inputs", ["context"]))
    example_inputs = getattr(mod, "example_inputs", None)

    def args_for(rows):
        # the graph's positional inputs for these context rows
        if inputs == ["context"]:
            return (rows,)
        return tuple(example_inputs(rows, horizon, inputs))

    example = realistic_rows(3, context, seed=1).to(device)
    with torch.no_grad():
        t0 = time.time()
        traced = torch.jit.trace(module, args_for(example), check_trace=False)
        log(f"traced in {time.time() - t0:.1f} s")

    full = {
        "contract": CONTRACT,
        **meta,
        "context_length": context,
        "horizon": horizon,
        "quantiles": q,
        "inputs": inputs,
        "outputs": ["quantiles"],
        "nan_policy": "missing",
        "torch_version": torch.__version__.split("+")[0],
        "device": device,
        "model_id": model_id,
        "weights": f"random (seed {seed})" if random_init else (checkpoint or "hub"),
        "exporter": "openanomaly libtorch/export.py",
    }

    # Save next to the destination, load back, compare, then rename: a
    # failed check leaves no file behind.
    out_dir = os.path.dirname(os.path.abspath(out))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tsfm-export-", suffix=".pt", dir=out_dir)
    os.close(fd)
    try:
        torch.jit.save(traced, tmp, _extra_files={"tsfm.json": json.dumps(full)})
        extra = {"tsfm.json": ""}
        loaded = torch.jit.load(tmp, map_location=device, _extra_files=extra)
        if json.loads(extra["tsfm.json"]) != full:
            raise ExportError("the saved file's tsfm.json does not read back")
        tol = TOLERANCE["cpu" if device == "cpu" else "cuda"]
        worst = 0.0
        for b, s in ((5, 2), (1, 3), (8, 4)):
            rows = realistic_rows(b, context, seed=s).to(device)
            with torch.no_grad():
                want = module(*args_for(rows))
                got = loaded(*args_for(rows))
            if tuple(want.shape) != (b, len(q), horizon) or want.dtype != torch.float32:
                raise ExportError(f"the eager module returns {want.dtype} {tuple(want.shape)}, the contract wants float32 {(b, len(q), horizon)}")
            worst = max(worst, compare(got, want, tol, f"traced file on a batch of {b}"))
        log(f"checked the saved file against the eager module on batches of 5, 1 and 8 "
            f"(NaN gaps and padding): max difference {worst:.2g} of the series' scale, tolerance {tol:g}")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp made it 0600
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    log(f"wrote {out} ({os.path.getsize(out) / 1e6:.1f} MB): {meta['family']} {meta['name']}, context {context}, "
        f"horizon {horizon}, {len(q)} quantiles, device {device}")
    return full


def parser():
    p = argparse.ArgumentParser(
        prog="export.py",
        description="Export a time-series foundation model to a tsfm/v1 TorchScript file for the OpenAnomaly sidecar "
                    "(libtorch/MODELS.md).")
    p.add_argument("--model", help="model id, e.g. amazon/chronos-bolt-small (--list shows them all)")
    p.add_argument("--context", type=int, help="context length L of the file (default: the model's)")
    p.add_argument("--horizon", type=int, help="native horizon H of the file (default: the model's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N: where the file runs (default cpu)")
    p.add_argument("--out", help="the .pt file to write")
    p.add_argument("--random-init", action="store_true",
                   help="the official architecture with random weights (no download; for tests and sizing)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--checkpoint", help="a local folder with the checkpoint (config.json and weights) instead of the hub")
    p.add_argument("--covariates", action="store_true",
                   help="experimental: the graph takes group ids and future covariates too (Chronos-2; "
                        "the sidecar does not load such files yet)")
    p.add_argument("--list", action="store_true", help="list the known models and exit")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads while exporting (default: torch's)")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        if args.threads > 0:
            torch.set_num_threads(args.threads)
        if args.list:
            for model_id, (_, spec) in known_models().items():
                g = lambda k: spec.get(k, "?")  # noqa: E731
                print(f"{model_id:40s} family {g('family'):14s} patch {g('patch_size'):>3}  "
                      f"context <= {g('max_context')} (default {g('default_context')})  "
                      f"horizon <= {g('max_horizon')} (default {g('default_horizon')})")
            return 0
        if not args.model:
            raise ExportError(f"--model is required; known models: {', '.join(known_models())}")
        if not args.out:
            raise ExportError("--out is required (the .pt file to write)")
        if args.random_init and args.checkpoint:
            raise ExportError("--random-init and --checkpoint exclude each other")
        export(args.model, args.context, args.horizon, args.device, args.out,
               random_init=args.random_init, seed=args.seed, checkpoint=args.checkpoint, covariates=args.covariates,
               log=lambda m: print(m, file=sys.stderr))
    except ExportError as e:
        print(f"export: {e}", file=sys.stderr)
        return 2
    return 0
