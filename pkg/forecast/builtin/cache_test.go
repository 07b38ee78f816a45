package builtin

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// dailyHistory is n one-minute points of a daily cycle with noise, ending
// `shift` minutes later than the first such history.
func dailyHistory(n, shift int, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]float64, n)
	for i := range out {
		m := float64(i + shift)
		out[i] = 100 + 20*math.Sin(2*math.Pi*m/1440) + r.NormFloat64()
	}
	return out
}

// TestFitCacheReusesWithinRefitInterval: requests that name their series
// fit once per refit interval, refit after it (and when time goes back, as
// in a replay started again), and forecasts from reused parameters stay
// close to freshly fitted ones.
func TestFitCacheReusesWithinRefitInterval(t *testing.T) {
	cfg := config.DefaultBuiltinConfig
	cfg.RefitInterval = modelDuration(time.Hour)
	m := newModel(t, cfg).(*Model)
	qs := []float64{0.05, 0.5, 0.95}
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	call := func(at time.Time, shift int, keys []uint64) []forecast.Forecast {
		t.Helper()
		req := forecast.Request{Step: time.Minute, Horizon: 60, Quantiles: qs, Keys: keys, Time: at}
		for i := range 3 {
			req.Histories = append(req.Histories, dailyHistory(2*1440+200, shift, uint64(i)))
		}
		fc, err := m.Forecast(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fc {
			checkValues(t, f, qs, 60)
		}
		return fc
	}
	keys := []uint64{1, 2, 3}
	fittedAt := func(k uint64) time.Time {
		m.cache.mtx.Lock()
		defer m.cache.mtx.Unlock()
		return m.cache.entries[k].at
	}

	call(t0, 0, nil)
	if n := m.cache.len(); n != 0 {
		t.Fatalf("requests without keys left %d cache entries", n)
	}
	call(t0, 0, keys)
	if n := m.cache.len(); n != 3 {
		t.Fatalf("%d cache entries after a keyed request, want 3", n)
	}
	reused := call(t0.Add(30*time.Minute), 30, keys)
	if !fittedAt(1).Equal(t0) {
		t.Errorf("refitted after 30m: fitted at %s", fittedAt(1))
	}
	fresh := newModel(t, config.BuiltinConfig{Algorithm: config.AlgoHoltWinters})
	want, err := fresh.Forecast(context.Background(), forecast.Request{
		Step: time.Minute, Horizon: 60, Quantiles: qs,
		Histories: [][]float64{dailyHistory(2*1440+200, 30, 0), dailyHistory(2*1440+200, 30, 1), dailyHistory(2*1440+200, 30, 2)},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Parameters fitted 30 minutes earlier forecast within a fifth of the
	// band's half-width of freshly fitted ones.
	for i := range want {
		for h := range 60 {
			half := want[i].Values[2][h] - want[i].Values[1][h]
			if d := math.Abs(reused[i].Values[1][h] - want[i].Values[1][h]); d > 0.2*half {
				t.Fatalf("series %d step %d: median %v from reused parameters, %v freshly fitted (half-width %v)",
					i, h+1, reused[i].Values[1][h], want[i].Values[1][h], half)
			}
		}
	}
	call(t0.Add(time.Hour), 60, keys)
	if !fittedAt(1).Equal(t0.Add(time.Hour)) {
		t.Errorf("not refitted after the refit interval: fitted at %s", fittedAt(1))
	}
	call(t0, 0, keys)
	if !fittedAt(1).Equal(t0) {
		t.Errorf("not refitted when the time went back: fitted at %s", fittedAt(1))
	}
	// Series that are not asked for again are forgotten after an interval.
	call(t0.Add(3*time.Hour), 0, []uint64{4, 5, 6})
	if n := m.cache.len(); n != 3 {
		t.Errorf("%d cache entries after the others aged out, want 3", n)
	}

	// A bad request is refused, not half served.
	if _, err := m.Forecast(context.Background(), forecast.Request{
		Step: time.Minute, Horizon: 1, Quantiles: qs, Histories: [][]float64{{1, 2, 3}}, Keys: []uint64{1, 2},
	}); err == nil {
		t.Error("a request with more keys than histories was accepted")
	}
}

// TestFitCacheOff: refit_interval 0 fits at every request.
func TestFitCacheOff(t *testing.T) {
	cfg := config.DefaultBuiltinConfig
	cfg.RefitInterval = 0
	m := newModel(t, cfg).(*Model)
	_, err := m.Forecast(context.Background(), forecast.Request{
		Step: time.Minute, Horizon: 1, Quantiles: []float64{0.5},
		Histories: [][]float64{dailyHistory(500, 0, 1)}, Keys: []uint64{1}, Time: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := m.cache.len(); n != 0 {
		t.Errorf("%d cache entries with refitting at every request", n)
	}
}

// TestMinPointsIsTheRuleMinimum: pipeline files refuse contexts the
// built-in models could never forecast from.
func TestMinPointsIsTheRuleMinimum(t *testing.T) {
	if MinPoints != rulefmt.MinContextPoints {
		t.Errorf("builtin.MinPoints = %d, rulefmt.MinContextPoints = %d: keep them equal", MinPoints, rulefmt.MinContextPoints)
	}
}
