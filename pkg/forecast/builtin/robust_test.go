package builtin

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/score"
)

// robustCase is one awkward history. wantMed, when medTol is set, is the
// median of the first forecast step of the holt_winters models (seasonal
// naive answers with a season-old value by design).
type robustCase struct {
	name    string
	hist    []float64
	wantErr bool // ErrInsufficientData
	// naiveErr: ErrInsufficientData from seasonal_naive only, which needs
	// two finite points one step (or one season) apart to size its band.
	naiveErr  bool
	wantMed   float64
	medTol    float64 // absolute; 0: no check
	maxRelBW  float64 // largest allowed (q95−q05)/max(1,|median|) at step 1; 0: no check
	checkFlat bool    // every step's median equals wantMed exactly
}

func fill(n int, f func(i int) float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = f(i)
	}
	return x
}

func robustCases() []robustCase {
	nan, inf := math.NaN(), math.Inf(1)
	r := rand.New(rand.NewPCG(5, 6))
	noise := func(n int, base, sigma float64) []float64 {
		return fill(n, func(int) float64 { return base + sigma*r.NormFloat64() })
	}
	withEvery := func(x []float64, k int, v float64) []float64 {
		x = slices.Clone(x)
		for i := 3; i < len(x); i += k {
			x[i] = v
		}
		return x
	}
	return []robustCase{
		{name: "empty", hist: nil, wantErr: true},
		{name: "all NaN", hist: fill(50, func(int) float64 { return nan }), wantErr: true},
		{name: "all ±Inf", hist: fill(50, func(i int) float64 { return float64(1-2*(i%2)) * inf }), wantErr: true},
		{name: "one below MinPoints", hist: noise(MinPoints-1, 10, 1), wantErr: true},
		{name: "MinPoints finite among NaN is enough", hist: fill(4*MinPoints, func(i int) float64 {
			if i%4 == 1 {
				return 10 + float64(i%3)
			}
			return nan
		}), naiveErr: true},
		{name: "MinPoints−1 finite among NaN and Inf", hist: fill(4*MinPoints, func(i int) float64 {
			switch {
			case i%4 == 1 && i/4 < MinPoints-1:
				return 10 + float64(i%3)
			case i%4 == 2:
				return inf
			case i%4 == 3:
				return -inf
			}
			return nan
		}), wantErr: true},
		{name: "exactly MinPoints", hist: noise(MinPoints, 10, 1), wantMed: 10, medTol: 3},
		{name: "MinPoints+1", hist: noise(MinPoints+1, 10, 1), wantMed: 10, medTol: 3},
		{name: "constant", hist: fill(300, func(int) float64 { return 42.5 }), wantMed: 42.5, medTol: 1e-12, maxRelBW: 1e-8, checkFlat: true},
		{name: "all zero", hist: make([]float64, 300), wantMed: 0, medTol: 1e-300, maxRelBW: 1e-8, checkFlat: true},
		{name: "constant negative with gaps", hist: withEvery(fill(300, func(int) float64 { return -7 }), 5, nan), wantMed: -7, medTol: 1e-12, maxRelBW: 1e-8, checkFlat: true},
		{name: "constant with Inf", hist: withEvery(fill(300, func(int) float64 { return 3 }), 7, -inf), wantMed: 3, medTol: 1e-12, maxRelBW: 1e-8, checkFlat: true},
		{name: "constant 1e12", hist: fill(300, func(int) float64 { return 1e12 }), wantMed: 1e12, medTol: 1e-3, maxRelBW: 1e-8, checkFlat: true},
		{name: "constant then one change", hist: append(fill(299, func(int) float64 { return 5 }), 6)},
		{name: "leading NaN", hist: append(fill(200, func(int) float64 { return nan }), noise(100, 50, 2)...), wantMed: 50, medTol: 2},
		{name: "trailing NaN", hist: append(noise(200, 50, 2), fill(40, func(int) float64 { return nan })...), wantMed: 50, medTol: 5},
		{name: "NaN gaps", hist: withEvery(noise(500, 50, 2), 3, nan), wantMed: 50, medTol: 2},
		{name: "+Inf and −Inf", hist: withEvery(withEvery(noise(500, 50, 2), 5, inf), 7, -inf), wantMed: 50, medTol: 2},
		{name: "long gap in the middle", hist: slices.Concat(noise(100, 50, 2), fill(500, func(int) float64 { return nan }), noise(100, 50, 2)), wantMed: 50, medTol: 2},
		{name: "huge 1e12", hist: noise(500, 1e12, 1e9), wantMed: 1e12, medTol: 3e9},
		{name: "huge offset tiny variation", hist: noise(500, 1e15, 1e3), wantMed: 1e15, medTol: 3e3},
		{name: "near MaxFloat64", hist: fill(300, func(i int) float64 { return float64(1-2*(i%2)) * math.MaxFloat64 * 0.9 })},
		{name: "MaxFloat64 steps", hist: fill(300, func(i int) float64 { return math.MaxFloat64 * float64(i%3) / 2 })},
		{name: "tiny 1e-12", hist: noise(500, 1e-12, 1e-14), wantMed: 1e-12, medTol: 3e-14},
		{name: "subnormal", hist: fill(300, func(i int) float64 { return float64(i%4) * 5e-324 })},
		{name: "step up", hist: slices.Concat(noise(300, 10, 1), noise(300, 1000, 1)), wantMed: 1000, medTol: 50},
		{name: "step down to zero", hist: slices.Concat(noise(300, 1000, 1), make([]float64, 300)), wantMed: 0, medTol: 50},
		{name: "step at the end", hist: slices.Concat(noise(300, 10, 1), noise(3, 1000, 1))},
		{name: "single spike", hist: slices.Concat(noise(300, 10, 1), []float64{1e6}, noise(20, 10, 1)), wantMed: 10, medTol: 3},
		{name: "spike train on zero", hist: fill(600, func(i int) float64 {
			if i%37 == 0 {
				return 100
			}
			return 0
		})},
		{name: "linear trend", hist: fill(300, func(i int) float64 { return 3 * float64(i) }), wantMed: 900, medTol: 5},
		{name: "alternating", hist: fill(300, func(i int) float64 { return float64(i % 2) })},
		{name: "counter resets", hist: fill(2000, func(i int) float64 { return float64(i%250) * 1e3 })},
		{name: "daily season 5m with gaps", hist: withEvery(synth(3*288, 5*time.Minute, 1, func(t time.Duration) float64 {
			return 100 + 30*math.Sin(2*math.Pi*dayFrac(t))
		}, 3), 11, nan)},
	}
}

