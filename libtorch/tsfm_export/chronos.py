"""Chronos-Bolt and Chronos-2 (chronos-forecasting, amazon-science), wrapped
around the official model classes of the pinned package: the official
forward, with eager attention and no caches, NaN handling and scaling
inside (InstanceNorm is part of both forwards).

Chronos-Bolt: ChronosBoltModelForForecasting(context).quantile_preds, 9
quantiles, one forward gives the checkpoint's 64 steps; a file may cut them
to a shorter horizon. Longer horizons: the Go adapter (family
"chronos-bolt") does what ChronosBoltPipeline.predict does.

Chronos-2: Chronos2Model(context, group_ids=arange(B),
num_output_patches=ceil(H/16)).quantile_preds, 21 quantiles; each row is its
own group (independent series, the pipeline's default without
cross_learning), no covariates. The file's ceil(H/16) output patches are its
max_output_patches: longer horizons are the pipeline's long-horizon unroll
(family "chronos-2" in Go).
"""

import copy
import math

import torch

_BOLT_Q = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
_C2_Q = [0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
         0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99]


def _bolt(d_model, d_ff, num_layers, num_heads, d_kv, params, tiny=False):
    """A Chronos-Bolt config.json: T5 (efficient) dimensions, the rest shared
    by all four published checkpoints."""
    return {
        "family": "chronos-bolt",
        "patch_size": 16,
        "max_context": 2048,
        "default_context": 2048,
        "max_horizon": 64,
        "default_horizon": 64,
        "tiny": tiny,
        "parameters": params,
        "config": {
            "architectures": ["ChronosBoltModelForForecasting"],
            "model_type": "t5",
            "d_model": d_model,
            "d_ff": d_ff,
            "d_kv": d_kv,
            "num_layers": num_layers,
            "num_decoder_layers": num_layers,
            "num_heads": num_heads,
            "dropout_rate": 0.1,
            "layer_norm_epsilon": 1e-6,
            "initializer_factor": 0.05,
            "feed_forward_proj": "relu",
            "dense_act_fn": "relu",
            "is_gated_act": False,
            "relative_attention_num_buckets": 32,
            "relative_attention_max_distance": 128,
            "decoder_start_token_id": 0,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "vocab_size": 2,
            "tie_word_embeddings": True,
            "chronos_pipeline_class": "ChronosBoltPipeline",
            "chronos_config": {
                "context_length": 2048,
                "prediction_length": 64,
                "input_patch_size": 16,
                "input_patch_stride": 16,
                "quantiles": list(_BOLT_Q),
                "use_reg_token": True,
            },
        },
    }


def _chronos2(d_model, d_ff, num_layers, num_heads, d_kv, params, tiny=False):
    """A Chronos-2 config.json (Chronos2CoreConfig + chronos_config)."""
    return {
        "family": "chronos-2",
        "patch_size": 16,
        "max_context": 8192,
        "default_context": 2048,
        "max_horizon": 1024,
        "default_horizon": 64,
        "tiny": tiny,
        "covariates": True,
        "parameters": params,
        "config": {
            "architectures": ["Chronos2Model"],
            "model_type": "t5",
            "d_model": d_model,
            "d_ff": d_ff,
            "d_kv": d_kv,
            "num_layers": num_layers,
            "num_heads": num_heads,
            "dropout_rate": 0.1,
            "layer_norm_epsilon": 1e-6,
            "initializer_factor": 0.05,
            "feed_forward_proj": "relu",
            "rope_theta": 10000.0,
            "vocab_size": 2,
            "pad_token_id": 0,
            "reg_token_id": 1,
            "chronos_pipeline_class": "Chronos2Pipeline",
            "chronos_config": {
                "context_length": 8192,
                "input_patch_size": 16,
                "input_patch_stride": 16,
                "output_patch_size": 16,
                "max_output_patches": 64,
                "quantiles": list(_C2_Q),
                "time_encoding_scale": 8192,
                "use_arcsinh": True,
                "use_reg_token": True,
            },
        },
    }


# The published checkpoints' configurations (config.json on the hub),
# transcribed; "parameters" is the size their model cards give.
MODELS = {
    "amazon/chronos-bolt-tiny": _bolt(256, 1024, 4, 4, 64, "9M", tiny=True),
    "amazon/chronos-bolt-mini": _bolt(384, 1536, 4, 8, 64, "21M"),
    "amazon/chronos-bolt-small": _bolt(512, 2048, 6, 8, 64, "48M"),
    "amazon/chronos-bolt-base": _bolt(768, 3072, 12, 12, 64, "205M"),
    "autogluon/chronos-2-small": _chronos2(512, 2048, 6, 8, 64, "28M", tiny=True),
    "amazon/chronos-2": _chronos2(768, 3072, 12, 12, 64, "120M"),
}


class BoltQuantiles(torch.nn.Module):
    """context [B, L] -> ChronosBoltModelForForecasting's quantile_preds
    [B, 9, H] (the first H of its 64 steps)."""

    def __init__(self, model, horizon):
        super().__init__()
        self.model = model
        self.horizon = horizon

    def forward(self, context):
        return self.model(context=context).quantile_preds[:, :, : self.horizon]


