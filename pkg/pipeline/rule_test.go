package pipeline

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/builtin"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// recorder is an Appender that keeps every sample.
type recorder struct {
	mtx     sync.Mutex
	samples []recorded
}

type recorded struct {
	lset labels.Labels
	t    int64
	v    float64
}

func (r *recorder) Append(lset labels.Labels, t int64, v float64) {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	r.samples = append(r.samples, recorded{lset, t, v})
}

func (r *recorder) reset() []recorded {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	s := r.samples
	r.samples = nil
	return s
}

// find returns the samples whose labels include all of want.
func find(samples []recorded, want ...string) []recorded {
	var out []recorded
next:
	for _, s := range samples {
		for i := 0; i+1 < len(want); i += 2 {
			if s.lset.Get(want[i]) != want[i+1] {
				continue next
			}
		}
		out = append(out, s)
	}
	return out
}

// gen is a synthetic input series: a value per minute from f.
type gen struct {
	lbls labels.Labels
	f    func(t time.Time) float64
	// until, when set, ends the series (no samples after it).
	until time.Time
}

// fakeQuerier answers query_range from generators, on the requested grid.
func fakeQuerier(gens ...gen) datasource.Querier {
	return datasource.QuerierFunc(func(_ context.Context, _ string, start, end time.Time, step time.Duration) (datasource.Result, error) {
		var res datasource.Result
		for _, g := range gens {
			s := datasource.Series{Labels: g.lbls}
			for t := start; !t.After(end); t = t.Add(step) {
				if !g.until.IsZero() && t.After(g.until) {
					break
				}
				s.Samples = append(s.Samples, datasource.Sample{T: t.UnixMilli(), V: g.f(t)})
			}
			res.Series = append(res.Series, s)
		}
		return res, nil
	})
}

func daily(base, amp float64) func(time.Time) float64 {
	return func(t time.Time) float64 {
		x := float64(t.Unix()%86400) / 86400
		noise := math.Sin(float64(t.Unix()/60)*12.9898) * 0.01 * base
		return base + amp*math.Sin(2*math.Pi*x) + noise
	}
}

func testRule(t testing.TB, mod func(*rulefmt.Rule)) *Rule {
	t.Helper()
	spec := rulefmt.Rule{
		Forecast:  "job:load:rate5m",
		Expr:      "load",
		Model:     "default",
		Step:      model.Duration(time.Minute),
		Context:   model.Duration(6 * time.Hour),
		Horizons:  []model.Duration{model.Duration(15 * time.Minute), model.Duration(time.Hour)},
		Quantiles: []float64{0.05, 0.5, 0.95},
		Anomaly:   &rulefmt.Anomaly{Band: []float64{0.05, 0.95}, Direction: rulefmt.DirectionBoth},
	}
	if mod != nil {
		mod(&spec)
	}
	return NewRule(spec, "openanomaly_")
}

func testEnv(q datasource.Querier, app Appender) evalEnv {
	models := forecast.NewRegistry()
	if err := models.Register("default", builtin.Default()); err != nil {
		panic(err)
	}
	return evalEnv{
		querier: q, models: models, appender: app, exposition: NewExposition(),
		metrics: NewMetrics(prometheus.NewRegistry()), interval: time.Minute,
	}
}

