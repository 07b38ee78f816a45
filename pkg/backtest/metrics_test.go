package backtest

import (
	"math"
	"testing"
	"time"
)

const tol = 1e-12

func near(a, b float64) bool { return math.Abs(a-b) <= tol*max(1, math.Abs(b)) }

func TestPinball(t *testing.T) {
	for _, tc := range []struct{ q, y, f, want float64 }{
		{0.1, 2, 1, 0.1}, {0.1, 3, 4.5, 1.35}, {0.5, 4, 3, 0.5}, {0.9, 2, 2.5, 0.05}, {0.9, 2, 2, 0},
	} {
		if got := Pinball(tc.q, tc.y, tc.f); !near(got, tc.want) {
			t.Errorf("Pinball(%v, %v, %v) = %v, want %v", tc.q, tc.y, tc.f, got, tc.want)
		}
	}
}

func TestSeasonalScale(t *testing.T) {
	stamps := []int64{0, 1000, 2000, 3000}
	y := []float64{1, 2, 4, 3}
	// Lag 2s: |4−1| and |3−2|, mean 2.
	if s, lag := SeasonalScale(stamps, y, 2*time.Second); !near(s, 2) || lag != 2*time.Second {
		t.Errorf("season 2s: %v, %v; want 2, 2s", s, lag)
	}
	// No pair a season apart: lag one, (1+2+1)/3.
	if s, lag := SeasonalScale(stamps, y, time.Hour); !near(s, 4.0/3) || lag != time.Second {
		t.Errorf("season 1h: %v, %v; want 4/3, 1s", s, lag)
	}
	// Seasonal differences all zero: lag one.
	if s, _ := SeasonalScale(stamps, []float64{1, 2, 1, 2}, 2*time.Second); !near(s, 1) {
		t.Errorf("zero seasonal differences: %v, want 1", s)
	}
	// A gap is skipped over: the lag-one pairs are (1,4) and (4,3).
	if s, _ := SeasonalScale(stamps, []float64{1, math.NaN(), 4, 3}, 0); !near(s, 2) {
		t.Errorf("with NaN: %v, want 2", s)
	}
	if s, _ := SeasonalScale(stamps, []float64{5, 5, 5, 5}, 2*time.Second); !math.IsNaN(s) {
		t.Errorf("constant: %v, want NaN", s)
	}
}

func TestEvaluate(t *testing.T) {
	stamps := []int64{0, 1000, 2000, 3000}
	y := []float64{1, 2, 4, 3}
	levels := []float64{0.1, 0.5, 0.9}
	nan := math.NaN()
	// Forecasts made at stamps[i] for stamps[i]+1s.
	fc := [][]float64{
		{1, 2.5, 4.5, nan},
		{1.5, 3, 5, nan},
		{2.5, 3.5, 6, nan},
	}
	hs := Evaluate("1s", stamps, y, time.Second, levels, fc, 2)
	// Median errors |2−1.5| + |4−3| + |3−5| = 3.5 over 3 points, scale 2.
	if hs.N != 3 || !near(hs.AbsErr, 3.5) || !near(hs.MASE(), 3.5/3/2) {
		t.Errorf("N %d, AbsErr %v, MASE %v; want 3, 3.5, %v", hs.N, hs.AbsErr, hs.MASE(), 3.5/3/2)
	}
	// Pinball sums per point: 0.4, 1.1, 2.65; doubled 8.3; Σ|y| = 9.
	if hs.NQ != 3 || !near(hs.QLoss, 8.3) || !near(hs.AbsY, 9) || !near(hs.WQL(), 8.3/3/9) {
		t.Errorf("NQ %d, QLoss %v, AbsY %v, WQL %v; want 3, 8.3, 9, %v", hs.NQ, hs.QLoss, hs.AbsY, hs.WQL(), 8.3/3/9)
	}
	// Only the first point is inside [q0.1, q0.9].
	if len(hs.Bands) != 1 || hs.Bands[0].Lo != 0.1 || hs.Bands[0].Hi != 0.9 || hs.Bands[0].In != 1 || hs.Bands[0].N != 3 ||
		!near(hs.Bands[0].Coverage(), 1.0/3) || !near(hs.Bands[0].Nominal(), 0.8) {
		t.Errorf("bands %+v", hs.Bands)
	}

	// Lead 0 (the newest point): the forecast at i is for y[i]. A
	// missing level leaves the point out of WQL only.
	fc0 := [][]float64{{0, 1, 3, 2}, {1, 2, 4, 3}, {2, 3, nan, 4}}
	hs = Evaluate(HorizonNext, stamps, y, 0, levels, fc0, 1)
	if hs.N != 4 || hs.AbsErr != 0 || hs.MASE() != 0 || hs.NQ != 3 || hs.Bands[0].N != 3 || hs.Bands[0].In != 3 {
		t.Errorf("lead 0: %+v", hs)
	}
	// Σ per point: 0.1+0+0.1 = 0.2 (y=1), 0.2 (y=2), 0.2 (y=3): 2·0.6 over Σ|y| = 6.
	if !near(hs.WQL(), 1.2/3/6) {
		t.Errorf("lead 0 WQL %v, want %v", hs.WQL(), 1.2/3/6)
	}
	if hs := Evaluate("x", stamps, y, time.Hour, levels, fc, 1); hs.N != 0 || !math.IsNaN(hs.MASE()) || !math.IsNaN(hs.WQL()) || !math.IsNaN(hs.Bands[0].Coverage()) {
		t.Errorf("no pairs: %+v", hs)
	}
}
