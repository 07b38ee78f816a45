package pipeline

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/builtin"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// windowedGen is a generator that exists only in [since, until) and has a
// hole in [holeFrom, holeTo); a stale marker ends each of its runs.
type windowedGen struct {
	lbls             labels.Labels
	f                func(time.Time) float64
	since, until     time.Time
	holeFrom, holeTo time.Time
}

func (g windowedGen) at(t time.Time) (float64, bool) {
	if (!g.since.IsZero() && t.Before(g.since)) || (!g.until.IsZero() && !t.Before(g.until)) {
		return 0, false
	}
	if !g.holeFrom.IsZero() && !t.Before(g.holeFrom) && t.Before(g.holeTo) {
		return 0, false
	}
	return g.f(t), true
}

// rangeLog is a Querier over windowed generators that records the ranges it
// was asked for. Samples sit 10s after each grid point (as scrapes do) and
// are found by the grid point after them, as Prometheus' lookback finds them.
type rangeLog struct {
	gens  []windowedGen
	asked [][2]time.Time
	fail  bool
}

func (q *rangeLog) QueryRange(_ context.Context, _ string, start, end time.Time, step time.Duration) (datasource.Result, error) {
	q.asked = append(q.asked, [2]time.Time{start, end})
	if q.fail {
		return datasource.Result{}, errors.New("store down")
	}
	var res datasource.Result
	for _, g := range q.gens {
		s := datasource.Series{Labels: g.lbls}
		for t := start.Add(-step); !t.After(end); t = t.Add(time.Minute) {
			if v, ok := g.at(t); ok {
				s.Samples = append(s.Samples, datasource.Sample{T: t.Add(10 * time.Second).UnixMilli(), V: v})
			} else if _, was := g.at(t.Add(-time.Minute)); was {
				s.Samples = append(s.Samples, datasource.Sample{T: t.Add(10 * time.Second).UnixMilli(), V: math.Float64frombits(value.StaleNaN)})
			}
		}
		// query_range leaves out series without a point in the range.
		if len(s.Samples) > 0 && !(len(s.Samples) == 1 && value.IsStaleNaN(s.Samples[0].V)) {
			res.Series = append(res.Series, s)
		}
	}
	return res, nil
}

// sameHistory fails unless a and b hold the same series with the same values.
func sameHistory(t *testing.T, when string, a, b *history) {
	t.Helper()
	if a.startMs != b.startMs || a.n != b.n {
		t.Fatalf("%s: grids differ: start %d n %d vs start %d n %d", when, a.startMs, a.n, b.startMs, b.n)
	}
	if len(a.series) != len(b.series) {
		t.Fatalf("%s: %d series in the incremental history, %d in a full read", when, len(a.series), len(b.series))
	}
	for _, s := range a.series {
		o := b.lookup(s.lset)
		if o == nil {
			t.Fatalf("%s: %s only in the incremental history", when, s.lset)
		}
		for i := range s.values {
			x, y := s.values[i], o.values[i]
			if x != y && !(math.IsNaN(x) && math.IsNaN(y)) {
				t.Fatalf("%s: %s point %d: incremental %v, full read %v", when, s.lset, i, x, y)
			}
		}
	}
}