class Chronos2Quantiles(torch.nn.Module):
    """context [B, L] -> Chronos2Model's quantile_preds [B, 21, H], each row
    its own group, num_output_patches = ceil(H / 16)."""

    def __init__(self, model, horizon):
        super().__init__()
        self.model = model
        self.horizon = horizon
        self.patches = math.ceil(horizon / model.chronos_config.output_patch_size)

    def forward(self, context):
        group_ids = torch.arange(context.shape[0], dtype=torch.long, device=context.device)
        out = self.model(context=context, group_ids=group_ids, num_output_patches=self.patches)
        return out.quantile_preds[:, :, : self.horizon]


class Chronos2Covariates(torch.nn.Module):
    """Experimental (--covariates): context [B, L], group_ids int64 [B],
    future_covariates float32 [B, H] -> quantile_preds [B, 21, H]. Rows
    with equal group ids form one task: its target(s) and covariates, as
    Chronos2Pipeline's batches do; a row's future_covariates are the known
    future values of a known-future covariate and NaN for targets and
    past-only covariates (the model's own convention). Outputs come for
    every row; the caller reads the targets'."""

    def __init__(self, model, horizon):
        super().__init__()
        self.model = model
        self.horizon = horizon
        self.patches = math.ceil(horizon / model.chronos_config.output_patch_size)

    def forward(self, context, group_ids, future_covariates):
        out = self.model(context=context, group_ids=group_ids, future_covariates=future_covariates,
                         num_output_patches=self.patches)
        return out.quantile_preds[:, :, : self.horizon]


def example_inputs(rows, horizon, inputs):
    """The graph's inputs for tracing and checking a --covariates file:
    rows in pairs (target, known-future covariate) of one group each; an
    odd last row is a target alone."""
    assert inputs == ["context", "group_ids", "future_covariates"], inputs
    b = rows.shape[0]
    group_ids = torch.arange(b, device=rows.device) // 2
    t = torch.arange(horizon, dtype=torch.float32, device=rows.device)
    future = torch.full((b, horizon), float("nan"), device=rows.device)
    for r in range(1, b, 2):
        future[r] = 3.0 * torch.sin(t / 5 + r) + r
    return rows, group_ids, future


def official_model(model_id, context, random_init, seed, device, checkpoint=None):
    """The official model object (ChronosBoltModelForForecasting or
    Chronos2Model), float32, eval, eager attention, no cache, on device,
    with chronos_config.context_length = context: the window the model
    and its pipeline keep (a file takes exactly context points, so the
    truncation inside the forward is a no-op; the pipeline's feedback for
    long horizons keeps the newest context points, as the Go adapters do).
    Parity tests wrap the same object in the official pipeline."""
    spec = MODELS[model_id]
    if spec["family"] == "chronos-bolt":
        from chronos.chronos_bolt import ChronosBoltModelForForecasting as cls
        from transformers import T5Config as config_cls
    else:
        from chronos.chronos2 import Chronos2Model as cls
        from chronos.chronos2.config import Chronos2CoreConfig as config_cls

    if random_init:
        raw = copy.deepcopy(spec["config"])
        raw.pop("architectures")
        raw.pop("model_type")
        raw["attn_implementation"] = "eager"
        raw["use_cache"] = False
        config = config_cls(**raw)
        config.architectures = list(spec["config"]["architectures"])
        torch.manual_seed(seed)
        model = cls(config)
    else:
        kwargs = {"attn_implementation": "eager", "dtype": torch.float32}
        model = cls.from_pretrained(checkpoint or model_id, **kwargs)
    model.config.use_cache = False
    if hasattr(model.config, "_attn_implementation"):
        model.config._attn_implementation = "eager"
    for sub in model.modules():  # T5Stack copies of the config
        cfg = getattr(sub, "config", None)
        if cfg is not None and cfg is not model.config:
            cfg.use_cache = False
            if hasattr(cfg, "_attn_implementation"):
                cfg._attn_implementation = "eager"
    model.chronos_config.context_length = context
    model.config.chronos_config["context_length"] = context
    return model.to(device=device, dtype=torch.float32).eval()


def build(model_id, context, horizon, random_init, seed, device, checkpoint=None, covariates=False):
    spec = MODELS[model_id]
    model = official_model(model_id, context, random_init, seed, device, checkpoint)
    name = model_id.split("/")[-1]
    published = spec["config"]["chronos_config"]
    if spec["family"] == "chronos-bolt":
        native = model.chronos_config.prediction_length
        if horizon > native:
            raise ValueError(f"--horizon {horizon}: {model_id} forecasts {native} steps per forward")
        module = BoltQuantiles(model, horizon)
        meta = {
            "family": "chronos-bolt",
            "name": name,
            "quantiles": list(model.chronos_config.quantiles),
            "patch_size": model.chronos_config.input_patch_size,
            "native_horizon": native,
            "checkpoint_context_length": published["context_length"],
        }
    else:
        ps = model.chronos_config.output_patch_size
        module = (Chronos2Covariates if covariates else Chronos2Quantiles)(model, horizon)
        meta = {
            "family": "chronos-2",
            "name": name,
            "quantiles": list(model.chronos_config.quantiles),
            "patch_size": ps,
            "output_patches": module.patches,
            "native_horizon": model.chronos_config.max_output_patches * ps,
            "checkpoint_context_length": published["context_length"],
            "group_ids": "input" if covariates else "independent",
        }
        if covariates:
            meta["inputs"] = ["context", "group_ids", "future_covariates"]
            meta["input_types"] = {"context": "float32 [B, L]", "group_ids": "int64 [B]",
                                   "future_covariates": "float32 [B, H], NaN = not known (targets, past-only covariates)"}
    return module.eval(), meta
