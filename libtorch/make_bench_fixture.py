#!/usr/bin/env python3
"""Writes the benchmark's tsfm/v1 TorchScript file (issue 4, BENCHMARKS.md
"TorchScript throughput"): a patch transformer encoder of realistic size
with random weights from a fixed seed.

    python make_bench_fixture.py OUT.pt [--device cpu]

Run it with the torch the Go binary links (make bench-torch does). The
model, in the spirit of Chronos-Bolt / PatchTST:

  context 512 -> NaN mask, standardised by the observed points' mean and
  standard deviation (NaN = missing, as in make_fixtures.py's good.pt) ->
  32 patches of 16 steps, each [values, mask] (32 numbers) -> linear to
  d_model 384 + learned position embedding -> 6 pre-norm encoder layers
  (nn.TransformerEncoderLayer: 6 heads, feed-forward 1536, GELU) -> final
  LayerNorm -> the last patch's token -> linear to 9 quantiles x 64 steps
  -> back to the data's units. About 11 M parameters (printed).

It prints the parameter count, the forward's multiply-adds per series and
the file's size. The file is scripted (torch.jit.script) and saved with
tsfm.json as make_fixtures.py does. --device only sets the metadata's
device field; the file itself loads on any device.
"""

import argparse
import json
import os
import warnings

warnings.filterwarnings("ignore")  # TorchScript deprecation, NumPy missing

import torch  # noqa: E402

L, H = 512, 64
PATCH = 16
D_MODEL, LAYERS, HEADS, FFN = 384, 6, 6, 1536
QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
SEED = 20261204


class PatchTransformer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens = L // PATCH
        self.patch = PATCH
        self.horizon = H
        self.embed = torch.nn.Linear(2 * PATCH, D_MODEL)
        self.pos = torch.nn.Parameter(torch.randn(1, self.tokens, D_MODEL) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(
            D_MODEL, HEADS, dim_feedforward=FFN, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(D_MODEL)
        self.head = torch.nn.Linear(D_MODEL, len(QUANTILES) * H)
        self.q = len(QUANTILES)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        b = context.size(0)
        mask = ~torch.isnan(context)
        m = mask.to(context.dtype)
        n = m.sum(dim=1, keepdim=True).clamp(min=1.0)
        zero = torch.zeros_like(context)
        loc = torch.where(mask, context, zero).sum(dim=1, keepdim=True) / n
        d = torch.where(mask, context - loc, zero)
        scale = torch.sqrt((d * d).sum(dim=1, keepdim=True) / n)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        x = torch.cat([(d / scale).view(b, self.tokens, self.patch), m.view(b, self.tokens, self.patch)], dim=2)
        z = self.encoder(self.embed(x) + self.pos)
        last = self.norm(z[:, -1, :])
        q = self.head(last).view(b, self.q, self.horizon)
        return q * scale.unsqueeze(2) + loc.unsqueeze(2)


def metadata(device):
    return json.dumps({
        "contract": "tsfm/v1",
        "family": "fixture",
        "name": "bench-patch-transformer",
        "context_length": L,
        "horizon": H,
        "quantiles": QUANTILES,
        "inputs": ["context"],
        "outputs": ["quantiles"],
        "nan_policy": "missing",
        "torch_version": torch.__version__.split("+")[0],
        "device": device,
    })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    model = PatchTransformer().eval()
    params = sum(p.numel() for p in model.parameters())
    # Multiply-adds of one series: the linear layers per token, attention's
    # two [T, T] products per layer, and the head.
    t = L // PATCH
    per_layer = t * (4 * D_MODEL * D_MODEL + 2 * D_MODEL * FFN) + 2 * t * t * D_MODEL
    macs = t * 2 * PATCH * D_MODEL + LAYERS * per_layer + D_MODEL * len(QUANTILES) * H
    scripted = torch.jit.script(model)
    with torch.inference_mode():
        x = torch.randn(2, L)
        x[1, : L // 2] = float("nan")
        y = scripted(x)
        assert tuple(y.shape) == (2, len(QUANTILES), H), y.shape
        assert bool(torch.isfinite(y).all())
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.jit.save(scripted, args.out, _extra_files={"tsfm.json": metadata(args.device)})
    print(f"{args.out}: patch transformer, context {L} ({t} patches of {PATCH}), horizon {H}, "
          f"{len(QUANTILES)} quantiles, d_model {D_MODEL}, {LAYERS} layers, {HEADS} heads, ffn {FFN}: "
          f"{params:,} parameters, {macs / 1e6:.0f} M multiply-adds per series, "
          f"{os.path.getsize(args.out) / 2**20:.1f} MiB, torch {torch.__version__}")


if __name__ == "__main__":
    main()
