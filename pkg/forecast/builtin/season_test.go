package builtin

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// dailyShape is a daily cycle with a sharper daytime peak than a sine (a
// second harmonic), as request rates have.
func dailyShape(t time.Duration) float64 {
	a := 2 * math.Pi * dayFrac(t)
	return 100 + 30*math.Sin(a) + 10*math.Sin(2*a+1)
}

// weeklyShape is a daily cycle on weekdays and a low, flat weekend, so that
// one day ago predicts badly across the weekend and one week ago does not.
func weeklyShape(t time.Duration) float64 {
	if day := int(t / (24 * time.Hour) % 7); day >= 5 {
		return 60
	}
	return 100 + 30*math.Sin(2*math.Pi*dayFrac(t))
}

// fittedPeriod forecasts hist with the default model through a worker and
// returns the seasonal period the Holt-Winters fit used.
func fittedPeriod(t *testing.T, hist []float64, step time.Duration) int {
	t.Helper()
	req := forecast.Request{Histories: [][]float64{hist}, Step: step, Horizon: 1, Quantiles: []float64{0.05, 0.5, 0.95}}
	w := newWorker(&req)
	if fc := w.forecast(Default().(*Model), hist, 0); fc.Err != nil {
		t.Fatalf("forecast: %v", fc.Err)
	}
	return w.fitted.period
}

func TestDetectSeason(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	walk := make([]float64, 3000)
	for i := 1; i < len(walk); i++ {
		walk[i] = walk[i-1] + r.NormFloat64()
	}
	const day, week = 24 * time.Hour, 7 * 24 * time.Hour
	for _, c := range []struct {
		name string
		x    []float64
		step time.Duration
		want time.Duration // 0: no season
	}{
		{"daily 5m, 2 days", synth(2*288, 5*time.Minute, 3, dailyShape, 1), 5 * time.Minute, day},
		{"daily 5m, 3 days", synth(3*288, 5*time.Minute, 3, dailyShape, 2), 5 * time.Minute, day},
		{"daily 1m, 2 days", synth(2*1440, time.Minute, 3, dailyShape, 3), time.Minute, day},
		{"daily 5m, 1.9 days", synth(2*288-20, 5*time.Minute, 3, dailyShape, 4), 5 * time.Minute, 0},
		{"daily 5m with a trend", synth(3*288, 5*time.Minute, 3, func(t time.Duration) float64 { return dailyShape(t) + t.Hours() }, 5), 5 * time.Minute, day},
		{"weekly 1h, 2 weeks", synth(2*168, time.Hour, 3, weeklyShape, 6), time.Hour, week},
		{"weekly 1h, 3 weeks", synth(3*168, time.Hour, 3, weeklyShape, 7), time.Hour, week},
		{"weekly 1h, 13 days: daily", synth(13*24, time.Hour, 3, weeklyShape, 8), time.Hour, day},
		{"hourly cron 1m", synth(600, time.Minute, 1, func(t time.Duration) float64 {
			if t%time.Hour < 5*time.Minute {
				return 20
			}
			return 0
		}, 9), time.Minute, time.Hour},
		{"white noise", synth(3*288, 5*time.Minute, 1, func(time.Duration) float64 { return 0 }, 10), 5 * time.Minute, 0},
		{"random walk", walk, 5 * time.Minute, 0},
		{"constant", fill(3*288, func(int) float64 { return 1 }), 5 * time.Minute, 0},
	} {
		got := time.Duration(detectSeason(detrendInput(c.x), c.step)) * c.step
		if got != c.want {
			t.Errorf("%s: detected %v, want %v", c.name, got, c.want)
		}
		if c.want != 0 {
			// The fit uses what detection found.
			if p := fittedPeriod(t, c.x, c.step); time.Duration(p)*c.step != c.want {
				t.Errorf("%s: fitted period %d steps, want %v", c.name, p, c.want)
			}
		}
	}
}

// detrendInput scales x the way the worker does before detection (the
// correlation does not depend on it; this keeps the test honest about the
// input detectSeason really sees).
func detrendInput(x []float64) []float64 {
	var mx, mean float64
	for _, v := range x {
		mx = math.Max(mx, math.Abs(v))
		mean += v
	}
	mean /= float64(len(x))
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = (v - mean) / math.Max(mx, 1e-300)
	}
	return out
}

