package pipeline

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/builtin"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// covModel takes covariates and records the requests; it forecasts each
// series' last finite point.
type covModel struct {
	mu   sync.Mutex
	reqs []forecast.Request
}

func (m *covModel) TakesCovariates() bool { return true }

func (m *covModel) Forecast(_ context.Context, req forecast.Request) ([]forecast.Forecast, error) {
	m.mu.Lock()
	m.reqs = append(m.reqs, req)
	m.mu.Unlock()
	out := make([]forecast.Forecast, len(req.Histories))
	for i, h := range req.Histories {
		v := 0.0
		for j := len(h) - 1; j >= 0; j-- {
			if !math.IsNaN(h[j]) {
				v = h[j]
				break
			}
		}
		out[i].Values = make([][]float64, len(req.Quantiles))
		for k := range out[i].Values {
			out[i].Values[k] = make([]float64, req.Horizon)
			for s := range req.Horizon {
				out[i].Values[k][s] = v + float64(k)
			}
		}
	}
	return out, nil
}

type queried struct {
	expr       string
	start, end time.Time
}

// covQuerier answers each expr from its generators and records the ranges.
func covQuerier(byExpr map[string][]gen, log *[]queried) datasource.Querier {
	var mu sync.Mutex
	return datasource.QuerierFunc(func(ctx context.Context, expr string, start, end time.Time, step time.Duration) (datasource.Result, error) {
		mu.Lock()
		*log = append(*log, queried{expr, start, end})
		mu.Unlock()
		return fakeQuerier(byExpr[expr]...).QueryRange(ctx, expr, start, end, step)
	})
}

func minutes(base float64) func(time.Time) float64 {
	return func(t time.Time) float64 { return base + float64(t.Sub(evalTime)/time.Minute) }
}

func covariateRule(t *testing.T) *Rule {
	return testRule(t, func(r *rulefmt.Rule) {
		r.Model = "cov"
		r.Context = model.Duration(time.Hour)
		r.Horizons = r.Horizons[:1] // 15m
		r.Covariates = []rulefmt.Covariate{
			{Name: "planned", Expr: "planned_load", KnownFuture: true},
			{Name: "temp", Expr: "temp"},
		}
	})
}

