"""TimesFM 2.5 and 3.0 for the export tool (libtorch/TIMESFM.md).

TimesFM 2.5: the official torch module of the pinned
`timesfm` package (3.0.2, `timesfm.timesfm_2p5.timesfm_2p5_torch`) wrapped so
that one forward does, inside the graph, what the official forecast
(`TimesFM_2p5.forecast` -> `compiled_decode` -> `decode`) does before and
after the network for one decoding chain:

  1. missing values: leading NaNs (and the contract's NaN left padding) become
     masked zero padding, interior NaNs are interpolated linearly, trailing
     NaNs repeat the last observed value (the official `strip_leading_nans`,
     `linear_interpolation` and zero padding to max_context = L);
  2. the global normalisation of `normalize_inputs=True` (mean and standard
     deviation over the padded row of L values, as the official code takes
     them);
  3. the per-patch running normalisation of `decode` (`update_running_stats`
     and `revin`, the official functions), the forward (full causal
     attention over the patches, no KV cache: equivalent to the prefill and
     to every cached decoding step), and de-normalisation;
  4. the decoding passes of 128 up to the file's horizon H, each feeding the
     previous pass's median (`decode_index` 5) back as four new patches;
  5. `use_continuous_quantile_head=True`: quantile k at step s is
     spread_k[s] - spread_median[s] + median[s], the spread from the 1024-long
     quantile head of the first pass;
  6. the global de-normalisation.

Output: float32 [B, 9, H], the quantiles 0.1 ... 0.9 of this one chain (the
model's mean, output index 0, is dropped). What the official forecast does
across chains stays outside: `force_flip_invariance` (a second chain on the
negated context, averaged with flipped quantiles), `fix_quantile_crossing`
and `infer_is_positive` are in the Go adapter (pkg/forecast/tsfm/timesfm.go),
which also runs further passes beyond H. Each is linear or commutes with the
steps above, so the combination equals the official order (flip average,
continuous head, crossing fix, de-normalisation, positivity clamp).

TimesFM 3.0 (`timesfm3.torch`, weights non-commercial only): the official
TimesFM3Torch.decode, one non-autoregressive forward, wrapped with what
TimesFM3Forecaster.predict_batch does with its defaults (class TimesFM3).
"""

import dataclasses
import math

import torch

# The published checkpoints' configurations, transcribed from
# timesfm 3.0.2 `TimesFM_2p5_200M_Definition` (timesfm_2p5_base.py), and a
# small one with the same architecture for tests (random weights only).
QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]