var robustQuantiles = [][]float64{
	{0.05, 0.5, 0.95},
	{0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99},
	{0.5},
}

// TestRobustHistories runs every awkward history through both algorithms at
// several horizons and quantile sets: no panic, the contract of
// forecast.Forecast (finite, ordered, median inside every band), and
// ErrInsufficientData exactly for too little data.
func TestRobustHistories(t *testing.T) {
	models := map[string]forecast.Model{
		"holt_winters":         Default(),
		"seasonal_naive":       newModel(t, config.BuiltinConfig{Algorithm: config.AlgoSeasonalNaive}),
		"holt_winters fixed":   newModel(t, config.BuiltinConfig{Alpha: 0.5, Beta: 0.1, Gamma: 0.2}),
		"holt_winters daily":   newModel(t, config.BuiltinConfig{Season: modelDuration(24 * time.Hour)}),
		"seasonal_naive daily": newModel(t, config.BuiltinConfig{Algorithm: config.AlgoSeasonalNaive, Season: modelDuration(24 * time.Hour)}),
	}
	for _, c := range robustCases() {
		t.Run(c.name, func(t *testing.T) {
			for mname, m := range models {
				for _, qs := range robustQuantiles {
					for _, horizon := range []int{1, 12, 400} {
						fc := forecastOne(t, m, c.hist, 5*time.Minute, horizon, qs)
						if c.wantErr || (c.naiveErr && strings.HasPrefix(mname, "seasonal_naive")) {
							if !errors.Is(fc.Err, forecast.ErrInsufficientData) || fc.Values != nil {
								t.Errorf("%s: Err %v, %d value rows; want ErrInsufficientData and no values", mname, fc.Err, len(fc.Values))
							}
							continue
						}
						if !checkValues(t, fc, qs, horizon) {
							t.Errorf("(%s, quantiles %v, horizon %d)", mname, qs, horizon)
							continue
						}
						if strings.HasPrefix(mname, "holt_winters") {
							checkCase(t, c, mname, fc, qs)
						}
					}
				}
			}
		})
	}
}