// seasonCheck forecasts horizon steps after hist with the default model and
// with the same model without a season, and returns the mean absolute error
// of each median against the noiseless shape, and the mean width of each
// [0.05, 0.95] band.
func seasonCheck(t *testing.T, hist []float64, step time.Duration, horizon int, shape func(time.Duration) float64) (maeS, maeN, bwS, bwN float64) {
	t.Helper()
	qs := []float64{0.05, 0.5, 0.95}
	s := forecastOne(t, Default(), hist, step, horizon, qs)
	n := forecastOne(t, nonSeasonal(t, step), hist, step, horizon, qs)
	checkValues(t, s, qs, horizon)
	checkValues(t, n, qs, horizon)
	for h := range horizon {
		y := shape(time.Duration(len(hist)+h) * step)
		maeS += math.Abs(s.Values[1][h]-y) / float64(horizon)
		maeN += math.Abs(n.Values[1][h]-y) / float64(horizon)
		bwS += (s.Values[2][h] - s.Values[0][h]) / float64(horizon)
		bwN += (n.Values[2][h] - n.Values[0][h]) / float64(horizon)
	}
	return maeS, maeN, bwS, bwN
}

// TestSeasonalForecastTracksShape checks that with two or more seasons of
// history the detected season makes the forecast follow the cycle: over the
// next 12 hours (5m, daily) or 2 days (1h, weekly, across a weekend) its
// error against the noiseless shape is a fraction of the non-seasonal
// model's and close to nothing in units of the noise.
func TestSeasonalForecastTracksShape(t *testing.T) {
	const sigma = 3
	for _, c := range []struct {
		name    string
		n       int
		step    time.Duration
		horizon int
		shape   func(time.Duration) float64
	}{
		{"daily 5m, 2 days + 1h", 2*288 + 12, 5 * time.Minute, 144, dailyShape},
		{"daily 5m, 4 days", 4 * 288, 5 * time.Minute, 144, dailyShape},
		// Ends on Friday 00:00 of the third week: the horizon is Friday
		// and Saturday, where a daily model would be wrong.
		{"weekly 1h, 2 weeks + 4 days", 2*168 + 4*24, time.Hour, 48, weeklyShape},
	} {
		hist := synth(c.n, c.step, sigma, c.shape, 21)
		maeS, maeN, bwS, bwN := seasonCheck(t, hist, c.step, c.horizon, c.shape)
		t.Logf("%s: MAE seasonal %.2f, non-seasonal %.2f; mean 90%% band width %.2f vs %.2f (noise σ %v)", c.name, maeS, maeN, bwS, bwN, sigma)
		if !(maeS < 0.3*maeN) {
			t.Errorf("%s: seasonal MAE %.2f not below 0.3 × non-seasonal %.2f", c.name, maeS, maeN)
		}
		if !(maeS < sigma) {
			t.Errorf("%s: seasonal MAE %.2f, want below the noise σ %v", c.name, maeS, float64(sigma))
		}
	}
}

// TestShortHistoryFallsBack checks DESIGN.md's promise for less than two
// seasons: no season, and an honest band, wider than the one the same
// process gets once two seasons of history exist.
func TestShortHistoryFallsBack(t *testing.T) {
	const sigma, horizon = 3, 36 // 3 hours at 5m
	step := 5 * time.Minute
	full := synth(3*288, step, sigma, dailyShape, 33)
	short := full[288+144:] // 1.5 days, ending at the same time of day
	if p := fittedPeriod(t, short, step); p != 0 {
		t.Fatalf("1.5 days of history: fitted period %d, want 0 (non-seasonal)", p)
	}
	if p := fittedPeriod(t, full, step); p != 288 {
		t.Fatalf("3 days of history: fitted period %d, want 288", p)
	}
	qs := []float64{0.05, 0.5, 0.95}
	fs := forecastOne(t, Default(), full, step, horizon, qs)
	fn := forecastOne(t, Default(), short, step, horizon, qs)
	checkValues(t, fs, qs, horizon)
	checkValues(t, fn, qs, horizon)
	var bwS, bwN, covN float64
	for h := range horizon {
		bwS += (fs.Values[2][h] - fs.Values[0][h]) / horizon
		bwN += (fn.Values[2][h] - fn.Values[0][h]) / horizon
		// The fallback band must contain the true shape where it leaves
		// room for the noise: honest, not just wide.
		y := dailyShape(time.Duration(len(full)+h) * step)
		if fn.Values[0][h] < y && y < fn.Values[2][h] {
			covN++
		}
	}
	t.Logf("mean 90%% band width over %d steps: seasonal %.2f, fallback %.2f; fallback band holds the true shape at %.0f of %d steps", horizon, bwS, bwN, covN, horizon)
	if !(bwN > 1.2*bwS) {
		t.Errorf("fallback band %.2f not wider than 1.2 × the seasonal one %.2f", bwN, bwS)
	}
	if covN < 0.9*horizon {
		t.Errorf("fallback band holds the true shape at %.0f of %d steps, want ≥ 90%%", covN, horizon)
	}
}
