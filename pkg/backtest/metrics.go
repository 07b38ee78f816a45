package backtest

import (
	"math"
	"time"
)

// Forecast accuracy of a replay, per series and horizon.
//
//   - MASE: the mean absolute error of the median, divided by the mean
//     absolute seasonal difference of the observed values (lag Season,
//     default one day) over the replayed range; lag one evaluation when no
//     two observations are a season apart or their differences are all
//     zero; NaN when the observations are constant. This is
//     ../shared/bench/README.md's scale computed over the whole replayed
//     series instead of each window's context: a rolling replay has one
//     origin per evaluation, and one scale per series keeps the errors of
//     different horizons comparable.
//   - WQL, the CRPS approximation: for each quantile level q the pinball
//     loss 2·Σ ρ_q(y − ŷ_q) over the points, divided by Σ|y|, averaged over
//     the levels (GluonTS' mean_wQuantileLoss). Only points with a forecast
//     at every level count.
//   - Coverage: for each band (q, 1−q) with q < 0.5 among the levels, the
//     fraction of points with ŷ_q ≤ y ≤ ŷ_{1−q}, against its nominal level
//     1 − 2q.
//
// The horizon "next" is the forecast of the newest point made from the data
// before it (openanomaly_yhat and the band), compared with openanomaly_y of
// the same evaluation. A horizon h compares openanomaly_forecast stamped at
// s with openanomaly_y stamped at s + h; pairs whose later evaluation
// emitted no y are left out.

// HorizonNext names the forecast of the newest point.
const HorizonNext = "next"

// HorizonStats holds one series' accuracy at one horizon, as sums so that
// series can be pooled.
type HorizonStats struct {
	Horizon string `json:"horizon"`
	// N is how many points had an observed value and a median forecast.
	N int `json:"n"`
	// AbsErr is Σ|y − median|; Scale the series' seasonal-naive MAE.
	AbsErr float64 `json:"abs_err"`
	Scale  float64 `json:"scale"`
	// QLoss is Σ_points Σ_levels 2·ρ_q(y − ŷ_q) over the NQ points with
	// every level, AbsY Σ|y| over the same points.
	QLoss  float64 `json:"qloss"`
	Levels int     `json:"levels"`
	NQ     int     `json:"nq"`
	AbsY   float64 `json:"abs_y"`
	Bands  []Band  `json:"bands,omitempty"`
}

// Band is the coverage of one central band.
type Band struct {
	Lo, Hi float64
	In, N  int
}

// Nominal is the band's nominal coverage, hi − lo.
func (b Band) Nominal() float64 { return b.Hi - b.Lo }

// Coverage is the fraction of points inside the band (NaN without points).
func (b Band) Coverage() float64 {
	if b.N == 0 {
		return math.NaN()
	}
	return float64(b.In) / float64(b.N)
}

// MASE is the mean absolute error over the scale (NaN without points or
// scale).
func (h HorizonStats) MASE() float64 {
	if h.N == 0 || !(h.Scale > 0) {
		return math.NaN()
	}
	return h.AbsErr / float64(h.N) / h.Scale
}

// WQL is the weighted quantile loss (NaN without points or when Σ|y| is 0).
func (h HorizonStats) WQL() float64 {
	if h.NQ == 0 || h.Levels == 0 || !(h.AbsY > 0) {
		return math.NaN()
	}
	return h.QLoss / float64(h.Levels) / h.AbsY
}

// Pinball is the quantile loss ρ_q(y − f).
func Pinball(q, y, f float64) float64 {
	if y >= f {
		return q * (y - f)
	}
	return (1 - q) * (f - y)
}

// SeasonalScale is MASE's denominator for observations y at stamps (ms):
// the mean |y(t) − y(t − season)| over the stamps that have a value one
// season earlier, falling back to lag one (consecutive values) when there
// are none or they are all zero. It returns the scale and the lag used
// (0 when NaN).
func SeasonalScale(stamps []int64, y []float64, season time.Duration) (float64, time.Duration) {
	at := make(map[int64]int, len(stamps))
	for i, t := range stamps {
		if finite(y[i]) {
			at[t] = i
		}
	}
	sm := season.Milliseconds()
	var sum float64
	n := 0
	if sm > 0 {
		for i, t := range stamps {
			if j, ok := at[t-sm]; ok && finite(y[i]) {
				sum += math.Abs(y[i] - y[j])
				n++
			}
		}
		if n > 0 && sum > 0 {
			return sum / float64(n), season
		}
	}
	sum, n = 0, 0
	prev := -1
	lag := time.Duration(0)
	for i := range stamps {
		if !finite(y[i]) {
			continue
		}
		if prev >= 0 {
			sum += math.Abs(y[i] - y[prev])
			n++
			if lag == 0 {
				lag = time.Duration(stamps[i]-stamps[prev]) * time.Millisecond
			}
		}
		prev = i
	}
	if n == 0 || sum == 0 {
		return math.NaN(), 0
	}
	return sum / float64(n), lag
}

// Evaluate scores forecasts made at stamps: fc[q][i] is the forecast at
// level levels[q] (sorted ascending, 0.5 among them) made at stamps[i] for
// the stamp lead later; y are the observations at stamps.
func Evaluate(horizon string, stamps []int64, y []float64, lead time.Duration, levels []float64, fc [][]float64, scale float64) HorizonStats {
	hs := HorizonStats{Horizon: horizon, Scale: scale, Levels: len(levels)}
	median := -1
	for qi, q := range levels {
		if q == 0.5 {
			median = qi
		}
		if q < 0.5 {
			for qj := len(levels) - 1; qj > qi; qj-- {
				if math.Abs(levels[qj]-(1-q)) < 1e-9 {
					hs.Bands = append(hs.Bands, Band{Lo: q, Hi: levels[qj]})
				}
			}
		}
	}
	at := make(map[int64]int, len(stamps))
	for i, t := range stamps {
		at[t] = i
	}
	lm := lead.Milliseconds()
	for i, t := range stamps {
		j, ok := at[t+lm]
		if !ok || !finite(y[j]) {
			continue
		}
		obs := y[j]
		if median >= 0 && finite(fc[median][i]) {
			hs.N++
			hs.AbsErr += math.Abs(obs - fc[median][i])
		}
		all := true
		var ql float64
		for qi, q := range levels {
			f := fc[qi][i]
			if !finite(f) {
				all = false
				break
			}
			ql += 2 * Pinball(q, obs, f)
		}
		if all {
			hs.NQ++
			hs.QLoss += ql
			hs.AbsY += math.Abs(obs)
		}
		for bi := range hs.Bands {
			b := &hs.Bands[bi]
			lo, hi := fc[indexOf(levels, b.Lo)][i], fc[indexOf(levels, b.Hi)][i]
			if !finite(lo) || !finite(hi) {
				continue
			}
			b.N++
			if lo <= obs && obs <= hi {
				b.In++
			}
		}
	}
	return hs
}

func indexOf(xs []float64, x float64) int {
	for i, v := range xs {
		if v == x {
			return i
		}
	}
	return -1
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