var evalTime = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func TestRuleEmitsTheContract(t *testing.T) {
	app := &recorder{}
	env := testEnv(fakeQuerier(gen{lbls: labels.FromStrings("__name__", "load", "instance", "a", "job", "node"), f: daily(10, 3)}), app)
	env.queryOffset = 30 * time.Second
	r := testRule(t, func(r *rulefmt.Rule) { r.Labels = map[string]string{"team": "sre"} })
	ts := evalTime.Add(17 * time.Second)
	if err := r.eval(context.Background(), ts, env); err != nil {
		t.Fatal(err)
	}
	got := app.reset()
	stamp := ts.Add(-30 * time.Second).UnixMilli()
	// y, yhat, lower, upper, score + 2 horizons × 3 quantiles.
	if len(got) != 5+6 {
		t.Fatalf("got %d samples, want 11: %v", len(got), got)
	}
	for _, s := range got {
		if s.t != stamp {
			t.Errorf("%s stamped %d, want %d (t - query_offset)", s.lset, s.t, stamp)
		}
		if math.IsNaN(s.v) || math.IsInf(s.v, 0) {
			t.Errorf("%s has non-finite value %v", s.lset, s.v)
		}
		for _, l := range []string{"instance", "job", "team", "pipeline"} {
			if s.lset.Get(l) == "" {
				t.Errorf("%s lacks label %s", s.lset, l)
			}
		}
		if s.lset.Get("pipeline") != "job:load:rate5m" || s.lset.Get("team") != "sre" {
			t.Errorf("%s: wrong pipeline or rule label", s.lset)
		}
	}
	one := func(name string, extra ...string) float64 {
		t.Helper()
		m := find(got, append([]string{"__name__", name}, extra...)...)
		if len(m) != 1 {
			t.Fatalf("want one %s %v, got %d", name, extra, len(m))
		}
		return m[0].v
	}
	// The newest point is the newest whole minute at or before the stamp.
	newest := time.UnixMilli(stamp).Truncate(time.Minute)
	if y, want := one("openanomaly_y"), daily(10, 3)(newest); math.Abs(y-want) > 1e-9 {
		t.Errorf("y = %v, want the input value %v at %s", y, want, newest)
	}
	lo, yhat, hi := one("openanomaly_yhat_lower"), one("openanomaly_yhat"), one("openanomaly_yhat_upper")
	if !(lo <= yhat && yhat <= hi) {
		t.Errorf("band out of order: %v %v %v", lo, yhat, hi)
	}
	if math.Abs(yhat-one("openanomaly_y")) > 1 {
		t.Errorf("yhat %v far from y %v on a smooth series", yhat, one("openanomaly_y"))
	}
	if s := one("openanomaly_anomaly_score"); s < 0 || s > 1 {
		t.Errorf("score %v on an ordinary point, want within [0, 1]", s)
	}
	for _, hz := range []string{"15m", "1h"} {
		q05, q5, q95 := one("openanomaly_forecast", "horizon", hz, "quantile", "0.05"),
			one("openanomaly_forecast", "horizon", hz, "quantile", "0.5"),
			one("openanomaly_forecast", "horizon", hz, "quantile", "0.95")
		if !(q05 <= q5 && q5 <= q95) {
			t.Errorf("horizon %s quantiles out of order: %v %v %v", hz, q05, q5, q95)
		}
	}
	// The same outputs are on /metrics.
	mfs, err := env.exposition.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.Metric)
	}
	if n != len(got) {
		t.Errorf("exposition has %d series, remote-write got %d", n, len(got))
	}
}

func TestRuleLabelCollisions(t *testing.T) {
	app := &recorder{}
	in := labels.FromStrings("__name__", "load", "pipeline", "ingest", "quantile", "0.99", "instance", "a", "team", "db")
	env := testEnv(fakeQuerier(gen{lbls: in, f: daily(10, 3)}), app)
	r := testRule(t, func(r *rulefmt.Rule) { r.Labels = map[string]string{"team": "sre"} })
	if err := r.eval(context.Background(), evalTime, env); err != nil {
		t.Fatal(err)
	}
	y := find(app.reset(), "__name__", "openanomaly_y")
	if len(y) != 1 {
		t.Fatalf("want one y, got %v", y)
	}
	want := labels.FromStrings("__name__", "openanomaly_y", "exported_pipeline", "ingest", "exported_quantile", "0.99",
		"instance", "a", "pipeline", "job:load:rate5m", "team", "sre")
	if !labels.Equal(y[0].lset, want) {
		t.Errorf("labels = %s, want %s", y[0].lset, want)
	}
}

func TestRuleDuplicateOutputsFail(t *testing.T) {
	app := &recorder{}
	env := testEnv(fakeQuerier(
		gen{lbls: labels.FromStrings("instance", "a"), f: daily(10, 3)},
		gen{lbls: labels.FromStrings("instance", "b"), f: daily(20, 3)},
	), app)
	r := testRule(t, func(r *rulefmt.Rule) { r.Labels = map[string]string{"instance": "agg"} })
	err := r.eval(context.Background(), evalTime, env)
	if err == nil || !strings.Contains(err.Error(), "same output labels") {
		t.Fatalf("want a duplicate output error, got %v", err)
	}
	if got := app.reset(); len(got) != 0 {
		t.Errorf("a failed evaluation emitted %d samples", len(got))
	}
	if st := r.Status(); st.Health != HealthErr || st.LastError == "" {
		t.Errorf("status = %+v, want health err with the error", st)
	}
}

