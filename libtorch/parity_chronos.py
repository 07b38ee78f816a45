#!/usr/bin/env python3
"""Reference numbers for the Chronos parity test
(pkg/forecast/tsfm/chronos_parity_test.go):

    python parity_chronos.py --data ../shared/data OUT_DIR

For Chronos-Bolt (amazon/chronos-bolt-tiny) and Chronos-2
(autogluon/chronos-2-small), the smallest published configurations, with
random weights from a fixed seed:

1. exports a tsfm/v1 file with the export tool (export.py's main, the same
   code path as the CLI) into OUT_DIR;
2. builds the same official model object again (same seed: the same
   weights, checked against the file's parameters) and wraps it in the
   official pipeline class (ChronosBoltPipeline, Chronos2Pipeline);
3. runs real series from NAB and BOOM (aligned to their step, so timestamp
   gaps become NaN; some shorter than the context, some longer) through the
   pipeline's predict_quantiles at the native levels, for horizons within
   and beyond the file's;

and writes OUT_DIR/parity.json: the histories (null = NaN), and per file and
horizon the pipeline's quantiles [series][level][step], sorted across levels
at each step as the sidecar sorts them (the fix for crossing quantiles,
which random weights produce).

Settings: both pipelines see the whole batch at once (batch_size 256, as the
Go test's batch_size); Chronos-2 is called with max_output_patches = the
file's output patches (its long-horizon unroll then starts where the file's
horizon ends, which is what the Go adapter does) and its default
unrolled_quantiles, without cross-learning (each series its own group) and
without covariates. The models' context_length is the file's (512).
"""

import argparse
import csv
import datetime
import json
import math
import os
import sys
import warnings

warnings.filterwarnings("ignore")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

from tsfm_export import chronos as family  # noqa: E402
from tsfm_export.common import main as export_main  # noqa: E402

SEED = 11
CONTEXT = 512
THREADS = 2
# model id, file horizon, horizons asked (within and beyond the file's).
# Chronos-2: 32 steps = 2 output patches; 20 needs the same 2 patches in
# the pipeline; 59 and 96 unroll whole 2-patch blocks.
MODELS = [
    ("amazon/chronos-bolt-tiny", 64, [10, 64, 150]),
    ("autogluon/chronos-2-small", 32, [20, 32, 59, 96]),
]


