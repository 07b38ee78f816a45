"""The export tool's package: turns time-series foundation models into
tsfm/v1 TorchScript files (DESIGN.md §5, libtorch/README.md) for the Go
sidecar. The CLI is libtorch/export.py; common.py does everything that is
the same for every model; one module per model family does the rest.

Plugin contract for a family module (tsfm_export/<family>.py)
===============================================================

A family module is listed in FAMILY_MODULES below and provides:

``MODELS: dict[str, dict]``
    Model id (the Hugging Face id users pass to --model, e.g.
    "amazon/chronos-bolt-small") -> that checkpoint's published
    configuration, transcribed (so --random-init needs no download), plus
    these keys, which common.py reads before building anything:

    ``family``           str, the metadata "family" the Go adapter registers
                         under (torch.RegisterFamily), e.g. "chronos-bolt"
    ``patch_size``       int, --context must be a multiple of it
    ``max_context``      int, the largest --context the checkpoint takes
    ``default_context``  int, --context when it is not given
    ``max_horizon``      int, the largest --horizon of one file (one forward)
    ``default_horizon``  int, --horizon when it is not given
    ``tiny``             bool, optional: the smallest real configuration,
                         the one the parity tests use

    Everything else in the dict is the family's own (the configuration).

``build(model_id, context, horizon, random_init, seed, device, checkpoint=None) -> (module, meta)``
    Builds the official model class (from the pinned package, imported
    inside build so that listing models needs only torch) and wraps it:

    * random_init: the official architecture from MODELS[model_id] with
      weights drawn after torch.manual_seed(seed); otherwise the official
      ``from_pretrained`` from ``checkpoint`` (a local folder) when given,
      else from the hub by model id.
    * module: a torch.nn.Module in eval mode on ``device``, float32, whose
      forward(context) maps float32 context [B, context] (oldest first, NaN
      = missing point or left padding) to float32 quantiles [B, Q, horizon]
      in the data's units: NaN handling and scaling happen inside. Use eager
      attention and no caches; it must trace with torch.jit.trace for a
      fixed context and any batch size.
    * meta: dict with at least ``family``, ``name`` (short name, e.g.
      "chronos-bolt-small") and ``quantiles`` (the Q levels, ascending), and
      anything family-specific the Go adapter needs (e.g. ``patch_size``,
      ``native_horizon`` of the checkpoint, ``model_context_length``).

    Arguments arrive already checked by common.py (context a multiple of
    patch_size within max_context, 1 <= horizon <= max_horizon, device
    present); build may still raise ValueError for family-specific limits,
    and the CLI prints the message.

Optional, for graphs with more inputs than the context (the sidecar loads
["context"] and ["context", "group_ids", "future_covariates"]): a MODELS entry with ``"covariates":
True`` gets ``covariates=True`` passed to build when the CLI has
--covariates; build then returns meta["inputs"] (the positional input
names, "context" first), and the module provides ``example_inputs(rows,
horizon, inputs) -> tuple`` giving the graph's inputs for context rows
[B, L], which common.py uses to trace and check.

common.py then: traces the module on real-looking inputs (trend, seasonality,
noise, a level far from 0, NaN gaps, NaN left padding, an all-NaN-but-one
row), checks the traced file, loaded back from disk, against the eager module
on other such inputs and another batch size (TOLERANCE below), writes the
tsfm/v1 metadata (contract, context_length, horizon, quantiles, inputs,
outputs, nan_policy, torch_version, device, plus meta) as the archive's extra
file tsfm.json, and saves.
"""

# Family modules, in the order the CLI lists their models.
FAMILY_MODULES = ("chronos", "timesfm")