func TestRuleStaleness(t *testing.T) {
	app := &recorder{}
	end := evalTime.Add(90 * time.Second)
	env := testEnv(fakeQuerier(
		gen{lbls: labels.FromStrings("instance", "a"), f: daily(10, 3)},
		gen{lbls: labels.FromStrings("instance", "b"), f: daily(20, 3), until: end},
	), app)
	r := testRule(t, nil)
	if err := r.eval(context.Background(), evalTime, env); err != nil {
		t.Fatal(err)
	}
	first := app.reset()
	if n := len(find(first, "instance", "b")); n != 11 {
		t.Fatalf("first evaluation emitted %d series for b, want 11", n)
	}
	// b's newest sample is 90s after evalTime: still present at +5m, gone
	// once it is more than 5m old.
	for _, ts := range []time.Time{evalTime.Add(5 * time.Minute), evalTime.Add(7 * time.Minute)} {
		if err := r.eval(context.Background(), ts, env); err != nil {
			t.Fatal(err)
		}
	}
	got := app.reset()
	b := find(got, "instance", "b")
	var stale []recorded
	for _, s := range b {
		if value.IsStaleNaN(s.v) {
			stale = append(stale, s)
			if s.t != evalTime.Add(7*time.Minute).UnixMilli() {
				t.Errorf("stale marker for %s at %d, want the evaluation stamp", s.lset, s.t)
			}
		} else if s.t > evalTime.Add(5*time.Minute).UnixMilli() {
			t.Errorf("b still emitted after it was gone: %s", s.lset)
		}
	}
	if len(stale) != 11 {
		t.Errorf("got %d stale markers for b, want 11 (one per output series)", len(stale))
	}
	for _, s := range find(got, "instance", "a") {
		if value.IsStaleNaN(s.v) {
			t.Errorf("live series a got a stale marker: %s", s.lset)
		}
	}
	mfs, _ := env.exposition.Gather()
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "instance" && l.GetValue() == "b" {
					t.Errorf("b still on /metrics: %s", mf.GetName())
				}
			}
		}
	}
}

func TestRuleNonFiniteInputs(t *testing.T) {
	app := &recorder{}
	bad := func(t time.Time) float64 {
		switch (t.Unix() / 60) % 7 {
		case 0:
			return math.NaN()
		case 3:
			return math.Inf(1)
		case 5:
			return math.Float64frombits(value.StaleNaN)
		}
		return daily(10, 3)(t)
	}
	env := testEnv(fakeQuerier(
		gen{lbls: labels.FromStrings("instance", "nan"), f: bad},
		gen{lbls: labels.FromStrings("instance", "const"), f: func(time.Time) float64 { return 42 }},
		gen{lbls: labels.FromStrings("instance", "zero"), f: func(time.Time) float64 { return 0 }},
	), app)
	r := testRule(t, nil)
	ts := evalTime
	for i := range 3 {
		if err := r.eval(context.Background(), ts.Add(time.Duration(i)*time.Minute), env); err != nil {
			t.Fatal(err)
		}
	}
	got := app.reset()
	for _, s := range got {
		if math.IsNaN(s.v) || math.IsInf(s.v, 0) {
			t.Errorf("non-finite output %s = %v", s.lset, s.v)
		}
	}
	for _, inst := range []string{"nan", "const", "zero"} {
		if n := len(find(got, "instance", inst, "__name__", "openanomaly_anomaly_score")); n == 0 {
			t.Errorf("no score for %s", inst)
		}
	}
	for _, s := range find(got, "instance", "const", "__name__", "openanomaly_anomaly_score") {
		if s.v != 0 {
			t.Errorf("constant series scored %v, want 0", s.v)
		}
	}
	if c := testutil.ToFloat64(env.metrics.droppedSamples.WithLabelValues("job:load:rate5m", "inf")); c == 0 {
		t.Error("dropped Inf samples were not counted")
	}
}

func TestRuleScoresSpikeBetweenEvaluations(t *testing.T) {
	app := &recorder{}
	spikeAt := evalTime.Add(3 * time.Minute)
	f := func(t time.Time) float64 {
		v := daily(10, 3)(t)
		if t.Equal(spikeAt) {
			v += 50
		}
		return v
	}
	env := testEnv(fakeQuerier(gen{lbls: labels.FromStrings("instance", "a"), f: f}), app)
	r := testRule(t, nil)
	if err := r.eval(context.Background(), evalTime, env); err != nil {
		t.Fatal(err)
	}
	// The next evaluation, 5 minutes later, sees a normal newest point but
	// must still report the spike 2 minutes earlier.
	if err := r.eval(context.Background(), evalTime.Add(5*time.Minute), env); err != nil {
		t.Fatal(err)
	}
	sc := find(app.reset(), "__name__", "openanomaly_anomaly_score")
	if len(sc) != 2 {
		t.Fatalf("want 2 scores, got %d", len(sc))
	}
	if sc[0].v > 1 {
		t.Errorf("score before the spike = %v, want <= 1", sc[0].v)
	}
	if sc[1].v <= 1 {
		t.Errorf("score after the spike = %v, want > 1", sc[1].v)
	}
}