func checkCase(t *testing.T, c robustCase, mname string, fc forecast.Forecast, qs []float64) {
	t.Helper()
	mi := slices.Index(qs, 0.5)
	med := fc.Values[mi][0]
	if c.medTol > 0 && math.Abs(med-c.wantMed) > c.medTol {
		t.Errorf("%s: median at step 1 %v, want %v ± %v", mname, med, c.wantMed, c.medTol)
	}
	if c.checkFlat {
		for h, v := range fc.Values[mi] {
			if v != c.wantMed {
				t.Errorf("%s: median at step %d %v, want exactly %v", mname, h+1, v, c.wantMed)
				break
			}
		}
	}
	if c.maxRelBW > 0 && len(qs) > 1 {
		bw := (fc.Values[len(qs)-1][0] - fc.Values[0][0]) / math.Max(1, math.Abs(med))
		if !(bw > 0 && bw <= c.maxRelBW) {
			t.Errorf("%s: relative band width %v at step 1, want in (0, %v]", mname, bw, c.maxRelBW)
		}
	}
}

// TestBatchMatchesSingle checks that a batch large enough to be split across
// workers gives every series the same answer as forecasting it alone, with
// per-series errors staying with their series.
func TestBatchMatchesSingle(t *testing.T) {
	cases := robustCases()
	var hists [][]float64
	for len(hists) < 3*chunk {
		for _, c := range cases {
			hists = append(hists, c.hist)
		}
	}
	qs := []float64{0.05, 0.5, 0.95}
	m := Default()
	batch, err := m.Forecast(context.Background(), forecast.Request{Histories: hists, Step: time.Minute, Horizon: 5, Quantiles: qs})
	if err != nil {
		t.Fatal(err)
	}
	if len(batch) != len(hists) {
		t.Fatalf("%d forecasts for %d histories", len(batch), len(hists))
	}
	for i, h := range hists {
		one := forecastOne(t, m, h, time.Minute, 5, qs)
		name := cases[i%len(cases)].name
		if (one.Err == nil) != (batch[i].Err == nil) {
			t.Errorf("%s (#%d): batch error %v, alone %v", name, i, batch[i].Err, one.Err)
			continue
		}
		for qi := range one.Values {
			for h := range one.Values[qi] {
				// Same code on the same data: bit for bit.
				if math.Float64bits(one.Values[qi][h]) != math.Float64bits(batch[i].Values[qi][h]) {
					t.Errorf("%s (#%d) q%v h%d: batch %v, alone %v", name, i, qs[qi], h+1, batch[i].Values[qi][h], one.Values[qi][h])
				}
			}
		}
	}
}

