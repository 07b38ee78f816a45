package builtin

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
)

func modelDuration(d time.Duration) model.Duration { return model.Duration(d) }

// newModel is New for a config the test knows to be valid.
func newModel(t testing.TB, cfg config.BuiltinConfig) forecast.Model {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return m
}

// nonSeasonal is holt_winters without a season: a configured season of one
// step is no season (periodOf), so detection is off and the model is Holt's
// damped trend on any history.
func nonSeasonal(t testing.TB, step time.Duration) forecast.Model {
	return newModel(t, config.BuiltinConfig{Season: modelDuration(step)})
}

// forecastOne forecasts a single history and fails t on a batch error.
func forecastOne(t testing.TB, m forecast.Model, hist []float64, step time.Duration, horizon int, qs []float64) forecast.Forecast {
	t.Helper()
	fc, err := m.Forecast(context.Background(), forecast.Request{
		Histories: [][]float64{hist}, Step: step, Horizon: horizon, Quantiles: qs,
	})
	if err != nil {
		t.Fatalf("Forecast: %v", err)
	}
	if len(fc) != 1 {
		t.Fatalf("Forecast returned %d forecasts for 1 history", len(fc))
	}
	return fc[0]
}

// checkValues asserts the contract of forecast.Forecast.Values for a
// successful forecast: the shape asked for, every value finite, values
// non-decreasing in the quantile level at every horizon step, and the median
// inside every band [q, 1−q] the request holds. It returns false (after
// reporting) when any of that fails.
func checkValues(t testing.TB, fc forecast.Forecast, qs []float64, horizon int) bool {
	t.Helper()
	if fc.Err != nil {
		t.Errorf("unexpected error: %v", fc.Err)
		return false
	}
	if len(fc.Values) != len(qs) {
		t.Errorf("%d quantile rows, want %d", len(fc.Values), len(qs))
		return false
	}
	ok := true
	for qi, row := range fc.Values {
		if len(row) != horizon {
			t.Errorf("quantile %v: %d horizon steps, want %d", qs[qi], len(row), horizon)
			return false
		}
		for h, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("quantile %v step %d: %v, want a finite value", qs[qi], h+1, v)
				ok = false
			}
		}
	}
	med := -1
	for qi, q := range qs {
		if q == 0.5 {
			med = qi
		}
	}
	for h := range horizon {
		for qi := 1; qi < len(qs); qi++ {
			if !(fc.Values[qi][h] >= fc.Values[qi-1][h]) {
				t.Errorf("step %d: quantile %v = %v below quantile %v = %v", h+1, qs[qi], fc.Values[qi][h], qs[qi-1], fc.Values[qi-1][h])
				ok = false
			}
		}
		if med < 0 {
			continue
		}
		m := fc.Values[med][h]
		for qi, q := range qs {
			if q >= 0.5 {
				continue
			}
			// The band [q, 1−q], where the request has both edges.
			for qj, q2 := range qs {
				if math.Abs(q+q2-1) > 1e-12 {
					continue
				}
				if lo, hi := fc.Values[qi][h], fc.Values[qj][h]; !(lo <= m && m <= hi) {
					t.Errorf("step %d: median %v outside the [%v, %v] band [%v, %v]", h+1, m, q, q2, lo, hi)
					ok = false
				}
			}
		}
	}
	return ok
}

// synth is shape(t) + Gaussian noise of standard deviation sigma for n
// points at step, t counted from the first point.
func synth(n int, step time.Duration, sigma float64, shape func(t time.Duration) float64, seed uint64) []float64 {
	r := rand.New(rand.NewPCG(seed, 11))
	x := make([]float64, n)
	for i := range x {
		x[i] = shape(time.Duration(i)*step) + sigma*r.NormFloat64()
	}
	return x
}

// dayFrac is t's position in its day, in [0, 1).
func dayFrac(t time.Duration) float64 {
	return float64(t%(24*time.Hour)) / float64(24*time.Hour)
}