func TestRuleLimit(t *testing.T) {
	env := testEnv(fakeQuerier(
		gen{lbls: labels.FromStrings("instance", "a"), f: daily(10, 3)},
		gen{lbls: labels.FromStrings("instance", "b"), f: daily(10, 3)},
	), &recorder{})
	env.limit = 1
	r := testRule(t, nil)
	err := r.eval(context.Background(), evalTime, env)
	if err == nil || !strings.Contains(err.Error(), "limit of 1") {
		t.Fatalf("want a limit error, got %v", err)
	}
	// Nothing over the limit is kept in memory.
	if r.hist != nil {
		t.Errorf("a rule over its limit kept a history of %d series", len(r.hist.series))
	}
}

// TestRuleLimitCountsSeriesThatLeft: with incremental reads, series that
// left recently count against the limit as a full read would count them,
// and the rule then keeps no history.
func TestRuleLimitCountsSeriesThatLeft(t *testing.T) {
	q := &rangeLog{gens: []windowedGen{
		{lbls: labels.FromStrings("instance", "a"), f: daily(10, 3), until: evalTime.Add(-10 * time.Minute)},
		{lbls: labels.FromStrings("instance", "b"), f: daily(10, 3), since: evalTime.Add(-5 * time.Minute)},
	}}
	env := testEnv(q, &recorder{})
	env.limit = 1
	r := testRule(t, nil)
	// The first, full read returns both: over the limit.
	if err := r.eval(context.Background(), evalTime, env); err == nil {
		t.Fatal("two series passed a limit of 1")
	}
	env.limit = 2
	if err := r.eval(context.Background(), evalTime.Add(time.Minute), env); err != nil {
		t.Fatal(err)
	}
	// The next read returns only b, but a still has points in the context.
	env.limit = 1
	err := r.eval(context.Background(), evalTime.Add(2*time.Minute), env)
	if err == nil || !strings.Contains(err.Error(), "2 series") {
		t.Fatalf("want a limit error for 2 series, got %v", err)
	}
	if r.hist != nil {
		t.Error("the rule kept its history over the limit")
	}
}

func TestRuleTooLittleDataIsSkippedAndCounted(t *testing.T) {
	app := &recorder{}
	env := testEnv(fakeQuerier(
		gen{lbls: labels.FromStrings("instance", "short"), f: func(t time.Time) float64 {
			if t.Before(evalTime.Add(-3 * time.Minute)) {
				return math.NaN()
			}
			return 1
		}},
		gen{lbls: labels.FromStrings("instance", "long"), f: daily(10, 3)},
	), app)
	r := testRule(t, nil)
	if err := r.eval(context.Background(), evalTime, env); err != nil {
		t.Fatal(err)
	}
	got := app.reset()
	if n := len(find(got, "instance", "short")); n != 0 {
		t.Errorf("a series with 4 points emitted %d samples", n)
	}
	if n := len(find(got, "instance", "long")); n != 11 {
		t.Errorf("long series emitted %d samples, want 11", n)
	}
	if c := testutil.ToFloat64(env.metrics.skippedSeries.WithLabelValues("job:load:rate5m", ReasonInsufficientData)); c != 1 {
		t.Errorf("insufficient_data skips = %v, want 1", c)
	}
}

func TestRuleNeverStampsTheFuture(t *testing.T) {
	app := &recorder{}
	env := testEnv(fakeQuerier(gen{lbls: labels.FromStrings("instance", "a"), f: daily(10, 3)}), app)
	r := testRule(t, func(r *rulefmt.Rule) {
		r.Horizons = []model.Duration{model.Duration(24 * time.Hour)}
	})
	if err := r.eval(context.Background(), evalTime, env); err != nil {
		t.Fatal(err)
	}
	for _, s := range app.reset() {
		if s.t > evalTime.UnixMilli() {
			t.Errorf("%s stamped %s, after the evaluation time", s.lset, time.UnixMilli(s.t))
		}
	}
}
