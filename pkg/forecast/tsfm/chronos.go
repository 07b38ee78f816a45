package tsfm

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/openanomaly/openanomaly/pkg/forecast/torch"
)

func init() {
	torch.RegisterFamily("chronos-bolt", ChronosBolt{})
	torch.RegisterFamily("chronos-2", Chronos2{})
}

// ChronosBolt is the family of Chronos-Bolt files (libtorch/export.py
// --model amazon/chronos-bolt-*). Within the file's horizon it is one
// forward. Beyond it, it does what ChronosBoltPipeline.predict of
// chronos-forecasting 2.3.2 does for a prediction_length longer than the
// model's: each of the Q native quantile paths of the first block is
// appended to the context (the batch grows Q times), the window keeps the
// newest context-length points (the pipeline keeps the model's
// context_length; the file's L plays that part), and each further block's
// Q×Q values per step are reduced to the Q levels by torch.quantile's
// linear interpolation; the reduced block is what the next round appends to
// path k. The values are the graph's own (unsorted); the caller sorts them.
// Equal to the pipeline when the file has the checkpoint's native horizon
// (64, the export default): the pipeline feeds back whole 64-step blocks.
type ChronosBolt struct{}

// Forecast implements torch.Family.
func (ChronosBolt) Forecast(ctx context.Context, md torch.Metadata, fw torch.Forward, rows [][]float32, horizon int) ([][][]float32, error) {
	paths := make([]int, len(md.Quantiles))
	for k := range paths {
		paths[k] = k
	}
	return unroll(ctx, md, fw, rows, horizon, paths, boltReduce(md.Quantiles))
}

// Chronos2 is the family of Chronos-2 files (libtorch/export.py --model
// amazon/chronos-2 or autogluon/chronos-2-small): 21 quantiles, each row its
// own group (independent series; no cross-learning). Files exported with
// --covariates also take covariates (ForecastTasks). One
// forward gives the file's horizon from its ceil(H/16) output patches.
// Beyond it, it does what Chronos2Pipeline.predict of chronos-forecasting
// 2.3.2 does past max_output_patches (the file's patch count plays that
// part): the paths of the levels 0.1, 0.2, ..., 0.9 (unrolled_quantiles'
// default) are appended to the context, each path its own group, the
// window keeps the newest L points, and the 9×21 values per step are reduced
// to the 21 levels by the pipeline's weighted_quantile (sample weights: the
// outer product of each level set's trapezoidal probability mass). Equal to
// the pipeline called with max_output_patches = ceil(H/16) when every
// further block is whole patches of the file (the pipeline's last block may
// use fewer patches, which changes its values slightly; this adapter cuts a
// full block instead).
type Chronos2 struct{}

// chronos2Unrolled are the levels whose paths Chronos2Pipeline feeds back
// by default.
var chronos2Unrolled = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}

// Forecast implements torch.Family.
func (Chronos2) Forecast(ctx context.Context, md torch.Metadata, fw torch.Forward, rows [][]float32, horizon int) ([][][]float32, error) {
	paths, err := chronos2Paths(md, horizon)
	if err != nil {
		return nil, err
	}
	return unroll(ctx, md, fw, rows, horizon, paths, chronos2Reduce(md.Quantiles, chronos2Unrolled))
}

// chronos2Paths returns the indices of the levels fed back beyond the
// file's horizon (none within it).
func chronos2Paths(md torch.Metadata, horizon int) ([]int, error) {
	var paths []int
	if horizon > md.Horizon {
		for _, q := range chronos2Unrolled {
			i := slices.IndexFunc(md.Quantiles, func(v float64) bool { return math.Abs(v-q) < 1e-9 })
			if i < 0 {
				return nil, fmt.Errorf("horizon %d is longer than the file's %d steps, and forecasting further feeds back the quantile levels %v, which the file's levels %v lack: export a file with a longer horizon",
					horizon, md.Horizon, chronos2Unrolled, md.Quantiles)
			}
			paths = append(paths, i)
		}
	}
	return paths, nil
}

