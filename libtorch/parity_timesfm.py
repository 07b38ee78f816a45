#!/usr/bin/env python3
"""TimesFM 2.5 parity fixtures: exports the tiny TimesFM 2.5 configuration
with random weights (fixed seed) with the export tool, and writes what the
official Python forecast gives with the same weights on real series, for
pkg/forecast/tsfm/timesfm_parity_test.go:

    python parity_timesfm.py OUT_DIR [DATA_DIR]

DATA_DIR defaults to ../../shared/data beside the checkout (NAB and BOOM).

OUT_DIR/timesfm-h128.pt  context 512, horizon 128 (one pass)
OUT_DIR/timesfm-h256.pt  context 512, horizon 256 (two passes in the graph)
OUT_DIR/timesfm3-h128.pt TimesFM 3.0's tiny configuration, context 512,
                         horizon 128, against the official
                         TimesFM3Forecaster.predict_batch with its defaults
                         (batches of 4 series, each padded to its longest)
OUT_DIR/timesfm.json     for each file and horizon: the histories (the
                         newest <= 512 points the sidecar gives the model;
                         null = missing) and the official quantiles 0.1..0.9,
                         [series][9][horizon]

The official side: timesfm 3.0.2's TimesFM_2p5_200M_torch with its module
replaced by the tiny one holding the same random weights, compiled with
ForecastConfig(max_context=512, max_horizon=<horizon rounded up to 128>,
normalize_inputs, use_continuous_quantile_head, force_flip_invariance,
infer_is_positive, fix_quantile_crossing all True), forecast(horizon, inputs).
Horizons beyond a file's own run the Go adapter's extra passes; there the
Go test compares the median (the other quantiles of the official decode come
from the first pass's 1024-step head, which the file does not return beyond
its horizon), on the series short enough that the sidecar's sliding window
drops only padding (at most 512 - 256 points here), where it and the
growing window of the official decode see the same data.
"""

import csv
import dataclasses
import datetime
import json
import math
import os
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from tsfm_export import timesfm as T  # noqa: E402

MODEL = "test/timesfm-2.5-tiny"
MODEL3 = "test/timesfm-3.0-tiny"
SEED = 11
L = 512
THREADS = 2

# (file, horizon of the file, forecast horizons: (horizon, only series up to this many points or None))
FILES = {
    "timesfm-h128.pt": (128, [(128, None), (37, None), (300, L - 256)]),
    "timesfm-h256.pt": (256, [(256, None), (400, L - 256)]),
}
# TimesFM 3.0: one forward for the whole horizon, nothing outside the graph.
FILES3 = {
    # 100 rounds up to the same 128 of decode horizon; a horizon that rounds to
    # less (e.g. 50 -> 64) is another forecast in TimesFM 3.0 (TIMESFM.md).
    "timesfm3-h128.pt": (128, [(128, None), (100, None)]),
}


def nab(data, rel, end_after_gap=None, take=L):
    """A NAB series on its grid (the most common step; missing slots NaN),
    the newest `take` points up to end (after the last gap when asked)."""
    rows = list(csv.reader(open(os.path.join(data, "nab", rel))))[1:]
    ts = [datetime.datetime.fromisoformat(r[0]).timestamp() for r in rows]
    vals = [float(r[1]) for r in rows]
    diffs = sorted(b - a for a, b in zip(ts, ts[1:]) if b > a)
    step = max(set(diffs), key=diffs.count)
    n = int(round((ts[-1] - ts[0]) / step)) + 1
    out = np.full(n, np.nan)
    for t, v in zip(ts, vals):
        out[int(round((t - ts[0]) / step))] = v
    end = n
    if end_after_gap is not None:
        gaps = np.nonzero(np.isnan(out))[0]
        if len(gaps):
            end = min(n, gaps[-1] + end_after_gap)
    return out[max(0, end - take):end]


def boom(data, name, take=L, end=None):
    rows = list(csv.reader(open(os.path.join(data, "boom", "series", name))))[1:]
    vals = np.array([float(r[1]) for r in rows])
    end = len(vals) if end is None else end
    return vals[max(0, end - take):end]


