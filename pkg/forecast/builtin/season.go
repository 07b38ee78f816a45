package builtin

import (
	"math"
	"time"
)

// Season detection thresholds. minSeasonACF: the lag-m autocorrelation of
// white noise is about N(0, 1/√(n−m)), 0.06 for a day of 5-minute points,
// so 0.2 is more than three standard deviations there; for short histories
// the bar rises to 3/√(n−m). A daily sine of amplitude A in noise σ reaches
// 0.2 at A ≈ 0.7σ. seasonMargin: a cycle of period p correlates as well at
// every multiple of p, so the shortest candidate within seasonMargin of the
// best wins (more seasons in the history, faster adaptation); weekly data
// correlates less at one day (across weekends), and a weekly season has to
// beat the daily one by the margin.
const (
	minSeasonACF  = 0.2
	seasonMargin  = 0.05
	minSeasonStep = 4 // shortest season, in steps
)

// seasonCandidates are the periods the built-in models look for, shortest
// first. Operations metrics follow the day and the week; the divisors of a
// day in whole hours are there for scheduled work (cron jobs, batch runs,
// backups), which repeats on the hour: BOOM's ds-1001-T_var015, a real
// Datadog metric, cycles hourly.
var seasonCandidates = []time.Duration{
	time.Hour, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 6 * time.Hour, 8 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 7 * 24 * time.Hour,
}

// periodOf returns d in steps, rounded, or 0 when that is less than 2 (a
// season of one step is no season).
func periodOf(d, step time.Duration) int {
	if step <= 0 || d <= 0 {
		return 0
	}
	m := math.Round(float64(d) / float64(step))
	if m < 2 || m > math.MaxInt32 {
		return 0
	}
	return int(m)
}

// detectSeason returns the seasonal period in steps of x, or 0 for none.
// A candidate needs at least two full seasons of history, whole steps, a
// lag-m autocorrelation of the linearly detrended history of at least
// minSeasonACF (more for short histories), and more autocorrelation at lag
// m than at lag m/2: a slowly wandering series correlates at every short
// lag, decreasingly, while a seasonal one peaks at its period.
func detectSeason(x []float64, step time.Duration) int {
	var (
		u     []float64
		ms    [16]int
		rs    [16]float64
		n     int
		bestR = math.Inf(-1)
	)
	for _, d := range seasonCandidates {
		if step <= 0 || d%step != 0 {
			continue
		}
		m := int(d / step)
		if m < minSeasonStep || len(x) < 2*m {
			continue
		}
		if u == nil {
			u = detrend(x)
		}
		r := acf(u, m)
		pairs := min(len(x)-m, acfPairs)
		if r < math.Max(minSeasonACF, 3/math.Sqrt(float64(pairs))) || r <= acf(u, m/2) {
			continue
		}
		ms[n], rs[n] = m, r
		n++
		bestR = math.Max(bestR, r)
	}
	for i := range n {
		if rs[i] >= bestR-seasonMargin {
			return ms[i]
		}
	}
	return 0
}

// detrend returns x minus its least-squares line, NaN kept.
func detrend(x []float64) []float64 {
	var n, st, sy, stt, sty float64
	for t, y := range x {
		if y == y {
			ft := float64(t)
			n++
			st += ft
			sy += y
			stt += ft * ft
			sty += ft * y
		}
	}
	u := make([]float64, len(x))
	var slope, icpt float64
	if n > 0 {
		icpt = sy / n
		if den := n*stt - st*st; den > 0 {
			slope = (n*sty - st*sy) / den
			icpt = (sy - slope*st) / n
		}
	}
	for t, y := range x {
		u[t] = y - (icpt + slope*float64(t))
	}
	return u
}

// acfPairs is about how many pairs acf looks at. Why not all: detection
// runs on every series of every evaluation, for up to nine lags; 1,024
// pairs pin the correlation down to ±0.03, far below the thresholds.
const acfPairs = 1024

// acf is the correlation of u_t with u_{t+k} over the pairs where both are
// finite (u has mean about 0 after detrend), taking every stride-th pair so
// that about acfPairs are used.
func acf(u []float64, k int) float64 {
	if k <= 0 || k >= len(u) {
		return 0
	}
	stride := max(1, (len(u)-k)/acfPairs)
	var sab, saa, sbb float64
	for t := 0; t+k < len(u); t += stride {
		a, b := u[t], u[t+k]
		if a == a && b == b {
			sab += a * b
			saa += a * a
			sbb += b * b
		}
	}
	if saa == 0 || sbb == 0 {
		return 0
	}
	return sab / math.Sqrt(saa*sbb)
}
