#!/usr/bin/env python3
"""Writes the tsfm/v1 TorchScript fixtures the tagged Go tests use, and the
numbers Python torch gives for them, into a folder:

    python make_fixtures.py OUT_DIR

Run it with the torch the Go binary links (make test-libtorch does):
files and reference numbers then come from the same libtorch as the Go side.

  good.pt           follows the contract: NaN handling and scaling inside, a
                    small linear model over the normalised context, 9 quantiles
  good_mean.pt      the same with a second output, the mean [B, H]
  raises_large.pt   good.pt, but raises when a context value exceeds 1e30
  no_metadata.pt    good.pt saved without tsfm.json
  bad_json.pt       tsfm.json is not JSON
  wrong_contract.pt contract "tsfm/v0"
  wrong_shape.pt    returns [B, H, Q] where the metadata says [B, Q, H]
  raises.pt         a graph that always raises
  cases.json        for batches of 1, 7 and 256: histories (null = NaN) of
                    uneven length, some shorter than L (left padding), some
                    longer (truncation), with NaNs; and good.pt's and
                    good_mean.pt's outputs on them, from Python
"""

import json
import math
import os
import random
import statistics
import sys
import warnings

warnings.filterwarnings("ignore")  # TorchScript deprecation, NumPy missing

import torch  # noqa: E402



L, H = 48, 12
QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
THREADS = 2  # the Go tests load the files with threads: 2 as well


class Linear(torch.nn.Module):
    """Standardises the observed points of each row (NaN = missing), runs a
    linear layer over [values, mask], spreads quantiles around its output
    and maps back to the data's units."""

    def __init__(self, with_mean: bool = False):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.proj = torch.nn.Linear(2 * L, H)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(H, 2 * L, generator=g) * 0.1)
            self.proj.bias.copy_(torch.randn(H, generator=g) * 0.1)
        z = [statistics.NormalDist().inv_cdf(q) for q in QUANTILES]
        self.register_buffer("z", torch.tensor(z, dtype=torch.float32))
        self.spread = torch.nn.Parameter(torch.rand(H, generator=g) + 0.5)
        self.with_mean = with_mean

    def quantiles(self, context: torch.Tensor):
        mask = ~torch.isnan(context)
        m = mask.to(context.dtype)
        n = m.sum(dim=1, keepdim=True).clamp(min=1.0)
        zero = torch.zeros_like(context)
        loc = torch.where(mask, context, zero).sum(dim=1, keepdim=True) / n
        d = torch.where(mask, context - loc, zero)
        scale = torch.sqrt((d * d).sum(dim=1, keepdim=True) / n)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        base = self.proj(torch.cat([d / scale, m], dim=1))  # [B, H]
        q = base.unsqueeze(1) + self.z.view(1, -1, 1) * self.spread.view(1, 1, -1)
        return q * scale.unsqueeze(2) + loc.unsqueeze(2), base * scale + loc

    def forward(self, context: torch.Tensor):
        return self.quantiles(context)[0]


class LinearMean(Linear):
    def __init__(self):
        super().__init__(with_mean=True)

    def forward(self, context: torch.Tensor):
        q, mean = self.quantiles(context)
        return q, mean


class RaisesLarge(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        if bool((torch.abs(context) > 1e30).any()):
            raise ValueError("fixture: context value out of range")
        return self.inner(context)


class WrongShape(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        return self.inner(context).transpose(1, 2)


class Raises(torch.nn.Module):
    def forward(self, context: torch.Tensor) -> torch.Tensor:
        if context.size(0) >= 0:
            raise RuntimeError("fixture: this graph always raises")
        return context


def metadata(**over):
    md = {
        "contract": "tsfm/v1",
        "family": "fixture",
        "name": "fixture-linear",
        "context_length": L,
        "horizon": H,
        "quantiles": QUANTILES,
        "inputs": ["context"],
        "outputs": ["quantiles"],
        "nan_policy": "missing",
        "torch_version": torch.__version__.split("+")[0],
        "device": "cpu",
    }
    md.update(over)
    return json.dumps(md)


def histories(rng, b):
    """b histories of uneven length: short ones (left padding), long ones
    (truncation), NaNs here and there, one mostly missing."""
    out = []
    for i in range(b):
        n = rng.choice([5, L // 2, L - 1, L, L + 17, 3 * L])
        level, amp = rng.uniform(-50, 500), rng.uniform(0.1, 40)
        h = [level + amp * math.sin(t / rng.uniform(2, 9)) + rng.gauss(0, amp / 5) for t in range(n)]
        for t in range(n):
            if rng.random() < 0.1:
                h[t] = None
        if i % 13 == 5:  # mostly missing, but not empty
            h = [None] * (n - 2) + [level, level + amp]
        out.append(h)
    return out


def window(h):
    """The [L] row the contract wants: the newest L points, NaN-left-padded."""
    h = [math.nan if v is None else v for v in h[-L:]]
    return [math.nan] * (L - len(h)) + h


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)

    good = torch.jit.script(Linear().eval())
    good_mean = torch.jit.script(LinearMean().eval())
    save = lambda m, name, **extra: torch.jit.save(m, os.path.join(out, name), _extra_files=extra)
    save(good, "good.pt", **{"tsfm.json": metadata()})
    save(good_mean, "good_mean.pt", **{"tsfm.json": metadata(outputs=["quantiles", "mean"])})
    save(torch.jit.script(RaisesLarge(Linear()).eval()), "raises_large.pt", **{"tsfm.json": metadata()})
    save(good, "no_metadata.pt")
    save(good, "bad_json.pt", **{"tsfm.json": "{contract: tsfm/v1"})
    save(good, "wrong_contract.pt", **{"tsfm.json": metadata(contract="tsfm/v0")})
    save(torch.jit.script(WrongShape(Linear()).eval()), "wrong_shape.pt", **{"tsfm.json": metadata()})
    save(torch.jit.script(Raises()), "raises.pt", **{"tsfm.json": metadata()})

    # Reference numbers from the saved files, loaded back as the Go side
    # loads them.
    good = torch.jit.load(os.path.join(out, "good.pt"))
    good_mean = torch.jit.load(os.path.join(out, "good_mean.pt"))
    rng = random.Random(42)
    cases = []
    with torch.inference_mode():
        for b in (1, 7, 256):
            hs = histories(rng, b)
            x = torch.tensor([window(h) for h in hs], dtype=torch.float32)
            q = good(x)
            q2, mean = good_mean(x)
            cases.append({
                "batch": b,
                "histories": hs,
                "quantiles": q.tolist(),  # [B, Q, H]
                "mean_model_quantiles": q2.tolist(),
                "mean": mean.tolist(),  # [B, H]
            })
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump({"context_length": L, "horizon": H, "quantiles": QUANTILES,
                   "torch_version": torch.__version__, "cases": cases}, f)


if __name__ == "__main__":
    main()
