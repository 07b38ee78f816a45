package pipeline

import (
	"math"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/series"
)

// History between evaluations (incremental reads).
//
// A rule keeps the step-aligned values of every input series over its
// context. The next evaluation asks the store only for the grid points from
// a little before the previous evaluation's newest point (overlap, for
// samples that arrived late) to its own newest point, and merges them in.
// The result is the same set of series with the same values that a full read
// of the context would give: a series stays in the history while any of its
// points is inside the context, and leaves with its last point. Memory per
// series is one float64 per grid point of the context.
//
// The first evaluation after a start, after a failed read, or after the
// rule's expr, step or context change reads the whole context.

// minOverlap is the least span re-read before the previous newest point:
// samples that reach the store later than this (or minOverlapPoints steps)
// after their timestamp are missed until they leave the context, where a
// full read would see them. Stores that ingest later than that need the
// group's query_offset, which moves the whole evaluation back in time.
const minOverlap = time.Minute

// minOverlapPoints is the least number of grid points re-read.
const minOverlapPoints = 3

// Read kinds, the `kind` label of openanomaly_pipeline_reads_total.
const (
	ReadFull        = "full"
	ReadIncremental = "incremental"
)

// history is a rule's step-aligned input values over its context.
type history struct {
	// key identifies what the values are of: expr, step and context.
	key     historyKey
	startMs int64 // first grid point
	n       int   // grid points, context/step
	series  map[uint64]*historySeries
}

type historyKey struct {
	expr          string
	step, context time.Duration
}

type historySeries struct {
	lset   labels.Labels // input labels, as the store returned them
	values []float64     // n values on the grid from startMs; NaN where none
}

// endMs is the newest grid point the history covers.
func (h *history) endMs(stepMs int64) int64 { return h.startMs + int64(h.n-1)*stepMs }

// readRange says which part of the grid [startMs, startMs+(n-1)·step] must be
// read, given the previous history: the whole grid when h cannot be reused,
// else from the overlap before h's newest point.
func (h *history) readRange(key historyKey, startMs, stepMs int64, n int) (fromMs int64, incremental bool) {
	if h == nil || h.key != key || h.n != n || mod(h.startMs-startMs, stepMs) != 0 {
		return startMs, false
	}
	newEndMs := startMs + int64(n-1)*stepMs
	// Evaluating at an earlier time than before (a replay): read it all.
	if newEndMs < h.endMs(stepMs) {
		return startMs, false
	}
	overlap := max(int64(minOverlapPoints), ceilDiv(minOverlap.Milliseconds(), stepMs))
	from := h.endMs(stepMs) - (overlap-1)*stepMs
	// Nothing of the old history is left in the new context (a long pause):
	// a full read costs the same.
	if from <= startMs {
		return startMs, false
	}
	return from, true
}

// merge builds the history for the grid [startMs, +n·step) from the previous
// history (for the points before fromMs) and what was read from fromMs on.
// It reuses the previous history's slices, so the previous history must not
// be used afterwards. Samples kept from the model are added to dropped.
func merge(prev *history, key historyKey, read []datasource.Series, startMs, fromMs, stepMs int64, n int, dropped *series.Dropped) *history {
	h := &history{key: key, startMs: startMs, n: n, series: make(map[uint64]*historySeries, len(read))}
	// Grid index of fromMs in the new history; the read covers [k, n).
	k := int((fromMs - startMs) / stepMs)
	readN := n - k
	for _, s := range read {
		vals, d := series.Align(s.Samples, fromMs, stepMs, readN)
		dropped.Stale += d.Stale
		dropped.NaN += d.NaN
		dropped.Inf += d.Inf
		hs := &historySeries{lset: s.Labels}
		if k == 0 {
			hs.values = vals
		} else {
			var old []float64
			if prev != nil {
				if ps := prev.lookup(s.Labels); ps != nil {
					old = ps.values
				}
			}
			hs.values = shifted(old, prev, startMs, stepMs, n, k)
			copy(hs.values[k:], vals)
		}
		h.series[s.Labels.Hash()] = hs
	}
	if k > 0 && prev != nil {
		// Series the read did not return have no point from fromMs on;
		// they stay while their older points are inside the context.
		for hash, ps := range prev.series {
			if h.lookup(ps.lset) != nil {
				continue
			}
			vals := shifted(ps.values, prev, startMs, stepMs, n, k)
			for i := k; i < n; i++ {
				vals[i] = math.NaN()
			}
			if series.Finite(vals[:k]) == 0 {
				continue
			}
			h.series[hash] = &historySeries{lset: ps.lset, values: vals}
		}
	}
	return h
}

// sorted returns the series in label order, so evaluations are
// deterministic.
func (h *history) sorted() []*historySeries {
	out := make([]*historySeries, 0, len(h.series))
	for _, s := range h.series {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *historySeries) int { return labels.Compare(a.lset, b.lset) })
	return out
}

// lookup finds a series by its labels.
func (h *history) lookup(lset labels.Labels) *historySeries {
	if s, ok := h.series[lset.Hash()]; ok && labels.Equal(s.lset, lset) {
		return s
	}
	return nil
}

// shifted returns old (on prev's grid) moved onto the grid from startMs, n
// points long, with its first k points taken from old and the rest left for
// the caller. readRange guarantees the new grid starts at or after prev's and
// that its first k points are inside prev's grid. old's backing array is
// reused: old must not be used afterwards. A nil old gives NaN.
func shifted(old []float64, prev *history, startMs, stepMs int64, n, k int) []float64 {
	if old == nil {
		out := make([]float64, n)
		for i := range out {
			out[i] = math.NaN()
		}
		return out
	}
	// The new grid's point i is the old grid's point i+shift.
	shift := int((startMs - prev.startMs) / stepMs)
	copy(old, old[shift:shift+k])
	return old[:n]
}