MODELS = {
    "google/timesfm-2.5-200m-pytorch": {
        "family": "timesfm-2.5",
        "name": "timesfm-2.5-200m",
        "license": "Apache-2.0",
        "patch_size": 32,          # input_patch_len: context must be a multiple
        "output_patch_len": 128,   # one decoding pass
        "output_quantile_len": 1024,
        "context_limit": 16384,    # context + horizon (rounded up to 128)
        "max_context": 16384 - 128,
        "default_context": 1024,   # the official example's max_context
        "max_horizon": 1024,       # the continuous quantile head's length
        "default_horizon": 128,    # one pass; the Go adapter runs further ones
        "num_layers": 20,
        "model_dims": 1280,
        "hidden_dims": 1280,       # feed-forward
        "num_heads": 16,
        "tokenizer_hidden_dims": 1280,
        "quantiles": QUANTILES,
    },
    # TimesFM 3.0: the package's own defaults (timesfm3/torch
    # timesfm3_forecaster.py: _ModelConfig and _make_torch_model); the hub's
    # config.json, which from_pretrained reads, may differ (unverified: no
    # download here). Weights: non-commercial use only.
    "google/timesfm-3.0-pytorch": {
        "family": "timesfm-3.0",
        "name": "timesfm-3.0",
        "license": "timesfm-non-commercial-license-v1.0 (non-commercial, non-production use only)",
        "patch_size": 32,
        "output_patch_len": 64,
        "max_context": 15360,      # the forecaster's _MAX_CONTEXT_LENGTH
        "default_context": 1024,
        "max_horizon": 1024,       # the decode takes any; bounded here like 2.5's head
        "default_horizon": 128,
        "num_layers": 20,
        "model_dims": 1280,
        "hidden_dims": 1280,
        "num_heads": 16,
        "resblock_hidden_dims": 1280,
        "quantiles": QUANTILES,
    },
    "test/timesfm-3.0-tiny": {
        "family": "timesfm-3.0",
        "name": "timesfm-3.0-tiny",
        "license": "-",
        "random_init_only": True,
        "tiny": True,
        "patch_size": 32,
        "output_patch_len": 64,
        "max_context": 15360,
        "default_context": 512,
        "max_horizon": 1024,
        "default_horizon": 128,
        "num_layers": 2,
        "model_dims": 64,
        "hidden_dims": 64,
        "num_heads": 4,
        "resblock_hidden_dims": 64,
        "quantiles": QUANTILES,
    },
    # Tests: the same architecture (every layer kind, patch sizes, heads of
    # 128 x 10 and 1024 x 10), two layers of 64 dimensions. No checkpoint.
    "test/timesfm-2.5-tiny": {
        "family": "timesfm-2.5",
        "name": "timesfm-2.5-tiny",
        "license": "Apache-2.0",
        "random_init_only": True,
        "tiny": True,
        "patch_size": 32,
        "output_patch_len": 128,
        "output_quantile_len": 1024,
        "context_limit": 16384,
        "max_context": 16384 - 128,
        "default_context": 512,
        "max_horizon": 1024,
        "default_horizon": 128,
        "num_layers": 2,
        "model_dims": 64,
        "hidden_dims": 64,
        "num_heads": 4,
        "tokenizer_hidden_dims": 64,
        "quantiles": QUANTILES,
    },
}

# The forecast settings the graph and the Go adapter implement together; the
# parity test compiles the official model with exactly these.
FORECAST_SETTINGS = {
    "normalize_inputs": True,
    "use_continuous_quantile_head": True,
    "force_flip_invariance": True,   # Go adapter
    "infer_is_positive": True,       # Go adapter
    "fix_quantile_crossing": True,   # Go adapter
    "return_backcast": False,
}


def definition(cfg: dict):
    """The official TimesFM_2p5_200M_Definition with cfg's dimensions."""
    from timesfm import configs
    from timesfm.timesfm_2p5 import timesfm_2p5_base as base

    d = base.TimesFM_2p5_200M_Definition()
    md, q = cfg["model_dims"], len(cfg["quantiles"]) + 1
    return dataclasses.replace(
        d,
        input_patch_len=cfg["patch_size"],
        output_patch_len=cfg["output_patch_len"],
        output_quantile_len=cfg["output_quantile_len"],
        quantiles=list(cfg["quantiles"]),
        tokenizer=dataclasses.replace(
            d.tokenizer, input_dims=2 * cfg["patch_size"],
            hidden_dims=cfg["tokenizer_hidden_dims"], output_dims=md),
        stacked_transformers=configs.StackedTransformersConfig(
            num_layers=cfg["num_layers"],
            transformer=dataclasses.replace(
                d.stacked_transformers.transformer, model_dims=md,
                hidden_dims=cfg["hidden_dims"], num_heads=cfg["num_heads"])),
        output_projection_point=dataclasses.replace(
            d.output_projection_point, input_dims=md, hidden_dims=md,
            output_dims=cfg["output_patch_len"] * q),
        output_projection_quantiles=dataclasses.replace(
            d.output_projection_quantiles, input_dims=md, hidden_dims=md,
            output_dims=cfg["output_quantile_len"] * q),
    )