// TestRequestValidation checks the batch-level errors for malformed
// requests, and that a cancelled context fails the batch.
func TestRequestValidation(t *testing.T) {
	hist := [][]float64{fill(50, func(i int) float64 { return float64(i) })}
	for _, c := range []struct {
		name string
		req  forecast.Request
	}{
		{"horizon 0", forecast.Request{Histories: hist, Step: time.Minute, Horizon: 0, Quantiles: []float64{0.5}}},
		{"no quantiles", forecast.Request{Histories: hist, Step: time.Minute, Horizon: 1}},
		{"quantile 0", forecast.Request{Histories: hist, Step: time.Minute, Horizon: 1, Quantiles: []float64{0, 0.5}}},
		{"quantile 1", forecast.Request{Histories: hist, Step: time.Minute, Horizon: 1, Quantiles: []float64{0.5, 1}}},
		{"quantile NaN", forecast.Request{Histories: hist, Step: time.Minute, Horizon: 1, Quantiles: []float64{math.NaN(), 0.5}}},
		{"not ascending", forecast.Request{Histories: hist, Step: time.Minute, Horizon: 1, Quantiles: []float64{0.5, 0.05}}},
		{"duplicate", forecast.Request{Histories: hist, Step: time.Minute, Horizon: 1, Quantiles: []float64{0.5, 0.5}}},
	} {
		if fc, err := Default().Forecast(context.Background(), c.req); err == nil {
			t.Errorf("%s: no error, forecasts %v", c.name, fc)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Default().Forecast(ctx, forecast.Request{Histories: hist, Step: time.Minute, Horizon: 1, Quantiles: []float64{0.5}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err %v, want context.Canceled", err)
	}
}

// TestNewRejectsBadConfig checks New's validation.
func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []config.BuiltinConfig{
		{Algorithm: "arima"},
		{Alpha: 1.5},
		{Beta: -0.1},
		{Gamma: math.NaN()},
		{Season: -modelDuration(time.Hour)},
		{Algorithm: config.AlgoSeasonalNaive, Alpha: 0.3},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
}

// TestLevelShift checks how the clipped updates treat a lasting level shift
// of 20σ on a noisy series: the first point after it scores far above 1,
// and within 25 points the median has moved to the new level and a point on
// it scores below 1 (DESIGN: "the model catches up within a few dozen
// steps").
func TestLevelShift(t *testing.T) {
	const before, after, within = 600, 60, 25
	r := rand.New(rand.NewPCG(3, 3))
	hist := fill(before+after, func(i int) float64 {
		if i < before {
			return 100 + r.NormFloat64()
		}
		return 120 + r.NormFloat64()
	})
	qs := []float64{0.05, 0.5, 0.95}
	for k := 1; k <= after; k++ {
		fc := forecastOne(t, Default(), hist[:before+k], time.Minute, 1, qs)
		if !checkValues(t, fc, qs, 1) {
			t.FailNow()
		}
		lo, med, hi := fc.Values[0][0], fc.Values[1][0], fc.Values[2][0]
		s := score.Score(120, med, lo, hi, 0, score.Both)
		if k == 1 && !(s > 3) {
			t.Errorf("the first point after the shift scores %.3g, want > 3", s)
		}
		if k >= within && (!(s < 1) || math.Abs(med-120) > 2) {
			t.Errorf("%d points after the shift: median %.3f, score of the new level %.3g; want 120 ± 2 and < 1", k, med, s)
		}
		if k == 1 || k == within || k == after {
			t.Logf("%d points after the shift: median %.3f, band [%.3f, %.3f], score of the new level %.3g", k, med, lo, hi, s)
		}
	}
}

// TestLevelShiftFlat measures a known weakness, without asserting it: on a
// perfectly flat series the clipping scale σ̂ decays to almost nothing, so
// after a shift from 5 to 6 the median stays at 5 for about 140 points
// (it grows by only 15 % a step), and the new level scores at the cap
// until 5 % of the history's residuals are large enough to widen the band:
// the number of such points grows with the history's length. It fails only
// if the model never accepts the new level within the history's length.
func TestLevelShiftFlat(t *testing.T) {
	qs := []float64{0.05, 0.5, 0.95}
	for _, before := range []int{300, 1440} {
		scoreBelow, medAt := -1, -1
		for k := 1; k <= before && (scoreBelow < 0 || medAt < 0); k++ {
			hist := fill(before+k, func(i int) float64 { return 5 + float64(min(1, i/before)) })
			fc := forecastOne(t, Default(), hist, time.Minute, 1, qs)
			if !checkValues(t, fc, qs, 1) {
				t.FailNow()
			}
			lo, med, hi := fc.Values[0][0], fc.Values[1][0], fc.Values[2][0]
			if scoreBelow < 0 && score.Score(6, med, lo, hi, 0, score.Both) < 1 {
				scoreBelow = k
			}
			if medAt < 0 && math.Abs(med-6) < 0.1 {
				medAt = k
			}
		}
		t.Logf("flat 5 → 6 after %d points: the new level scores below 1 after %d points, the median reaches it after %d", before, scoreBelow, medAt)
		if scoreBelow < 0 || medAt < 0 {
			t.Errorf("flat 5 → 6 after %d points: not accepted within %d points (score below 1 at %d, median at %d)", before, before, scoreBelow, medAt)
		}
	}
}

// A sparse history whose finite points all fall in the initial seasons has
// no one-step residual to calibrate on: the series is skipped as
// insufficient data (it used to panic, found by the NAB backtest on
// rogue_agent_key_hold at step 5m, context 7d).
func TestHoltWintersWithoutResiduals(t *testing.T) {
	m, err := New(config.BuiltinConfig{Algorithm: config.AlgoHoltWinters, Season: model.Duration(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	hist := make([]float64, 2016)
	for i := range hist {
		hist[i] = math.NaN()
		if i < 576 && i%40 == 0 {
			hist[i] = float64(10 + i%7)
		}
	}
	for _, h := range [][]float64{hist, hist[:1200]} {
		fc, err := m.Forecast(context.Background(), forecast.Request{Histories: [][]float64{h}, Step: 5 * time.Minute, Horizon: 1, Quantiles: []float64{0.05, 0.5, 0.95}})
		if err != nil {
			t.Fatal(err)
		}
		if fc[0].Err == nil {
			if !checkValues(t, fc[0], []float64{0.05, 0.5, 0.95}, 1) {
				t.Errorf("len %d: bad values %v", len(h), fc[0].Values)
			}
			continue
		}
		if !errors.Is(fc[0].Err, forecast.ErrInsufficientData) {
			t.Errorf("len %d: %v, want insufficient data", len(h), fc[0].Err)
		}
	}
}