// TestRuleIncrementalReadsEqualFullReads evaluates a rule over two hours,
// sometimes one step at a time, sometimes after a pause, while series come,
// go and have holes; after every evaluation its kept history must equal
// what a fresh rule reading the whole context finds, and so must its
// outputs.
func TestRuleIncrementalReadsEqualFullReads(t *testing.T) {
	t0 := evalTime
	q := &rangeLog{gens: []windowedGen{
		{lbls: labels.FromStrings("instance", "steady"), f: daily(10, 3)},
		{lbls: labels.FromStrings("instance", "leaves"), f: daily(20, 5), until: t0.Add(20 * time.Minute)},
		{lbls: labels.FromStrings("instance", "arrives"), f: daily(5, 1), since: t0.Add(30 * time.Minute)},
		{lbls: labels.FromStrings("instance", "holey"), f: daily(50, 10), holeFrom: t0.Add(10 * time.Minute), holeTo: t0.Add(25 * time.Minute)},
	}}
	spec := func(r *rulefmt.Rule) { r.Context = model.Duration(time.Hour) }
	inc := testRule(t, spec)
	// Models that fit at every call: the comparison is of the inputs, and
	// a fresh rule's model has no fitted parameters to reuse.
	env := testEnv(q, &recorder{})
	env.models = refittingModels(t)
	incApp := &recorder{}
	env.appender = incApp

	var times []time.Time
	for m := 0; m <= 120; m++ {
		switch {
		case m > 40 && m < 55: // a pause of 15 minutes
		case m > 90 && m%3 != 0: // every third minute
		default:
			times = append(times, t0.Add(time.Duration(m)*time.Minute+20*time.Second))
		}
	}
	sawLeave := false
	for i, ts := range times {
		q.asked = nil
		if err := inc.eval(context.Background(), ts, env); err != nil {
			t.Fatalf("incremental evaluation at %s: %v", ts, err)
		}
		asked := q.asked[0]
		if i > 0 {
			// Only the overlap and what is new: the gap since the previous
			// evaluation plus 3 steps, never the hour of context.
			want := ts.Truncate(time.Minute).Sub(times[i-1].Truncate(time.Minute)) + 2*time.Minute
			if got := asked[1].Sub(asked[0]); got != want {
				t.Errorf("evaluation %d at %s read %s, want %s", i, ts.Format(time.TimeOnly), got, want)
			}
		} else if got := asked[1].Sub(asked[0]); got != 59*time.Minute {
			t.Errorf("first evaluation read %s, want the whole context", got)
		}

		full := testRule(t, spec)
		fullApp := &recorder{}
		fenv := testEnv(q, fullApp)
		fenv.models = refittingModels(t)
		if err := full.eval(context.Background(), ts, fenv); err != nil {
			t.Fatalf("full evaluation at %s: %v", ts, err)
		}
		when := ts.Format(time.TimeOnly)
		sameHistory(t, when, inc.hist, full.hist)
		if inc.hist.lookup(labels.FromStrings("instance", "leaves")) == nil && i > 0 {
			sawLeave = true
		}

		// After a pause the incremental rule judges every new point with
		// forecasts from before the first of them (DESIGN.md §3); a fresh
		// rule only the newest. Their y and forecasts agree always, the
		// band and score only after one step.
		oneStep := i == 0 || ts.Sub(times[i-1]) == time.Minute
		got, want := outputs(incApp.reset(), oneStep), outputs(fullApp.reset(), oneStep)
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s: %s = %v (present %v) incrementally, %v from a full read", when, k, g, ok, v)
			}
		}
		for k := range got {
			if _, ok := want[k]; !ok {
				t.Errorf("%s: %s only from the incremental rule", when, k)
			}
		}
	}
	if !sawLeave {
		t.Error("the series that left was never forgotten")
	}
	if _, ok := inc.hist.series[labels.FromStrings("instance", "arrives").Hash()]; !ok {
		t.Error("the series that arrived is not in the history")
	}
	reads := func(kind string) float64 {
		return testutil.ToFloat64(env.metrics.reads.WithLabelValues("job:load:rate5m", kind))
	}
	if reads(ReadFull) != 1 || int(reads(ReadIncremental)) != len(times)-1 {
		t.Errorf("reads: full %v, incremental %v; want 1 and %d", reads(ReadFull), reads(ReadIncremental), len(times)-1)
	}
}

// outputs maps each emitted series but stale markers to its value; with
// band false, only y and the forecasts.
func outputs(samples []recorded, band bool) map[string]float64 {
	out := map[string]float64{}
	for _, s := range samples {
		name := s.lset.Get(labels.MetricName)
		if value.IsStaleNaN(s.v) || (!band && name != "openanomaly_y" && name != "openanomaly_forecast") {
			continue
		}
		out[s.lset.String()] = s.v
	}
	return out
}

// TestRuleHistoryAfterFailuresAndReloads: a failed read keeps the history
// for the next evaluation; a reload that keeps expr, step and context keeps
// it too, and one that changes any of them reads the whole context again.
func TestRuleHistoryAfterFailuresAndReloads(t *testing.T) {
	q := &rangeLog{gens: []windowedGen{{lbls: labels.FromStrings("instance", "a"), f: daily(10, 3)}}}
	env := testEnv(q, &recorder{})
	r := testRule(t, nil)
	span := func() time.Duration { return q.asked[len(q.asked)-1][1].Sub(q.asked[len(q.asked)-1][0]) }

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(r.eval(context.Background(), evalTime, env))
	if span() != 6*time.Hour-time.Minute {
		t.Fatalf("first read spans %s", span())
	}
	q.fail = true
	if err := r.eval(context.Background(), evalTime.Add(time.Minute), env); err == nil {
		t.Fatal("evaluation against a failing store succeeded")
	}
	q.fail = false
	must(r.eval(context.Background(), evalTime.Add(2*time.Minute), env))
	if span() != 4*time.Minute {
		t.Errorf("after a failed read: read %s, want the 2 new minutes and the overlap", span())
	}

	for _, tc := range []struct {
		name string
		mod  func(*rulefmt.Rule)
		full bool
	}{
		{"same data, new labels", func(r *rulefmt.Rule) { r.Labels = map[string]string{"team": "x"} }, false},
		{"new expr", func(r *rulefmt.Rule) { r.Expr = "load * 2" }, true},
		{"new step", func(r *rulefmt.Rule) { r.Step = model.Duration(2 * time.Minute) }, true},
		{"new context", func(r *rulefmt.Rule) { r.Context = model.Duration(3 * time.Hour) }, true},
	} {
		next := testRule(t, tc.mod)
		next.copyState(r)
		must(next.eval(context.Background(), evalTime.Add(3*time.Minute), env))
		ctx := time.Duration(next.spec.Context) - time.Duration(next.spec.Step)
		if full := span() == ctx; full != tc.full {
			t.Errorf("%s: read %s; want a full read: %v", tc.name, span(), tc.full)
		}
	}
}

// refittingModels has the default model with fitting at every call.
func refittingModels(t *testing.T) *forecast.Registry {
	t.Helper()
	cfg := config.DefaultBuiltinConfig
	cfg.RefitInterval = 0
	m, err := builtin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	models := forecast.NewRegistry()
	if err := models.Register("default", m); err != nil {
		t.Fatal(err)
	}
	return models
}