// ForecastTasks implements torch.CovariateFamily: each task is one of
// Chronos2Pipeline's tasks (a target and its covariates in one group; the
// batcher keeps tasks in groups of their own). The first forward gets each
// row's known future values of the file's horizon (NaN-padded). Beyond the
// horizon it does what the pipeline's long-horizon unrolling does with
// covariates: every row of a task (targets and covariates alike) is
// expanded into the 9 paths of the levels 0.1 ... 0.9, path p of a task
// being a group of its own (the pipeline's group id task*9 + p); each round
// appends each row's path level of its newest block (the pipeline's
// reduced block, the first block's raw levels), keeps the newest L points,
// overwrites the appended points of a known-future covariate with its known
// values where they are not NaN and moves its future on by the block
// (_slide_context_and_future_covariates), and reduces each row's 9×21
// values per step to the 21 levels as Forecast does.
func (Chronos2) ForecastTasks(ctx context.Context, md torch.Metadata, fw torch.ForwardTasks, tasks []torch.Task, horizon int) ([][][]float32, error) {
	paths, err := chronos2Paths(md, horizon)
	if err != nil {
		return nil, err
	}
	q, h, l, n := len(md.Quantiles), md.Horizon, md.ContextLength, len(paths)
	first := make([]torch.Task, len(tasks))
	rows, targets := 0, 0
	for i, t := range tasks {
		first[i] = torch.Task{Rows: t.Rows, Targets: t.Targets, Future: torch.FutureWindow(t.Future, 0, h)}
		rows += len(t.Rows)
		targets += t.Targets
	}
	block, err := fw(ctx, first) // the newest block of every row, [Q][H] flat
	if err != nil {
		return nil, err
	}
	if err := checkResults(block, rows, q*h); err != nil {
		return nil, err
	}
	out := make([][][]float32, 0, targets)
	row := 0
	for _, t := range tasks {
		for r := range t.Targets {
			f := make([][]float32, q)
			for k := range q {
				f[k] = make([]float32, h, max(h, horizon))
				copy(f[k], block[row+r][k*h:(k+1)*h])
			}
			out = append(out, f)
		}
		row += len(t.Rows)
	}
	if horizon > h {
		// Path contexts: ctxs[t][p] are task t's rows on path p.
		ctxs := make([][][][]float32, len(tasks))
		for i, t := range tasks {
			ctxs[i] = make([][][]float32, n)
			for p := range n {
				ctxs[i][p] = make([][]float32, len(t.Rows))
				for r, c := range t.Rows {
					ctxs[i][p][r] = slices.Clone(c)
				}
			}
		}
		reduce := chronos2Reduce(md.Quantiles, chronos2Unrolled)
		samples := make([]float32, n*q)
		reduced := make([]float32, q)
		keep := max(0, l-h)
		from := max(0, h-l) // the block's first step that fits in the context
		for done := h; done < horizon; done += h {
			var round []torch.Task
			row := 0
			for i, t := range tasks {
				for p, k := range paths {
					for r, c := range ctxs[i][p] {
						copy(c, c[l-keep:])
						copy(c[keep:], block[row+r][k*h+from:(k+1)*h])
						if t.Future != nil {
							fut := t.Future[r]
							for j := range l - keep {
								if s := done - h + from + j; s < len(fut) && fut[s] == fut[s] {
									c[keep+j] = fut[s]
								}
							}
						}
					}
					round = append(round, torch.Task{Rows: ctxs[i][p], Targets: t.Targets, Future: torch.FutureWindow(t.Future, done, h)})
				}
				row += len(t.Rows)
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			pred, err := fw(ctx, round)
			if err != nil {
				return nil, err
			}
			if err := checkResults(pred, rows*n, q*h); err != nil {
				return nil, err
			}
			next := make([][]float32, rows)
			row, base := 0, 0 // base: task i's first row in pred
			for _, t := range tasks {
				m := len(t.Rows)
				for r := range m {
					next[row+r] = make([]float32, q*h)
					for s := range h {
						for p := range n {
							for k := range q {
								samples[p*q+k] = pred[base+p*m+r][k*h+s]
							}
						}
						reduce(samples, reduced)
						for k := range q {
							next[row+r][k*h+s] = reduced[k]
						}
					}
				}
				row += m
				base += m * n
			}
			block = next
			row, o := 0, 0
			for _, t := range tasks {
				for r := range t.Targets {
					for k := range q {
						out[o][k] = append(out[o][k], block[row+r][k*h:(k+1)*h]...)
					}
					o++
				}
				row += len(t.Rows)
			}
		}
	}
	for _, f := range out {
		for k := range f {
			f[k] = f[k][:horizon:horizon]
		}
	}
	return out, nil
}

// reducer turns the n×Q values of one step (path-major: value k of path p
// at p*Q+k) into Q values, written to out.
type reducer func(samples []float32, out []float32)

// unroll runs the first forward and, while the horizon is not covered, the
// long-horizon feedback shared by both Chronos families: the values of the
// levels paths[p] of the newest block are appended to path p's context
// (all paths start from the row's context), the newest L points are kept,
// the n paths of every row are forwarded together (row-major: row r's path
// p is input r*n+p), and the n×Q values per step are reduced to Q.
func unroll(ctx context.Context, md torch.Metadata, fw torch.Forward, rows [][]float32, horizon int, paths []int, reduce reducer) ([][][]float32, error) {
	res, err := fw(ctx, rows)
	if err != nil {
		return nil, err
	}
	if horizon <= md.Horizon {
		return torch.Native(md, res, horizon), nil
	}
	q, h, l, n := len(md.Quantiles), md.Horizon, md.ContextLength, len(paths)
	if err := checkResults(res, len(rows), q*h); err != nil {
		return nil, err
	}
	out := make([][][]float32, len(rows))
	for r := range rows {
		out[r] = make([][]float32, q)
		for k := range q {
			out[r][k] = make([]float32, 0, horizon)
			out[r][k] = append(out[r][k], res[r][k*h:(k+1)*h]...)
		}
	}
	// Path contexts: row r's path p is ctxs[r*n+p], L long, oldest first.
	ctxs := make([][]float32, len(rows)*n)
	for r, row := range rows {
		for p := range n {
			ctxs[r*n+p] = slices.Clone(row)
		}
	}
	block := res // the newest block per row, [Q][H] flat
	samples := make([]float32, n*q)
	reduced := make([]float32, q)
	for done := h; done < horizon; done += h {
		for r := range rows {
			for p, k := range paths {
				c := ctxs[r*n+p]
				// append block[r]'s level k and keep the newest l
				keep := max(0, l-h)
				copy(c, c[l-keep:])
				copy(c[keep:], block[r][k*h+max(0, h-l):(k+1)*h])
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pred, err := fw(ctx, ctxs)
		if err != nil {
			return nil, err
		}
		if err := checkResults(pred, len(ctxs), q*h); err != nil {
			return nil, err
		}
		next := make([][]float32, len(rows))
		for r := range rows {
			next[r] = make([]float32, q*h)
			for s := range h {
				for p := range n {
					for k := range q {
						samples[p*q+k] = pred[r*n+p][k*h+s]
					}
				}
				reduce(samples, reduced)
				for k := range q {
					next[r][k*h+s] = reduced[k]
				}
			}
			for k := range q {
				out[r][k] = append(out[r][k], next[r][k*h:(k+1)*h]...)
			}
		}
		block = next
	}
	for r := range out {
		for k := range out[r] {
			out[r][k] = out[r][k][:horizon:horizon]
		}
	}
	return out, nil
}

func checkResults(res [][]float32, rows, size int) error {
	if len(res) != rows {
		return fmt.Errorf("forward returned %d results for %d rows", len(res), rows)
	}
	for i, r := range res {
		if len(r) != size {
			return fmt.Errorf("forward result %d has %d values, want %d", i, len(r), size)
		}
	}
	return nil
}

// boltReduce is torch.quantile(samples, q=levels, dim=...) with its default
// linear interpolation, in float32 as the pipeline computes it: the sorted
// values at rank q*(n-1), interpolated between the neighbouring ranks by
// torch's lerp.
func boltReduce(levels []float64) reducer {
	lv := make([]float32, len(levels))
	for i, q := range levels {
		lv[i] = float32(q)
	}
	var sorted []float32
	return func(samples []float32, out []float32) {
		sorted = append(sorted[:0], samples...)
		sortFloat32(sorted)
		n := len(sorted)
		for i, q := range lv {
			rank := q * float32(n-1)
			lo := int(rank)
			hi := min(int(math.Ceil(float64(rank))), n-1)
			out[i] = lerp32(sorted[lo], sorted[hi], rank-float32(lo))
		}
	}
}

// lerp32 is ATen's lerp: start + w*(end-start) for |w| < 0.5, else
// end - (end-start)*(1-w).
func lerp32(start, end, w float32) float32 {
	d := end - start
	if w < 0.5 {
		return start + w*d
	}
	return end - d*(1-w)
}

// sortFloat32 sorts ascending with NaN last, as torch.sort does.
func sortFloat32(xs []float32) {
	slices.SortFunc(xs, func(a, b float32) int {
		an, bn := a != a, b != b
		switch {
		case an && bn:
			return 0
		case an:
			return 1
		case bn:
			return -1
		case a < b:
			return -1
		case a > b:
			return 1
		}
		return 0
	})
}

// probMass is Chronos2Pipeline._get_prob_mass_per_quantile_level in
// float32: (q[i+1] - q[i-1]) / 2 with q[-1] = 0 and q[n] = 1, normalised.
func probMass(levels []float64) []float32 {
	b := make([]float32, 0, len(levels)+2)
	b = append(b, 0)
	for _, q := range levels {
		b = append(b, float32(q))
	}
	b = append(b, 1)
	m := make([]float32, len(levels))
	var sum float64 // torch's sum is (nearly) exactly rounded; a float32 running sum is not
	for i := range m {
		m[i] = (b[i+2] - b[i]) / 2
		sum += float64(m[i])
	}
	for i := range m {
		m[i] /= float32(sum)
	}
	return m
}

// chronos2Reduce is chronos.utils.weighted_quantile(levels, weights,
// samples) with the pipeline's weights (outer product of the unrolled and
// the native levels' probability mass, path-major): samples sorted with
// their weights, cumulative weights (clamped to [0, 1]) as the levels of
// the sorted values, padded with level 0 (the smallest value) and level 1
// (the largest) when missing, and each wanted level interpolated linearly
// between the neighbouring cumulative levels (interpolate_quantiles).
func chronos2Reduce(levels, unrolled []float64) reducer {
	q := len(levels)
	pm, qm := probMass(unrolled), probMass(levels)
	w := make([]float32, 0, len(pm)*q)
	var sum float64
	for _, a := range pm {
		for _, b := range qm {
			w = append(w, a*b)
			sum += float64(a * b)
		}
	}
	for i := range w {
		w[i] /= float32(sum)
	}
	lv := make([]float32, q)
	for i, v := range levels {
		lv[i] = float32(v)
	}
	var idx []int
	var cum, vals []float32
	return func(samples []float32, out []float32) {
		n := len(samples)
		idx = idx[:0]
		for i := range n {
			idx = append(idx, i)
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			x, y := samples[a], samples[b]
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		})
		cum = cum[:0]
		vals = vals[:0]
		var acc float64 // ATen's CPU cumsum accumulates float in double
		for _, i := range idx {
			acc += float64(w[i])
			c := min(max(float32(acc), 0), 1)
			cum = append(cum, c)
			vals = append(vals, samples[i])
		}
		if cum[0] > 0 {
			cum = slices.Insert(cum, 0, 0)
			vals = slices.Insert(vals, 0, vals[0])
		}
		if cum[len(cum)-1] < 1 {
			cum = append(cum, 1)
			vals = append(vals, vals[len(vals)-1])
		}
		for k, p := range lv {
			// upper: the first level strictly above p, at most the last
			up, _ := slices.BinarySearchFunc(cum, p, func(c, t float32) int {
				if c <= t {
					return -1
				}
				return 1
			})
			up = min(up, len(cum)-1)
			lo := up - 1
			wt := (p - cum[lo]) / (cum[up] - cum[lo])
			if wt != wt {
				wt = 0
			}
			out[k] = vals[lo] + wt*(vals[up]-vals[lo])
		}
	}
}
