package builtin

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// TestCalibration checks that the [0.05, 0.95] band is honest: on series
// with known Gaussian noise, the share of held-out points inside the
// one-step band, over many rolling origins, is near 90 %. With 600 origins
// the sampling error of the share is about 1.2 points; 84–96 % is about
// five of those either side, and still rules out a band that is off by
// ±25 % in width (which gives about 81 % or 96.5 %).
func TestCalibration(t *testing.T) {
	const (
		origins = 600
		ctxLen  = 3 * 288 // three days at 5m: the daily season is fitted
		sigma   = 2.0
	)
	step := 5 * time.Minute
	r := rand.New(rand.NewPCG(17, 4))
	walk := 0.0
	for _, c := range []struct {
		name  string
		shape func(time.Duration) float64
	}{
		{"white noise", func(time.Duration) float64 { return 50 }},
		{"daily season", dailyShape},
		{"daily season and trend", func(t time.Duration) float64 { return dailyShape(t) + 2*t.Hours() }},
		// A slowly drifting level (random walk, step σ/4) under the
		// noise: the level model's own uncertainty is part of the band.
		{"local level", func(time.Duration) float64 { walk += 0.5 * r.NormFloat64(); return 100 + walk }},
	} {
		x := synth(ctxLen+origins, step, sigma, c.shape, 5)
		var req forecast.Request
		req.Step, req.Horizon, req.Quantiles = step, 1, []float64{0.05, 0.5, 0.95}
		for o := ctxLen; o < len(x); o++ {
			req.Histories = append(req.Histories, x[o-ctxLen:o])
		}
		fc, err := Default().Forecast(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		var in, below, above int
		for i, f := range fc {
			if !checkValues(t, f, req.Quantiles, 1) {
				t.FailNow()
			}
			y := x[ctxLen+i]
			switch {
			case y < f.Values[0][0]:
				below++
			case y > f.Values[2][0]:
				above++
			default:
				in++
			}
		}
		cov := float64(in) / origins
		t.Logf("%s: %.1f %% of %d held-out points inside the 90 %% band (%d below, %d above)", c.name, 100*cov, origins, below, above)
		if cov < 0.84 || cov > 0.96 {
			t.Errorf("%s: coverage %.1f %%, want 84–96 %%", c.name, 100*cov)
		}
		// Both tails are used: a band shifted to one side is not honest
		// even with the right total coverage (expect 30 each, sd 5.3).
		if below < 12 || above < 12 || below > 55 || above > 55 {
			t.Errorf("%s: %d below and %d above the band, want 12–55 each", c.name, below, above)
		}
	}
}

// TestCalibrationMultiStep checks the band's growth with the horizon: on a
// local-level series the h-step errors grow, and the band must hold about
// 90 % of the points at 1 hour ahead as well, not only at one step.
func TestCalibrationMultiStep(t *testing.T) {
	const (
		origins = 300
		ctxLen  = 288
		horizon = 12
	)
	step := 5 * time.Minute
	r := rand.New(rand.NewPCG(23, 1))
	x := make([]float64, ctxLen+origins*horizon/4+horizon)
	level := 0.0
	for i := range x {
		level += 0.5 * r.NormFloat64()
		x[i] = level + r.NormFloat64()
	}
	req := forecast.Request{Step: step, Horizon: horizon, Quantiles: []float64{0.05, 0.5, 0.95}}
	var os []int
	for o := ctxLen; o+horizon <= len(x) && len(os) < origins; o += horizon / 4 {
		os = append(os, o)
		req.Histories = append(req.Histories, x[o-ctxLen:o])
	}
	fc, err := Default().Forecast(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var in1, inH int
	var w1, wH float64
	for i, o := range os {
		f := fc[i]
		if !checkValues(t, f, req.Quantiles, horizon) {
			t.FailNow()
		}
		if y := x[o]; f.Values[0][0] <= y && y <= f.Values[2][0] {
			in1++
		}
		if y := x[o+horizon-1]; f.Values[0][horizon-1] <= y && y <= f.Values[2][horizon-1] {
			inH++
		}
		w1 += f.Values[2][0] - f.Values[0][0]
		wH += f.Values[2][horizon-1] - f.Values[0][horizon-1]
	}
	n := float64(len(os))
	t.Logf("local level, %d origins: coverage %.1f %% at 1 step, %.1f %% at %d steps; mean band width %.2f → %.2f", len(os), 100*float64(in1)/n, 100*float64(inH)/n, horizon, w1/n, wH/n)
	// The h-step error of a local level with this noise ratio has about
	// √(1 + (h−1)·α²) times the one-step spread: the band must grow.
	if !(wH > 1.3*w1) {
		t.Errorf("band width %.2f at %d steps not above 1.3 × %.2f at 1 step", wH/n, horizon, w1/n)
	}
	for _, c := range []struct {
		name string
		in   int
	}{{"1 step", in1}, {"12 steps", inH}} {
		// Overlapping windows make the 12-step hits correlated; the
		// tolerance is wider than the one-step test's.
		if cov := float64(c.in) / n; cov < 0.80 || cov > 0.97 {
			t.Errorf("%s: coverage %.1f %%, want 80–97 %%", c.name, 100*cov)
		}
	}
}
