package pipeline

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
	"github.com/openanomaly/openanomaly/pkg/series"
)

// Covariates (rulefmt.Covariate) are read in full at every evaluation, on
// the target's grid: a past-only one over the target's range, a
// known-future one further, up to the longest horizon the evaluation's
// requests forecast. A covariate whose expr returns one series goes with
// every target series; when it returns several, a target series takes the
// one whose labels (all of them but __name__) have the same values on the
// target (a label the target lacks counts as empty), so an expr aggregated
// `by` the labels to match on lines up with the targets that carry them. A
// target with no such series gets NaN for that covariate; one with more than
// one fails the evaluation (it is ambiguous: aggregate the covariate by the
// labels that tell the targets apart).

// covariateData is one covariate's aligned series and how to match them.
type covariateData struct {
	spec   rulefmt.Covariate
	series []covariateSeries
	// sets groups the series by their label names (without __name__):
	// for each set, the series by their values of those names.
	sets []covariateSet
	n    int // grid points of every series
}

type covariateSeries struct {
	lset   labels.Labels
	values []float64
}

type covariateSet struct {
	names []string
	byKey map[string][]int
}

// readCovariates reads each of the rule's covariates on the grid from
// startMs: n points for a past-only one, n+extra for a known-future one.
func (r *Rule) readCovariates(ctx context.Context, env evalEnv, startMs, stepMs int64, n, extra int, dropped *series.Dropped) ([]covariateData, error) {
	name := r.spec.Forecast
	step := time.Duration(stepMs) * time.Millisecond
	out := make([]covariateData, len(r.spec.Covariates))
	for ci, c := range r.spec.Covariates {
		count := n
		if c.KnownFuture {
			count += extra
		}
		endMs := startMs + int64(count-1)*stepMs
		res, err := env.querier.QueryRange(ctx, c.Expr, time.UnixMilli(startMs), time.UnixMilli(endMs), step)
		if err != nil {
			return nil, fmt.Errorf("covariate %q: query: %w", c.Name, err)
		}
		if len(res.Warnings) > 0 {
			env.metrics.partialOrWarned.WithLabelValues(name, "warning").Inc()
			env.log().Warn("Covariate query returned warnings", "pipeline", name, "covariate", c.Name, "count", len(res.Warnings),
				"warnings", res.Warnings[:min(len(res.Warnings), maxLoggedWarnings)])
		}
		if res.Partial {
			env.metrics.partialOrWarned.WithLabelValues(name, "partial").Inc()
			return nil, fmt.Errorf("covariate %q: query: %w", c.Name, ErrPartialResponse)
		}
		if env.limit > 0 && len(res.Series) > env.limit {
			return nil, fmt.Errorf("covariate %q: query returned %d series, more than the group's limit of %d", c.Name, len(res.Series), env.limit)
		}
		d := covariateData{spec: c, n: count}
		for _, s := range res.Series {
			vals, dr := series.Align(s.Samples, startMs, stepMs, count)
			dropped.Stale += dr.Stale
			dropped.NaN += dr.NaN
			dropped.Inf += dr.Inf
			d.series = append(d.series, covariateSeries{lset: s.Labels, values: vals})
		}
		d.index()
		out[ci] = d
	}
	return out, nil
}

// index builds sets (for more than one series).
func (d *covariateData) index() {
	if len(d.series) < 2 {
		return
	}
	bySet := map[string]int{}
	for i, s := range d.series {
		var names []string
		s.lset.Range(func(l labels.Label) {
			if l.Name != labels.MetricName {
				names = append(names, l.Name)
			}
		})
		id := strings.Join(names, "\xff")
		k, ok := bySet[id]
		if !ok {
			k = len(d.sets)
			bySet[id] = k
			d.sets = append(d.sets, covariateSet{names: names, byKey: map[string][]int{}})
		}
		key := valuesKey(s.lset, names)
		d.sets[k].byKey[key] = append(d.sets[k].byKey[key], i)
	}
}

func valuesKey(lset labels.Labels, names []string) string {
	var b strings.Builder
	for _, n := range names {
		b.WriteString(lset.Get(n))
		b.WriteByte(0xff)
	}
	return b.String()
}

// match returns the values of the covariate series that goes with the
// target series of labels target (n or n+extra points), nil when none does.
func (d *covariateData) match(target labels.Labels) ([]float64, error) {
	switch len(d.series) {
	case 0:
		return nil, nil
	case 1:
		return d.series[0].values, nil
	}
	found := -1
	for _, set := range d.sets {
		for _, i := range set.byKey[valuesKey(target, set.names)] {
			if found >= 0 {
				return nil, fmt.Errorf("covariate %q: series %s and %s both match the target series %s; aggregate the covariate by the labels that tell the targets apart",
					d.spec.Name, d.series[found].lset, d.series[i].lset, target)
			}
			found = i
		}
	}
	if found < 0 {
		return nil, nil
	}
	return d.series[found].values, nil
}

// covariatesFor returns the covariates of a history of length hist with a
// request horizon of horizon steps: a past-only covariate's values over
// the history, a known-future one's also over the horizon; NaN where the
// series has none or there is no series.
func covariatesFor(matched [][]float64, covs []covariateData, hist, horizon int) []forecast.Covariate {
	out := make([]forecast.Covariate, len(covs))
	for ci, d := range covs {
		want := hist
		if d.spec.KnownFuture {
			want += horizon
		}
		vals := make([]float64, want)
		src := matched[ci]
		for i := range vals {
			vals[i] = math.NaN()
			if i < len(src) {
				vals[i] = src[i]
			}
		}
		out[ci] = forecast.Covariate{Name: d.spec.Name, KnownFuture: d.spec.KnownFuture, Values: vals}
	}
	return out
}
