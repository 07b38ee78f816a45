#!/usr/bin/env python3
"""The Python side of the foundation-model benchmark (issue 5, BENCHMARKS.md
"Foundation model in the sidecar"): the official Chronos-Bolt pipeline
(chronos-forecasting's ChronosBoltPipeline.predict_quantiles) forecasting the
same series, with the same weights, as the sidecar's evaluations do.
internal/cmd/tsfmbench starts it once and drives it over stdin/stdout,
interleaving its runs with the sidecar's; it waits on stdin (no CPU) while
the sidecar runs.

    python bench_chronos_python.py --model-id amazon/chronos-bolt-small --context 512 \
        --seed 1 --file FILE.pt --data DATA.json --threads 2 --batch-size 32

The model is the export tool's: tsfm_export.chronos.official_model with
--random-init and the seed (the same code path that built FILE.pt; the
parameters are compared with FILE.pt's before anything runs), wrapped in
ChronosBoltPipeline(model=...).

DATA.json: {"series": [[...], ...] (null = NaN), "context": L,
"quantiles": [...], "score_horizon": 1, "future_horizon": H}. Evaluation k
forecasts, for every series s, what the sidecar's evaluation k gives the
model: the score context s[k : k+L-1] (the points before the newest, for
horizon score_horizon) and the future context s[k : k+L] (for horizon H),
each a 1-D float32 tensor made from the Python list, in chunks of
batch-size series per predict_quantiles call (the score chunks, then the
future chunks), at the rule's quantile levels, under torch.inference_mode.

Commands, one a line; each answers one JSON line:

    run K N   evaluations K .. K+N-1; answers {"evaluations", "seconds",
              "prep_seconds", "pipeline_pre_seconds", "forward_seconds",
              "post_seconds", "forwards", "rows"}
    check K   evaluation K at the pipeline's 9 native levels, sorted across
              levels at each step (as the sidecar sorts them), then the
              rule's levels picked: {"score": [N][Q][h], "future": [N][Q][H]}
    quit

Timers (time.perf_counter): "prep" is making the tensors from the lists;
"pipeline_pre" is inside predict_quantiles up to the model's forward
(left_pad_and_stack_1D, truncation, the move to the device), "forward" the
model call (ChronosBoltModelForForecasting.forward, between a forward
pre-hook and a forward hook), "post" the rest of predict_quantiles after it
(the output cast, swapaxes, picking or interpolating the levels).
"""

import argparse
import json
import math
import os
import sys
import time
import warnings

warnings.filterwarnings("ignore")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-id", default="amazon/chronos-bolt-small")
    ap.add_argument("--context", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--file", help="the exported file, to check the weights against")
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    import logging

    import transformers
    from chronos import ChronosBoltPipeline

    from tsfm_export import chronos as family

    transformers.logging.set_verbosity_error()
    logging.getLogger("chronos").setLevel(logging.ERROR)

    model = family.official_model(args.model_id, args.context, True, args.seed, "cpu")
    if args.file:
        traced = dict(torch.jit.load(args.file).named_parameters())
        for k, v in model.named_parameters():
            if not torch.equal(traced["model." + k], v):
                raise SystemExit(f"parameter {k} differs between {args.file} and the rebuilt model")
        del traced
    pipe = ChronosBoltPipeline(model=model)
    native = list(pipe.quantiles)

    with open(args.data) as f:
        d = json.load(f)
    nan = math.nan
    series = [[nan if v is None else float(v) for v in s] for s in d["series"]]
    L, qs = d["context"], d["quantiles"]
    h_score, h_future = d["score_horizon"], d["future_horizon"]
    B = args.batch_size

    # Timers around the model's forward inside the pipeline.
    t = {"pre": 0.0, "fwd": 0.0, "post": 0.0, "n": 0, "mark": 0.0}

    def pre_hook(_m, _a, _kw=None):
        now = time.perf_counter()
        t["pre"] += now - t["mark"]
        t["mark"] = now

    def post_hook(_m, _a, _kw=None, _out=None):
        now = time.perf_counter()
        t["fwd"] += now - t["mark"]
        t["n"] += 1
        t["mark"] = now

    model.register_forward_pre_hook(pre_hook, with_kwargs=True)
    model.register_forward_hook(post_hook, with_kwargs=True)

    def predict(ctx, h, levels):
        t["mark"] = time.perf_counter()
        q, _ = pipe.predict_quantiles(ctx, prediction_length=h, quantile_levels=levels)
        t["post"] += time.perf_counter() - t["mark"]
        return q

    def evaluation(k, levels=None):
        levels = levels or qs
        t0 = time.perf_counter()
        score = [torch.tensor(s[k:k + L - 1], dtype=torch.float32) for s in series]
        future = [torch.tensor(s[k:k + L], dtype=torch.float32) for s in series]
        prep = time.perf_counter() - t0
        out_s, out_f = [], []
        for i in range(0, len(series), B):
            out_s.append(predict(score[i:i + B], h_score, levels))
        for i in range(0, len(series), B):
            out_f.append(predict(future[i:i + B], h_future, levels))
        return prep, torch.cat(out_s), torch.cat(out_f)

    out = sys.stdout
    out.write(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "interop_threads": torch.get_num_interop_threads(), "quantiles": native,
                          "series": len(series)}) + "\n")
    out.flush()
    with torch.inference_mode():
        for line in sys.stdin:
            f = line.split()
            if not f:
                continue
            if f[0] == "quit":
                break
            try:
                k = int(f[1])
                if f[0] == "run":
                    n = int(f[2])
                    for key in ("pre", "fwd", "post", "n"):
                        t[key] = 0
                    prep = 0.0
                    t0 = time.perf_counter()
                    for j in range(n):
                        prep += evaluation(k + j)[0]
                    secs = time.perf_counter() - t0
                    res = {"evaluations": n, "seconds": secs, "prep_seconds": prep,
                           "pipeline_pre_seconds": t["pre"], "forward_seconds": t["fwd"],
                           "post_seconds": t["post"], "forwards": t["n"],
                           "rows": 2 * n * len(series)}
                elif f[0] == "check":
                    _, s, fu = evaluation(k, native)
                    idx = [native.index(q) for q in qs]

                    def pick(x):  # [N, H, 9] -> [N][Q][H], sorted across levels
                        return torch.sort(x, dim=-1).values[..., idx].permute(0, 2, 1).tolist()

                    res = {"score": pick(s), "future": pick(fu)}
                else:
                    res = {"error": "unknown command " + f[0]}
            except Exception as e:  # noqa: BLE001 - reported to the driver
                res = {"error": f"{type(e).__name__}: {e}"}
            out.write(json.dumps(res) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
