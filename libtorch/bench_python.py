#!/usr/bin/env python3
"""The Python side of the TorchScript throughput benchmark (issue 4,
BENCHMARKS.md "TorchScript throughput"): a loop that calls a tsfm/v1
TorchScript file the way a Python sidecar would. internal/cmd/torchbench
starts it once and drives it over stdin/stdout, interleaving its runs with
the Go path's; it waits on stdin (no CPU) while the Go side runs.

    python bench_python.py --model FILE --histories FILE.json --threads 2

FILE.json holds {"histories": [[...], ...]} (null = NaN), the same
histories the Go side forecasts. Commands, one a line; each answers one
JSON line:

    run B N [H]  N iterations on the first B histories; answers
                 {"batch", "iterations", "seconds", "forward_seconds"}
    check B [H]  one iteration; answers {"quantiles": [B][Q][H]}
    quit

One iteration is what the Go path's Forecast does with the same file: cut
each history to the newest L points or NaN-left-pad it to L (Python
lists), make the float32 [B, L] tensor from those lists (torch.tensor),
forward under torch.inference_mode, sort the Q native values of each step
(the Go side does the same) and turn the first H steps into Python floats
(tolist). "seconds" times whole iterations with time.perf_counter;
"forward_seconds" only the module call. Threads: torch.set_num_threads
(intra-op) and torch.set_num_interop_threads(1), before anything runs.
NumPy is not needed (the benchmark's venv has none).
"""

import argparse
import json
import math
import sys
import time
import warnings

warnings.filterwarnings("ignore")  # TorchScript deprecation, NumPy missing

import torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--histories", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--probe", action="store_true",
                    help="first run the Go loader's probe: a [2, L] batch, one row half NaN")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    extra = {"tsfm.json": ""}
    module = torch.jit.load(args.model, map_location=args.device, _extra_files=extra)
    module.eval()
    md = json.loads(extra["tsfm.json"])
    L, native_h = md["context_length"], md["horizon"]
    device = torch.device(args.device)
    nan = math.nan
    if args.probe:
        with torch.inference_mode():
            x = torch.empty(2, L)
            for i in range(L):
                x[0, i] = 10 + math.sin(i / 4)
                x[1, i] = float(i % 7) if i >= L // 2 else nan
            module(x.to(device))
    with open(args.histories) as f:
        hists = [[nan if v is None else float(v) for v in h] for h in json.load(f)["histories"]]

    def iteration(b, h):
        rows = []
        for hist in hists[:b]:
            hist = hist[-L:]
            rows.append([nan] * (L - len(hist)) + hist if len(hist) < L else hist)
        x = torch.tensor(rows, dtype=torch.float32, device=device)
        t0 = time.perf_counter()
        q = module(x)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        fwd = time.perf_counter() - t0
        q = torch.sort(q[:, :, :h], dim=1).values
        return q.tolist(), fwd

    out = sys.stdout
    out.write(json.dumps({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "interop_threads": torch.get_num_interop_threads(),
                          "context_length": L, "horizon": native_h}) + "\n")
    out.flush()
    with torch.inference_mode():
        for line in sys.stdin:
            f = line.split()
            if not f:
                continue
            if f[0] == "quit":
                break
            b = int(f[1])
            if f[0] == "run":
                n = int(f[2])
                h = int(f[3]) if len(f) > 3 else native_h
                fwd = 0.0
                t0 = time.perf_counter()
                for _ in range(n):
                    fwd += iteration(b, h)[1]
                secs = time.perf_counter() - t0
                res = {"batch": b, "iterations": n, "seconds": secs, "forward_seconds": fwd}
            elif f[0] == "check":
                h = int(f[2]) if len(f) > 2 else native_h
                res = {"quantiles": iteration(b, h)[0]}
            else:
                res = {"error": "unknown command " + f[0]}
            out.write(json.dumps(res) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