// Covariates are read on the target's grid (a known-future one up to the
// longest horizon ahead), matched to the targets by their shared labels
// (one series goes with every target), NaN for a target without one, and
// passed with each request aligned to its histories.
func TestRuleCovariatesAlignAndMatch(t *testing.T) {
	inst := func(i string) labels.Labels { return labels.FromStrings("__name__", "load", "instance", i, "job", "x") }
	var log []queried
	q := covQuerier(map[string][]gen{
		"load": {{lbls: inst("a"), f: minutes(100)}, {lbls: inst("b"), f: minutes(200)}, {lbls: inst("c"), f: minutes(300)}},
		"planned_load": {
			{lbls: labels.FromStrings("instance", "a"), f: minutes(1000)},
			{lbls: labels.FromStrings("instance", "b"), f: minutes(2000)},
		},
		"temp": {{lbls: labels.FromStrings("__name__", "temp", "site", "x"), f: minutes(-50)}},
	}, &log)
	env := testEnv(q, &recorder{})
	m := &covModel{}
	if err := env.models.Register("cov", m); err != nil {
		t.Fatal(err)
	}
	r := covariateRule(t)
	if err := r.eval(context.Background(), evalTime, env); err != nil {
		t.Fatal(err)
	}
	// The target and the past-only covariate over the context's 60
	// points; the known-future one 15 steps further.
	ranges := map[string]queried{}
	for _, l := range log {
		ranges[l.expr] = l
	}
	start := evalTime.Add(-59 * time.Minute)
	if g := ranges["load"]; !g.start.Equal(start) || !g.end.Equal(evalTime) {
		t.Errorf("target read %v", g)
	}
	if g := ranges["temp"]; !g.start.Equal(start) || !g.end.Equal(evalTime) {
		t.Errorf("past-only covariate read %v", g)
	}
	if g := ranges["planned_load"]; !g.start.Equal(start) || !g.end.Equal(evalTime.Add(15*time.Minute)) {
		t.Errorf("known-future covariate read %v, want up to the stamp + 15m", g)
	}
	if len(m.reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(m.reqs))
	}
	for _, req := range m.reqs {
		if len(req.Covariates) != 3 {
			t.Fatalf("request with %d covariate lists for 3 series", len(req.Covariates))
		}
		for i, base := range []float64{1000, 2000, math.NaN()} {
			hist := req.Histories[i]
			covs := req.Covariates[i]
			if len(covs) != 2 || covs[0].Name != "planned" || !covs[0].KnownFuture || covs[1].Name != "temp" || covs[1].KnownFuture {
				t.Fatalf("series %d: covariates %+v", i, covs)
			}
			planned, temp := covs[0].Values, covs[1].Values
			if len(planned) != len(hist)+req.Horizon || len(temp) != len(hist) {
				t.Fatalf("series %d: %d and %d covariate values for a history of %d, horizon %d", i, len(planned), len(temp), len(hist), req.Horizon)
			}
			for j := range planned {
				// point j is at start + j minutes: the target's
				// value there is base + j - 59.
				want := base + float64(j) - 59
				if !(planned[j] == want || math.IsNaN(base) && math.IsNaN(planned[j])) {
					t.Fatalf("series %d: planned[%d] = %g, want %g", i, j, planned[j], want)
				}
			}
			for j := range temp {
				if want := -50 + float64(j) - 59; temp[j] != want {
					t.Fatalf("series %d: temp[%d] = %g, want %g (one series goes with every target)", i, j, temp[j], want)
				}
			}
			if len(hist) > 0 && hist[len(hist)-1] != 100*float64(i+1)+float64(len(hist))-60 {
				t.Errorf("series %d: history ends with %g", i, hist[len(hist)-1])
			}
		}
	}
	// The future request reaches 15 steps past the stamp.
	if got := m.reqs[0].Horizon + m.reqs[1].Horizon; got != 16 {
		t.Errorf("horizons %d and %d, want 1 and 15", m.reqs[0].Horizon, m.reqs[1].Horizon)
	}

	// A covariate two of whose series match one target fails the
	// evaluation, naming them.
	amb := covQuerier(map[string][]gen{
		"load":         {{lbls: inst("a"), f: minutes(100)}},
		"planned_load": {{lbls: labels.FromStrings("instance", "a"), f: minutes(1)}, {lbls: labels.FromStrings("job", "x"), f: minutes(2)}},
		"temp":         {},
	}, &log)
	env.querier = amb
	err := covariateRule(t).eval(context.Background(), evalTime, env)
	if err == nil || !strings.Contains(err.Error(), `covariate "planned": series {instance="a"} and {job="x"} both match the target series`) {
		t.Errorf("ambiguous covariate: %v", err)
	}
}

// A rule with covariates is refused at load when its model takes none.
func TestManagerRefusesCovariatesOnModelsThatTakeNone(t *testing.T) {
	models := forecast.NewRegistry()
	if err := models.Register("default", builtin.Default()); err != nil {
		t.Fatal(err)
	}
	if err := models.Register("cov", &covModel{}); err != nil {
		t.Fatal(err)
	}
	m := NewManager(ManagerOptions{Registerer: prometheus.NewRegistry()})
	defer m.Stop()
	q := fakeQuerier()
	update := func(model string) error {
		r := covariateRule(t)
		r.spec.Model = model
		return m.Update(UpdateOptions{Groups: []GroupOptions{{Name: "g", File: "f.yml", Interval: time.Hour, Rules: []*Rule{r}}}, Querier: q, Models: models})
	}
	err := update("default")
	want := `pipeline "job:load:rate5m" has covariates, and its model "default" (a built-in model) takes none: covariates need a torchscript model whose file takes them`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("builtin model: %v, want %q", err, want)
	}
	if err := update("cov"); err != nil {
		t.Errorf("covariate model: %v", err)
	}
	// A model that could take covariates but does not (a torchscript file
	// without covariate inputs).
	if err := models.Register("plain", noCovariates{builtin.Default()}); err != nil {
		t.Fatal(err)
	}
	err = update("plain")
	if want := `its model "plain" (a torchscript model whose file, or its family, takes no covariates) takes none`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("plain torchscript model: %v, want %q", err, want)
	}
}

type noCovariates struct{ forecast.Model }

func (noCovariates) TakesCovariates() bool { return false }
