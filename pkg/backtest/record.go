package backtest

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/openanomaly/openanomaly/pkg/pipeline"
)

// ruleOut is everything one pipeline emitted over one unit, by evaluation:
// one column of values (NaN where nothing was emitted) per emitted series.
type ruleOut struct {
	rule   unitRule
	prefix string
	// stamps are the evaluations' stamps (ms), in order.
	stamps []int64
	cols   map[uint64]*column
	series map[uint64]*seriesOut
	// evalSeries counts the y samples of the current evaluation: the input
	// points it scored.
	evalSeries int
	failed     int64
	firstErr   string
}

// seriesOut is one input series' outputs.
type seriesOut struct {
	base                  labels.Labels // output labels without __name__, horizon, quantile
	y, yhat, lo, hi, scor *column
	// fc holds the forecast columns by horizon label, then quantile label.
	fc map[string]map[string]*column
}

// column is one emitted series over the evaluations.
type column struct {
	lset labels.Labels
	v    []float64
}

func newRuleOut(r unitRule, prefix string) *ruleOut {
	return &ruleOut{rule: r, prefix: prefix, cols: map[uint64]*column{}, series: map[uint64]*seriesOut{}}
}

// begin starts the evaluation stamped at stamp (ms).
func (o *ruleOut) begin(stamp int64) {
	o.stamps = append(o.stamps, stamp)
	o.evalSeries = 0
}

// set records v for lset in the current evaluation.
func (o *ruleOut) set(lset labels.Labels, v float64) {
	h := lset.Hash()
	c, ok := o.cols[h]
	if !ok || !labels.Equal(c.lset, lset) {
		c = o.newColumn(lset)
		if !ok {
			o.cols[h] = c
		}
	}
	i := len(o.stamps) - 1
	for len(c.v) < i {
		c.v = append(c.v, math.NaN())
	}
	if len(c.v) == i {
		c.v = append(c.v, v)
	} else {
		c.v[i] = v
	}
}

// newColumn files a new emitted series under its input series.
func (o *ruleOut) newColumn(lset labels.Labels) *column {
	c := &column{lset: lset}
	b := labels.NewBuilder(lset)
	name := lset.Get(labels.MetricName)
	horizon, quantile := lset.Get(pipeline.LabelHorizon), lset.Get(pipeline.LabelQuantile)
	b.Del(labels.MetricName, pipeline.LabelHorizon, pipeline.LabelQuantile)
	base := b.Labels()
	bh := base.Hash()
	s, ok := o.series[bh]
	if !ok {
		s = &seriesOut{base: base, fc: map[string]map[string]*column{}}
		o.series[bh] = s
	}
	switch strings.TrimPrefix(name, o.prefix) {
	case pipeline.SuffixY:
		s.y = c
	case pipeline.SuffixYhat:
		s.yhat = c
	case pipeline.SuffixLower:
		s.lo = c
	case pipeline.SuffixUpper:
		s.hi = c
	case pipeline.SuffixScore:
		s.scor = c
	case pipeline.SuffixForecast:
		if s.fc[horizon] == nil {
			s.fc[horizon] = map[string]*column{}
		}
		s.fc[horizon][quantile] = c
	}
	return c
}

// sortedSeries returns the input series in label order.
func (o *ruleOut) sortedSeries() []*seriesOut {
	out := make([]*seriesOut, 0, len(o.series))
	for _, s := range o.series {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *seriesOut) int { return labels.Compare(a.base, b.base) })
	return out
}

// values returns c's values padded to one per evaluation (NaN for a nil
// column).
func (o *ruleOut) values(c *column) []float64 {
	out := make([]float64, len(o.stamps))
	n := 0
	if c != nil {
		n = copy(out, c.v)
	}
	for i := n; i < len(out); i++ {
		out[i] = math.NaN()
	}
	return out
}

// recorder is the Appender of one pipeline's replay: it files every sample
// under its evaluation and passes everything on to next (remote-write).
type recorder struct {
	out  *ruleOut
	next pipeline.Appender
}

// Append implements pipeline.Appender.
func (r *recorder) Append(lset labels.Labels, t int64, v float64) {
	if r.next != nil {
		r.next.Append(lset, t, v)
	}
	if value.IsStaleNaN(v) {
		// A series that is gone: the column simply has no value here.
		return
	}
	if lset.Get(labels.MetricName) == r.out.prefix+pipeline.SuffixY {
		r.out.evalSeries++
	}
	r.out.set(lset, v)
}

// horizonLabels returns a series' forecast horizons sorted by duration.
func (s *seriesOut) horizonLabels() []string {
	hs := sortedKeys(s.fc)
	slices.SortFunc(hs, func(a, b string) int {
		da, _ := model.ParseDuration(a)
		db, _ := model.ParseDuration(b)
		return cmpInt(int64(da), int64(db))
	})
	return hs
}

// quantileLabels returns the quantile labels of a horizon sorted by level.
func quantileLabels(m map[string]*column) ([]string, []float64) {
	ks := sortedKeys(m)
	qs := make([]float64, len(ks))
	for i, k := range ks {
		qs[i], _ = strconv.ParseFloat(k, 64)
	}
	idx := make([]int, len(ks))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case qs[a] < qs[b]:
			return -1
		case qs[a] > qs[b]:
			return 1
		}
		return 0
	})
	sk, sq := make([]string, len(ks)), make([]float64, len(ks))
	for i, j := range idx {
		sk[i], sq[i] = ks[j], qs[j]
	}
	return sk, sq
}