def load(path):
    """(step seconds, values on the regular grid with NaN where no sample)."""
    ts, vs = [], []
    with open(path) as f:
        for row in csv.DictReader(f):
            t = row["timestamp"].replace("Z", "+00:00")
            d = datetime.datetime.fromisoformat(t)
            if d.tzinfo is None:
                d = d.replace(tzinfo=datetime.timezone.utc)
            ts.append(d.timestamp())
            vs.append(float(row["value"]))
    diffs = sorted(b - a for a, b in zip(ts, ts[1:]))
    step = diffs[len(diffs) // 2]
    n = int(round((ts[-1] - ts[0]) / step)) + 1
    grid = [math.nan] * n
    for t, v in zip(ts, vs):
        grid[int(round((t - ts[0]) / step))] = v  # a duplicate: the later wins
    return step, grid


def first_gap(grid, min_len):
    i = 0
    while i < len(grid):
        if math.isnan(grid[i]):
            j = i
            while j < len(grid) and math.isnan(grid[j]):
                j += 1
            if j - i >= min_len:
                return i, j
            i = j
        else:
            i += 1
    raise SystemExit("no gap found")


def series(data):
    out = []

    def add(name, values):
        assert any(not math.isnan(v) for v in values)
        out.append({"name": name, "history": values})

    # NAB ambient temperature: a 31-hour gap, longer than the context
    _, g = load(os.path.join(data, "nab/realKnownCause/ambient_temperature_system_failure.csv"))
    a, b = first_gap(g, 10)
    add("nab/ambient_temperature_system_failure (gap of %d, truncated)" % (b - a), g[max(0, b + 200 - 700): b + 200])
    # NAB traffic speed: many short gaps, shorter than the context
    _, g = load(os.path.join(data, "nab/realTraffic/speed_7578.csv"))
    add("nab/speed_7578 (gaps, short)", g[-300:])
    # NAB AWS disk write bytes: values ~1e7, a 12-step gap, shorter than the context
    _, g = load(os.path.join(data, "nab/realAWSCloudwatch/ec2_disk_write_bytes_1ef3de.csv"))
    a, b = first_gap(g, 5)
    add("nab/ec2_disk_write_bytes_1ef3de (gap of %d, short)" % (b - a), g[b + 100 - 450: b + 100])
    # BOOM: a long one (truncated) and a short one
    _, g = load(os.path.join(data, "boom/series/ds-0-T.csv"))
    add("boom/ds-0-T (truncated)", g[-800:])
    _, g = load(os.path.join(data, "boom/series/ds-100-T_var000.csv"))
    add("boom/ds-100-T_var000 (short)", g[-120:])
    return out


def covariates_case(data, out):
    """The experimental --covariates Chronos-2 file (inputs context,
    group_ids, future_covariates) against Chronos2Pipeline.predict_quantiles
    with a past-only and a known-future covariate per task, two tasks in one
    batch. Returns the file name, the largest difference over the
    targets' quantiles, relative to each target's scale, and the tasks'
    inputs with the pipeline's quantiles at the file's horizon and at twice
    it, which the Go test compares with the sidecar's."""
    from chronos import Chronos2Pipeline

    model_id, h = "autogluon/chronos-2-small", 32
    path = os.path.join(out, "chronos-2-small-covariates.pt")
    rc = export_main(["--model", model_id, "--context", str(CONTEXT), "--horizon", str(h), "--device", "cpu",
                      "--random-init", "--seed", str(SEED), "--covariates", "--out", path, "--threads", str(THREADS)])
    if rc != 0:
        raise SystemExit(f"export of {model_id} --covariates failed ({rc})")
    graph = torch.jit.load(path)
    model = family.official_model(model_id, CONTEXT, True, SEED, "cpu")
    g = {n: load(os.path.join(data, "boom/series", n + ".csv"))[1]
         for n in ("ds-100-T_var000", "ds-100-T_var001", "ds-100-T_var002", "ds-0-T", "ds-10-T")}
    # (target, past-only, known-future) per task; 600 points of history, the
    # known-future covariate's next h values as its future
    tasks = [("ds-100-T_var000", "ds-100-T_var001", "ds-100-T_var002"), ("ds-0-T", "ds-10-T", "ds-100-T_var002")]
    n = 600
    dicts, rows, gids, futs = [], [], [], []
    for i, (tg, pc, fc) in enumerate(tasks):
        tgt = torch.tensor(g[tg][-n - h: -h], dtype=torch.float32)
        past = torch.tensor(g[pc][-n - h: -h], dtype=torch.float32)
        fpast = torch.tensor(g[fc][-n - h: -h], dtype=torch.float32)
        ffut = torch.tensor(g[fc][-h:], dtype=torch.float32)
        dicts.append({"target": tgt, "past_covariates": {"p": past, "f": fpast}, "future_covariates": {"f": ffut}})
        for x, fut in ((tgt, None), (past, None), (fpast, ffut)):
            rows.append(x[-CONTEXT:])
            gids.append(i)
            futs.append(fut if fut is not None else torch.full((h,), float("nan")))
    with torch.no_grad():
        got = graph(torch.stack(rows), torch.tensor(gids), torch.stack(futs))
        pipe = Chronos2Pipeline(model=model)
        ref, _ = pipe.predict_quantiles(dicts, prediction_length=h, quantile_levels=pipe.quantiles,
                                        max_output_patches=math.ceil(h / 16))
        # the targets alone, without their covariates: how much the covariates move them
        alone = graph(torch.stack(rows[::3]), torch.arange(len(tasks)), torch.stack(futs[::3]))
    worst = effect = 0.0
    for i, r in enumerate(ref):
        want = r[0].T  # the target's [Q, H]
        scale = max(1.0, want.abs().max().item())
        worst = max(worst, ((got[3 * i] - want).abs().max() / scale).item())
        effect = max(effect, ((alone[i] - want).abs().max() / scale).item())
    print(f"{model_id} --covariates: 2 tasks (target, past-only, known-future), largest difference {worst:.3g} "
          f"(the covariates move the targets' quantiles by up to {effect:.3g} of their scale)",
          file=sys.stderr)

    # The sidecar's side (the Go test): the same tasks, their histories and
    # the known-future covariate's future, and the pipeline's quantiles for
    # the file's horizon and for twice it (the long-horizon unrolling with
    # covariates), sorted per step as the sidecar's are.
    long_h = 2 * h
    inputs, cases = [], []
    for tg, pc, fc in tasks:
        cut = lambda x: x[-n - long_h: -long_h]
        inputs.append({"target": cut(g[tg]), "past": cut(g[pc]), "known_past": cut(g[fc]), "known_future": g[fc][-long_h:]})
    with torch.no_grad():
        for hz in (h, long_h):
            dicts = [{"target": torch.tensor(x["target"], dtype=torch.float32),
                      "past_covariates": {"p": torch.tensor(x["past"], dtype=torch.float32),
                                          "f": torch.tensor(x["known_past"], dtype=torch.float32)},
                      "future_covariates": {"f": torch.tensor(x["known_future"][:hz], dtype=torch.float32)}}
                     for x in inputs]
            ref, _ = pipe.predict_quantiles(dicts, prediction_length=hz, quantile_levels=pipe.quantiles,
                                            max_output_patches=math.ceil(h / 16))
            cases.append({"horizon": hz, "quantiles": [sorted_levels(r[:1])[0] for r in ref]})
    nan_none = lambda xs: [None if math.isnan(v) else v for v in xs]
    return {"file": os.path.basename(path), "tasks": [list(t) for t in tasks], "horizon": h, "max_difference": worst,
            "covariate_effect": effect, "quantiles": list(pipe.quantiles),
            "inputs": [{k: nan_none(v) for k, v in x.items()} for x in inputs], "cases": cases}


def sorted_levels(q):
    """[N, H, Q] -> [N][Q][H], sorted across Q at each step."""
    return torch.sort(q, dim=-1).values.permute(0, 2, 1).tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="the shared data folder (NAB, BOOM)")
    ap.add_argument("out")
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    os.makedirs(args.out, exist_ok=True)

    from chronos import Chronos2Pipeline, ChronosBoltPipeline
    import transformers
    transformers.logging.set_verbosity_error()

    ser = series(args.data)
    inputs = [torch.tensor(s["history"], dtype=torch.float32) for s in ser]
    result = {"torch_version": torch.__version__.split("+")[0], "context": CONTEXT, "seed": SEED,
              "series": [{"name": s["name"], "history": [None if math.isnan(v) else v for v in s["history"]]} for s in ser],
              "models": []}
    for model_id, file_h, horizons in MODELS:
        spec = family.MODELS[model_id]
        name = model_id.split("/")[-1]
        path = os.path.join(args.out, name + ".pt")
        rc = export_main(["--model", model_id, "--context", str(CONTEXT), "--horizon", str(file_h),
                          "--device", "cpu", "--random-init", "--seed", str(SEED), "--out", path,
                          "--threads", str(THREADS)])
        if rc != 0:
            raise SystemExit(f"export of {model_id} failed ({rc})")
        model = family.official_model(model_id, CONTEXT, True, SEED, "cpu")
        # the same weights as the file's
        traced = dict(torch.jit.load(path).named_parameters())
        for k, v in model.named_parameters():
            if not torch.equal(traced["model." + k], v):
                raise SystemExit(f"{model_id}: parameter {k} differs between the file and the rebuilt model")
        cases = []
        with torch.no_grad():
            if spec["family"] == "chronos-bolt":
                pipe = ChronosBoltPipeline(model=model)
                q = pipe.quantiles
                for h in horizons:
                    quant, _ = pipe.predict_quantiles(inputs, prediction_length=h, quantile_levels=q)
                    cases.append({"horizon": h, "quantiles": sorted_levels(quant)})
            else:
                pipe = Chronos2Pipeline(model=model)
                q = pipe.quantiles
                patches = math.ceil(file_h / model.chronos_config.output_patch_size)
                for h in horizons:
                    quant, _ = pipe.predict_quantiles(inputs, prediction_length=h, quantile_levels=q,
                                                      batch_size=256, max_output_patches=patches)
                    cases.append({"horizon": h, "quantiles": sorted_levels(torch.cat(quant, dim=0))})
        result["models"].append({"model_id": model_id, "file": os.path.basename(path), "family": spec["family"],
                                 "horizon": file_h, "quantiles": list(q), "cases": cases})
        print(f"{model_id}: {len(ser)} series, horizons {horizons}", file=sys.stderr)
    result["covariates"] = covariates_case(args.data, args.out)
    with open(os.path.join(args.out, "parity.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
