package tsfm

import (
	"context"
	"fmt"
	"math"

	"github.com/openanomaly/openanomaly/pkg/forecast/torch"
)

// TimesFM25Family is the metadata family of TimesFM 2.5 files written by
// the export tool (libtorch/tsfm_export/timesfm.py).
const TimesFM25Family = "timesfm-2.5"

// timesFMPass is TimesFM 2.5's output patch: one decoding pass forecasts
// 128 steps, and the next pass is fed their median.
const timesFMPass = 128

func init() { torch.RegisterFamily(TimesFM25Family, TimesFM{}) }

// TimesFM is the adapter of TimesFM 2.5 files. The graph does one decoding
// chain of the official forecast with normalize_inputs and
// use_continuous_quantile_head (interpolation of missing points, global and
// per-patch normalisation, passes of 128 up to the file's horizon H feeding
// the median back, the continuous quantile head); the adapter does what the
// official compiled_decode does across chains and after them, with the
// settings the parity test uses:
//
//   - force_flip_invariance: every row also runs negated, and quantile k is
//     (q_k(x) - q_{Q-1-k}(-x)) / 2;
//   - fix_quantile_crossing: from the median outwards, each lower quantile is
//     at most the one above it and each upper one at least the one below;
//   - infer_is_positive: when every observed point of the context is ≥ 0,
//     the forecast is clamped at 0.
//
// Horizons beyond H (for files whose H is a multiple of 128) run further
// passes per chain, as the official decode does: each feeds the previous
// output's median (quantile 0.5) back after the context. Two differences from
// the official decode remain there, both documented in libtorch/TIMESFM.md:
//
//   - the graph's window is the file's L, so a pass sees the newest L points
//     of context and fed medians, where the official decode keeps the whole
//     context and grows; the two are the same while the dropped points are
//     NaN padding (histories of at most L - H·k points for pass k+1);
//   - the continuous quantile head of the official decode takes every step's
//     spread from the first pass (its head is 1024 steps long), which a file
//     of horizon H does not return beyond H; the adapter's further passes
//     take the quantiles around their median from their own pass.
//
// Export the horizon the rules need (up to 1024) to get the official numbers
// for every quantile and history length.
type TimesFM struct{}

// Forecast implements torch.Family.
func (TimesFM) Forecast(ctx context.Context, md torch.Metadata, fw torch.Forward, rows [][]float32, horizon int) ([][][]float32, error) {
	q, h, l := len(md.Quantiles), md.Horizon, md.ContextLength
	if err := checkTimesFMQuantiles(md.Quantiles); err != nil {
		return nil, err
	}
	passes := 1
	if horizon > h {
		if h%timesFMPass != 0 {
			return nil, fmt.Errorf("horizon %d is longer than the file's %d steps, and TimesFM forecasts further only from files whose horizon is a multiple of %d (a pass feeds %d medians back): export with --horizon %d or longer",
				horizon, h, timesFMPass, timesFMPass, (horizon+timesFMPass-1)/timesFMPass*timesFMPass)
		}
		passes = (horizon + h - 1) / h
	}
	mid := q / 2
	n := len(rows)

	// Chains: rows 0..n-1 the contexts, n..2n-1 the negated ones, forwarded
	// together so that both fill the same batches.
	chain := make([][]float32, 2*n)
	positive := make([]bool, n)
	for r, row := range rows {
		if len(row) != l {
			return nil, fmt.Errorf("row %d has %d points, the file's context is %d", r, len(row), l)
		}
		neg := make([]float32, l)
		positive[r] = true
		for i, v := range row {
			neg[i] = -v // NaN stays NaN
			if v < 0 {
				positive[r] = false
			}
		}
		chain[r], chain[n+r] = row, neg
	}
	// out[c][k] collects chain c's quantile k over the passes.
	out := make([][][]float32, 2*n)
	for c := range out {
		out[c] = make([][]float32, q)
		for k := range q {
			out[c][k] = make([]float32, 0, passes*h)
		}
	}
	for pass := range passes {
		res, err := fw(ctx, chain)
		if err != nil {
			return nil, err
		}
		if len(res) != len(chain) {
			return nil, fmt.Errorf("forward returned %d results for %d rows", len(res), len(chain))
		}
		for c, flat := range res {
			if len(flat) != q*h {
				return nil, fmt.Errorf("forward result %d has %d values, want %d quantiles × %d steps", c, len(flat), q, h)
			}
			for k := range q {
				out[c][k] = append(out[c][k], flat[k*h:(k+1)*h]...)
			}
		}
		if pass+1 == passes {
			break
		}
		next := make([][]float32, len(chain))
		for c, row := range chain {
			med := res[c][mid*h : (mid+1)*h]
			grown := append(append(make([]float32, 0, len(row)+h), row...), med...)
			next[c] = grown[len(grown)-l:]
		}
		chain = next
	}

	fc := make([][][]float32, n)
	for r := range n {
		a, b := out[r], out[n+r]
		f := make([][]float32, q)
		for k := range q {
			f[k] = make([]float32, horizon)
			for s := range horizon {
				f[k][s] = (a[k][s] - b[q-1-k][s]) / 2
			}
		}
		for s := range horizon {
			for k := mid - 1; k >= 0; k-- {
				f[k][s] = min(f[k][s], f[k+1][s])
			}
			for k := mid + 1; k < q; k++ {
				f[k][s] = max(f[k][s], f[k-1][s])
			}
			if positive[r] {
				for k := range q {
					f[k][s] = max(f[k][s], 0)
				}
			}
		}
		fc[r] = f
	}
	return fc, nil
}

// checkTimesFMQuantiles requires an odd number of levels symmetric around
// the median, so that negating the input maps level k onto level Q-1-k.
func checkTimesFMQuantiles(levels []float64) error {
	q := len(levels)
	if q%2 == 0 || math.Abs(levels[q/2]-0.5) > 1e-9 {
		return fmt.Errorf("TimesFM file has quantiles %v: want an odd number of levels with 0.5 in the middle (re-export with the tool under libtorch/)", levels)
	}
	for k := range q / 2 {
		if math.Abs(levels[k]+levels[q-1-k]-1) > 1e-9 {
			return fmt.Errorf("TimesFM file has quantiles %v: want levels symmetric around 0.5 (re-export with the tool under libtorch/)", levels)
		}
	}
	return nil
}