def series(data):
    """Real inputs: long ones (fill the context), short ones (left padding),
    ones with gaps, non-negative ones (positivity clamp) and z-normalised
    BOOM ones (negative values)."""
    out = [
        ("nab/realKnownCause/nyc_taxi", nab(data, "realKnownCause/nyc_taxi.csv")),
        ("nab/realAdExchange/exchange-3_cpc_results (gaps)", nab(data, "realAdExchange/exchange-3_cpc_results.csv", end_after_gap=40)),
        ("nab/realKnownCause/ambient_temperature_system_failure (7-day gap)",
         nab(data, "realKnownCause/ambient_temperature_system_failure.csv", end_after_gap=300)),
        ("nab/realAWSCloudwatch/elb_request_count_8c0756 (gaps)", nab(data, "realAWSCloudwatch/elb_request_count_8c0756.csv", end_after_gap=60)),
        ("nab/realAdExchange/exchange-2_cpm_results (ends in a gap)",
         nab(data, "realAdExchange/exchange-2_cpm_results.csv", end_after_gap=1)),
        ("nab/realTraffic/speed_7578 (irregular, short)", nab(data, "realTraffic/speed_7578.csv", end_after_gap=20, take=200)),
        ("nab/realAWSCloudwatch/ec2_cpu_utilization_ac20cd (short, gaps)",
         nab(data, "realAWSCloudwatch/ec2_cpu_utilization_ac20cd.csv", end_after_gap=10, take=90)),
        ("boom/ds-0-T", boom(data, "ds-0-T.csv")),
        ("boom/ds-10-T (short)", boom(data, "ds-10-T.csv", take=150)),
        ("boom/ds-100-T_var000 (short)", boom(data, "ds-100-T_var000.csv", take=250)),
        ("boom/ds-100-T_var001", boom(data, "ds-100-T_var001.csv", take=700)[-L:]),
    ]
    # The sidecar gives the model float32 values.
    return [(name, s.astype(np.float32).astype(np.float64)) for name, s in out]


def official(core, horizon, inputs):
    import timesfm

    model = timesfm.TimesFM_2p5_200M_torch(torch_compile=False)
    model.model = core
    model.model.device = torch.device("cpu")
    max_h = (horizon - 1) // 128 * 128 + 128
    model.compile(timesfm.ForecastConfig(max_context=L, max_horizon=max_h, per_core_batch_size=len(inputs),
                                         **T.FORECAST_SETTINGS))
    _, q = model.forecast(horizon, [x.copy() for x in inputs])
    return q[:, :, 1:].transpose(0, 2, 1)  # [N, 9, horizon]: drop the mean


def official3(model_path, horizon, inputs):
    from timesfm3.torch import timesfm3_forecaster as f3

    cfg = T.timesfm3_config(T.MODELS[MODEL3], checkpoint_path=model_path)
    # batches of 4 of uneven lengths: each padded to its longest context
    fc = f3.TimesFM3Forecaster(dataclasses.replace(cfg, per_core_batch_size=4))
    out = fc.predict_batch([x.copy() for x in inputs], horizon, return_quantiles=True)
    return np.stack([o.quantiles for o in out]).transpose(0, 2, 1)  # [N, 9, horizon]


def main():
    out = sys.argv[1]
    data = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "..", "..", "shared", "data")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(THREADS)
    named = series(data)
    for name, s in named:
        assert 0 < len(s) <= L and np.isfinite(s).any(), name

    # The tool exports; the official side gets the same random weights from
    # the same build (a seeded generator, independent of the global RNG).
    for fname, (h, _) in FILES.items():
        subprocess.run([sys.executable, os.path.join(HERE, "export.py"), "--model", MODEL, "--context", str(L),
                        "--horizon", str(h), "--random-init", "--seed", str(SEED), "--threads", str(THREADS),
                        "--out", os.path.join(out, fname)], check=True)
    core = T.official_module(T.MODELS[MODEL])
    T.randomize(core, SEED)
    core = core.eval()

    for fname, (h, _) in FILES3.items():
        subprocess.run([sys.executable, os.path.join(HERE, "export.py"), "--model", MODEL3, "--context", str(L),
                        "--horizon", str(h), "--random-init", "--seed", str(SEED), "--threads", str(THREADS),
                        "--out", os.path.join(out, fname)], check=True)
    from safetensors.torch import save_file
    m3 = T.timesfm3_module(T.MODELS[MODEL3])
    T.randomize3(m3, SEED)
    m3_path = os.path.join(out, "timesfm3-tiny.safetensors")
    save_file(m3.state_dict(), m3_path)

    cases = []
    with torch.no_grad():
        for fname, (_, horizons) in FILES3.items():
            for horizon, _ in horizons:
                q = official3(m3_path, horizon, [s for _, s in named])
                cases.append({
                    "file": fname,
                    "family": "timesfm-3.0",
                    "horizon": horizon,
                    "names": [n for n, _ in named],
                    "histories": [[None if math.isnan(v) else v for v in s] for _, s in named],
                    "quantiles": q.tolist(),
                })
        for fname, (_, horizons) in FILES.items():
            for horizon, longest in horizons:
                pick = [(n, s) for n, s in named if longest is None or len(s) <= longest]
                q = official(core, horizon, [s for _, s in pick])
                cases.append({
                    "file": fname,
                    "family": "timesfm-2.5",
                    "horizon": horizon,
                    "names": [n for n, _ in pick],
                    "histories": [[None if math.isnan(v) else v for v in s] for _, s in pick],
                    "quantiles": q.tolist(),
                })
    with open(os.path.join(out, "timesfm.json"), "w") as f:
        json.dump({"model": MODEL, "seed": SEED, "context_length": L, "quantiles": T.QUANTILES,
                   "settings": T.FORECAST_SETTINGS, "torch_version": torch.__version__, "cases": cases}, f)


if __name__ == "__main__":
    main()