def official_module(cfg: dict):
    """The official TimesFM_2p5_200M_torch_module, built with cfg's
    dimensions (the published configuration gives the class itself)."""
    from timesfm.timesfm_2p5 import timesfm_2p5_torch as t

    defn = definition(cfg)
    if defn == t.TimesFM_2p5_200M_torch_module.config:
        return t.TimesFM_2p5_200M_torch_module()

    class Module(t.TimesFM_2p5_200M_torch_module):
        config = defn

    return Module()


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Deterministic random weights. The official init leaves every RMSNorm
    scale at 0 (the network would output zeros), so every parameter is
    drawn: linear weights N(0, 1/fan_in), biases N(0, 0.02^2), norm scales
    1 + N(0, 0.1^2), per-dimension attention scales N(0, 0.1^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            n = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("per_dim_scale.per_dim_scale"):
                p.copy_(0.1 * n)
            elif name.endswith(".scale"):
                p.copy_(1 + 0.1 * n)
            elif name.endswith(".bias"):
                p.copy_(0.02 * n)
            else:
                p.copy_(n / math.sqrt(p.shape[-1]))


def pretrained_module(model_id: str, checkpoint=None) -> torch.nn.Module:
    """The published weights through the official from_pretrained: from
    the local folder checkpoint (model.safetensors) when given, else from
    the Hugging Face hub. Returns the torch module it loaded them into."""
    import timesfm

    model = timesfm.TimesFM_2p5_200M_torch.from_pretrained(checkpoint or model_id, torch_compile=False)
    return model.model


class TimesFM25(torch.nn.Module):
    """context float32 [B, L] (NaN = missing / left padding) -> quantiles
    float32 [B, 9, H] of one decoding chain in the data's units (see the
    module docstring)."""

    def __init__(self, core: torch.nn.Module, context: int, horizon: int):
        super().__init__()
        self.core = core
        self.p, self.o, self.os = core.p, core.o, core.os
        self.aridx = core.aridx
        self.context, self.horizon = context, horizon
        self.passes = (horizon - 1) // self.o + 1

    def prepare(self, c: torch.Tensor):
        """Leading NaNs -> masked zeros, interior NaNs -> linear
        interpolation, trailing NaNs -> the last observed value."""
        b, n = c.shape
        valid = ~torch.isnan(c)
        idx = torch.arange(n, device=c.device).unsqueeze(0).expand(b, n)
        minus = torch.full_like(idx, -1)
        prev = torch.cummax(torch.where(valid, idx, minus), dim=1).values
        rev = torch.where(valid, (n - 1) - idx, minus).flip(1)
        nxt = (n - 1) - torch.cummax(rev, dim=1).values.flip(1)  # n: none
        lead = prev < 0
        tail = nxt >= n
        v = torch.where(valid, c, torch.zeros_like(c))
        vp = torch.gather(v, 1, prev.clamp(min=0))
        vn = torch.gather(v, 1, nxt.clamp(max=n - 1))
        span = (nxt - prev).clamp(min=1).to(c.dtype)
        frac = (idx - prev).to(c.dtype) / span
        interp = vp + (vn - vp) * frac
        filled = torch.where(valid, c, torch.where(tail, vp, interp))
        filled = torch.where(lead, torch.zeros_like(c), filled)
        return filled, lead

    def one_pass(self, x: torch.Tensor, mask: torch.Tensor):
        """The official decode's prefill for the row: running per-patch
        normalisation, forward, de-normalisation. Returns the last patch's
        point output [B, 128, 10] and quantile spread [B, 1024, 10]."""
        from timesfm.torch import util

        b = x.shape[0]
        px = x.reshape(b, -1, self.p)
        pm = mask.reshape(b, -1, self.p)
        n = torch.zeros(b, device=x.device)
        mu = torch.zeros(b, device=x.device)
        sigma = torch.zeros(b, device=x.device)
        mus, sigmas = [], []
        for i in range(px.shape[1]):
            (n, mu, sigma), _ = util.update_running_stats(n, mu, sigma, px[:, i], pm[:, i])
            mus.append(mu)
            sigmas.append(sigma)
        cmu = torch.stack(mus, dim=1)
        csigma = torch.stack(sigmas, dim=1)
        normed = util.revin(px, cmu, csigma, reverse=False)
        normed = torch.where(pm, 0.0, normed)
        # The official forward (TimesFM_2p5_200M_torch_module.forward with
        # decode_caches=None), its two output heads applied to the last
        # patch only: the decode reads nothing else, and the heads on every
        # patch are an eighth of the compute at context 1024.
        core = self.core
        emb = core.tokenizer(torch.cat([normed, pm.to(normed.dtype)], dim=-1))
        for layer in core.stacked_xf:
            emb, _ = layer(emb, pm[..., -1], None)
        last = emb[:, -1]
        out = core.output_projection_point(last)
        spread = core.output_projection_quantiles(last)
        last_mu, last_sigma = cmu[:, -1], csigma[:, -1]
        point = util.revin(out, last_mu, last_sigma, reverse=True)
        spread = util.revin(spread, last_mu, last_sigma, reverse=True)
        return point.reshape(b, self.o, -1), spread.reshape(b, self.os, -1)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        from timesfm.torch import util

        x, mask = self.prepare(context)
        # normalize_inputs: torch.mean / torch.std over the padded row
        gmu = torch.mean(x, dim=-1, keepdim=True)
        gsigma = torch.std(x, dim=-1, keepdim=True)
        x = util.revin(x, gmu, gsigma, reverse=False)
        points = []
        spread = None
        for k in range(self.passes):
            point, s = self.one_pass(x, mask)
            if spread is None:
                spread = s
            points.append(point)
            if k + 1 < self.passes:
                x = torch.cat([x, point[:, :, self.aridx]], dim=1)
                mask = torch.cat([mask, torch.zeros_like(point[:, :, 0], dtype=torch.bool)], dim=1)
        full = torch.cat(points, dim=1)[:, : self.horizon]  # [B, H, 10]
        med = full[:, :, self.aridx: self.aridx + 1]
        s = spread[:, : self.horizon]
        q = s[:, :, 1:] - s[:, :, self.aridx: self.aridx + 1] + med  # continuous head
        q = util.revin(q, gmu, gsigma, reverse=True)
        return q.transpose(1, 2).contiguous()


def timesfm3_config(cfg: dict, checkpoint_path: str = ""):
    """The official forecaster's _ModelConfig with cfg's dimensions."""
    from timesfm3.torch import configs as c3, timesfm3_forecaster as f3

    tc = c3.StackedTransformersConfig(
        num_layers=cfg["num_layers"],
        transformer=c3.TransformerConfig(
            model_dims=cfg["model_dims"], hidden_dims=cfg["hidden_dims"], num_heads=cfg["num_heads"],
            attention_norm="rms", feedforward_norm="rms", qk_norm="rms", use_rope_seq=True,
            use_rope_var=True, use_bias=False, ff_activation="relu", deterministic=True))
    rb = c3.ResidualBlockConfig(hidden_dims=cfg["resblock_hidden_dims"], output_dims=cfg["model_dims"],
                                use_bias=False, activation="relu")
    return f3._ModelConfig(checkpoint_path=checkpoint_path, input_patch_length=cfg["patch_size"],
                           output_patch_length=cfg["output_patch_len"], quantiles=list(cfg["quantiles"]),
                           residual_block_config=rb, transformer_config=tc, device="cpu")


def timesfm3_module(cfg: dict):
    """The official TimesFM3Torch as the forecaster builds it."""
    from timesfm3.torch import timesfm3_forecaster as f3

    return f3._make_torch_model(timesfm3_config(cfg))


def randomize3(module: torch.nn.Module, seed: int) -> None:
    """Deterministic random weights for TimesFM 3.0: matrices N(0, 1/fan_in),
    norm scales 1 + N(0, 0.1^2), other vectors N(0, 0.02^2)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            n = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.dim() > 1:
                p.copy_(n / math.sqrt(p.shape[-1]))
            elif name.endswith("scale"):
                p.copy_(1 + 0.1 * n)
            else:
                p.copy_(0.02 * n)


class TimesFM3(torch.nn.Module):
    """context float32 [B, L] -> quantiles float32 [B, 9, H]: what the
    official TimesFM3Forecaster.predict_batch does with its defaults
    (sort_quantiles, no symmetric averaging, no z-normalisation, no
    positivity clamp, no covariates): leading NaNs stripped and left-padded
    with masked zeros, NaNs interpolated linearly (trailing ones repeat the
    last value), decode for the horizon rounded up to the output patch,
    cut, quantiles sorted."""

    def __init__(self, model: torch.nn.Module, context: int, horizon: int):
        super().__init__()
        self.model = model
        self.horizon = horizon
        o = model.output_patch_len
        self.global_horizon = (horizon + o - 1) // o * o

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        x, lead = TimesFM25.prepare(self, context)
        out = self.model.decode(x.unsqueeze(1), self.global_horizon, mask=lead)  # [B, 1, H', 9]
        out = torch.sort(out[:, 0, : self.horizon, :], dim=-1).values
        return out.transpose(1, 2).contiguous()


def check(model_id: str, context: int, horizon: int) -> None:
    """Argument checks the family adds to the frame's (unknown model,
    context not a multiple of the patch, limits)."""
    if model_id not in MODELS:
        raise ValueError(f"unknown TimesFM model {model_id!r}; known: {sorted(MODELS)}")
    cfg = MODELS[model_id]
    p = cfg["patch_size"]
    if context < p or context % p:
        raise ValueError(f"{model_id}: context {context} must be a positive multiple of the input patch size {p}")
    if not 1 <= horizon <= cfg["max_horizon"]:
        raise ValueError(f"{model_id}: horizon {horizon} must be in 1..{cfg['max_horizon']}")
    if cfg["family"] != "timesfm-2.5":
        return
    o = cfg["output_patch_len"]
    if context + ((horizon - 1) // o + 1) * o > cfg["context_limit"]:
        raise ValueError(f"{model_id}: context {context} + horizon {horizon} (rounded up to a multiple of {o}) exceeds the model's limit {cfg['context_limit']}")


def build(model_id: str, context: int, horizon: int, random_init: bool, seed: int, device: str, checkpoint=None):
    """The plugin contract (tsfm_export/__init__.py): (module float32
    [B, L] -> [B, 9, H], meta)."""
    check(model_id, context, horizon)
    cfg = MODELS[model_id]
    if not random_init and cfg.get("random_init_only"):
        raise ValueError(f"{model_id} is a test configuration without a checkpoint: use --random-init")
    if cfg["family"] == "timesfm-3.0":
        return build3(model_id, cfg, context, horizon, random_init, seed, device, checkpoint)
    if random_init:
        core = official_module(cfg)
        randomize(core, seed)
    else:
        core = pretrained_module(model_id, checkpoint)
    core = core.to(device).eval()
    module = TimesFM25(core, context, horizon).to(device).eval()
    meta = {
        "family": cfg["family"],
        "name": cfg["name"],
        "quantiles": list(cfg["quantiles"]),
        "patch_size": cfg["patch_size"],
        "output_patch_len": cfg["output_patch_len"],
        "output_quantile_len": cfg["output_quantile_len"],
        "decode_passes": module.passes,
        "forecast_settings": dict(FORECAST_SETTINGS),
        "license": cfg["license"],
    }
    return module, meta


def build3(model_id, cfg, context, horizon, random_init, seed, device, checkpoint):
    if random_init:
        model = timesfm3_module(cfg)
        randomize3(model, seed)
    else:
        from timesfm3.torch import timesfm3_forecaster as f3
        model = f3.TimesFM3Forecaster.from_pretrained(checkpoint or model_id, device="cpu").model
    model = model.to(device).eval()
    module = TimesFM3(model, context, horizon).to(device).eval()
    meta = {
        "family": cfg["family"],
        "name": cfg["name"],
        "quantiles": list(cfg["quantiles"]),
        "patch_size": cfg["patch_size"],
        "output_patch_len": cfg["output_patch_len"],
        "forecast_settings": {"sort_quantiles": True, "use_symmetric_averaging": False, "use_znorm": False,
                              "make_positive": False, "padding_mode": "none"},
        "license": cfg["license"],
    }
    return module, meta
