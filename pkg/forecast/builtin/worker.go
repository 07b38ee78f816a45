package builtin

import (
	"fmt"
	"math"
	"slices"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
)

const (
	// minTail is how many residuals after the first two seasons are
	// enough to size the band without the in-sample initialisation ones.
	minTail = 100
	// fewResiduals: below this the empirical tails are too coarse, and the
	// band is widened to at least a normal one.
	fewResiduals = 50
	// relTiny is the smallest half-width of a band relative to the series'
	// largest magnitude, so a flat history still gets an ordered,
	// non-degenerate band (the scorer floors the width at 1e-9·|m| too).
	relTiny = 1e-9
)

// worker holds one goroutine's scratch space, reused across series.
type worker struct {
	req *forecast.Request
	// levels are the requested quantiles plus 0.5; lvlReq[i] is the index
	// in levels of req.Quantiles[i], lvlMed that of 0.5.
	levels []float64
	lvlReq []int
	lvlMed int
	zq     []float64 // standard normal quantiles of req.Quantiles

	x, s0, s, res  []float64
	qv, offs       []float64
	center, spread []float64 // per horizon step, in scaled units
	shift          float64   // added to the point forecast (scaled units)

	// fitted describes the last Holt-Winters fit, for tests.
	fitted struct {
		period int
		p      hwParams
	}
}

func newWorker(req *forecast.Request) *worker {
	w := &worker{req: req}
	w.levels = append(slices.Clone(req.Quantiles), 0.5)
	slices.Sort(w.levels)
	w.levels = slices.Compact(w.levels)
	for _, q := range req.Quantiles {
		i, _ := slices.BinarySearch(w.levels, q)
		w.lvlReq = append(w.lvlReq, i)
		w.zq = append(w.zq, normalQuantile(q))
	}
	w.lvlMed, _ = slices.BinarySearch(w.levels, 0.5)
	w.qv = make([]float64, len(w.levels))
	w.offs = make([]float64, len(req.Quantiles))
	w.center = make([]float64, req.Horizon)
	w.spread = make([]float64, req.Horizon)
	return w
}

// scaling maps the model's units back to the series': y = (c + x·s2)·s1.
// Why: dividing by the largest magnitude first keeps sums of squares finite
// for values near ±MaxFloat64, and centring keeps the recursion's
// arithmetic well conditioned for big offsets with small variations (a
// byte counter at 1e15 moving by 1e3).
type scaling struct{ s1, c, s2 float64 }

func (sc scaling) back(x float64) float64 {
	return clamp((sc.c+x*sc.s2)*sc.s1, -math.MaxFloat64, math.MaxFloat64)
}

// forecast forecasts history i of the request.
func (w *worker) forecast(m *Model, hist []float64, i int) forecast.Forecast {
	// Copy the history from its first finite point on; ±Inf is missing.
	first := slices.IndexFunc(hist, isFinite)
	if first < 0 {
		return forecast.Forecast{Err: fmt.Errorf("%w: no finite points, need %d", forecast.ErrInsufficientData, MinPoints)}
	}
	x := w.x[:0]
	nf := 0
	var s1 float64
	for _, v := range hist[first:] {
		if isFinite(v) {
			nf++
			// v is finite: a plain comparison, not math.Max's NaN
			// handling, in the hottest loop of a steady evaluation.
			if a := math.Abs(v); a > s1 {
				s1 = a
			}
		} else {
			v = math.NaN()
		}
		x = append(x, v)
	}
	w.x = x
	if nf < MinPoints {
		return forecast.Forecast{Err: fmt.Errorf("%w: %d finite points, need %d", forecast.ErrInsufficientData, nf, MinPoints)}
	}
	if s1 == 0 {
		return w.flat(0, relTiny)
	}
	var c float64
	for _, v := range x {
		if v == v {
			c += v / s1
		}
	}
	c /= float64(nf)
	var s2 float64
	for _, v := range x {
		if v == v {
			if a := math.Abs(v/s1 - c); a > s2 {
				s2 = a
			}
		}
	}
	if s2 == 0 {
		return w.flat(hist[first], relTiny*s1)
	}
	for i, v := range x {
		x[i] = (v/s1 - c) / s2
	}
	sc := scaling{s1: s1, c: c, s2: s2}
	trailing := 0
	for i := len(x) - 1; i >= 0 && x[i] != x[i]; i-- {
		trailing++
	}

	var err error
	if m.algorithm == config.AlgoSeasonalNaive {
		err = w.seasonalNaive(m, x)
	} else {
		err = w.holtWinters(m, x, trailing, i)
	}
	if err != nil {
		return forecast.Forecast{Err: err}
	}
	return forecast.Forecast{Values: w.emit(sc, relTiny*s1)}
}

// season returns the seasonal period in steps for x: the configured one, or
// a detected one, or 0.
func (w *worker) season(m *Model, x []float64) int {
	if m.season > 0 {
		return periodOf(m.season, w.req.Step)
	}
	return detectSeason(x, w.req.Step)
}

func (w *worker) holtWinters(m *Model, x []float64, trailing, i int) error {
	caching := m.caching(*w.req)
	var cached fitEntry
	reuse := false
	if caching {
		cached, reuse = m.cache.get(w.req.Keys[i], w.req.Step, w.req.Time, m.refit)
	}
	var period int
	if reuse {
		period = cached.period
	} else {
		period = w.season(m, x)
	}
	if len(x) < 2*period {
		// Too little history for the season (now): a non-seasonal fit.
		period, reuse = 0, false
	}
	f := fitter{x: x}
	from, pEff := 0, 4 // level, α, β*, φ
	if period > 0 {
		w.s0 = grow(w.s0, period)
		w.s = grow(w.s, period)
		f.s0, f.s = w.s0, w.s
		f.l0, f.b0 = initSeasonal(x, f.s0)
		pEff += 1 + period // trend, seasonal terms, γ*
		if len(x)-2*period >= minTail {
			// Leave out the residuals the initial season was fitted on;
			// after them only the smoothing parameters are in-sample.
			from, pEff = 2*period, 4
		}
	} else {
		// x[0] is finite: it is the initial level, and the recursion
		// starts at the next point.
		f.x, f.l0 = x[1:], x[0]
	}
	f.sig0 = initScale(f.x)
	var a, bs, gs, phi float64
	if reuse {
		a, bs, gs, phi = cached.params.alpha, cached.params.betaStar, cached.params.gammaStar, cached.params.phi
	} else {
		a, bs, gs, phi = f.fit(m.fixed)
		if caching {
			m.cache.put(w.req.Keys[i], fitEntry{step: w.req.Step, period: period, params: hwFit{a, bs, gs, phi}, at: w.req.Time})
		}
	}
	p := classic(a, bs, gs, phi)
	w.fitted.period, w.fitted.p = period, p
	copy(f.s, f.s0)
	st, res := runHW(f.x, f.l0, f.b0, f.sig0, f.s, p, from, w.res[:0])
	w.res = res
	if len(res) == 0 {
		// Sparse history: no finite point where a one-step residual is
		// taken (after the initial seasons), so no band to calibrate.
		return fmt.Errorf("%w: no finite point one step after another to calibrate the band on (%d of %d points finite)",
			forecast.ErrInsufficientData, countFinite(x), len(x))
	}

	w.calibrate(res, pEff)
	n := len(f.x)
	// Variance factor of the (h+trailing)-step error: the points missing at
	// the end are steps the model has already forecast blind.
	v := 1.0
	for j := 1; j < trailing; j++ {
		v += sq(cj(p, period, j))
	}
	for h := 1; h <= w.req.Horizon; h++ {
		k := h + trailing
		if k > 1 {
			v += sq(cj(p, period, k-1))
		}
		c := st.l + dampSum(phi, h)*st.b
		if period > 0 {
			c += st.s[(n-1+h)%period]
		}
		w.center[h-1] = c + w.shift
		w.spread[h-1] = math.Sqrt(v)
	}
	return nil
}

func countFinite(x []float64) int {
	n := 0
	for _, v := range x {
		if v == v {
			n++
		}
	}
	return n
}

// cj is the weight of the j-steps-old error in an h-step forecast error.
func cj(p hwParams, period, j int) float64 {
	c := p.alpha + p.beta*dampSum(p.phi, j)
	if period > 0 && j%period == 0 {
		c += p.gamma
	}
	return c
}

// calibrate sets w.offs (per requested quantile, relative to the median) and
// w.shift from one-step residuals; it reorders res.
func (w *worker) calibrate(res []float64, pEff int) {
	n := len(res)
	quantiles(res, w.levels, w.qv)
	med := w.qv[w.lvlMed]
	// Residuals of a fitted model are smaller than its errors on new data
	// by about √((n−p)/n); undo that, at most doubling.
	infl := math.Sqrt(float64(n) / math.Max(float64(n-pEff), float64(n)/4))
	for i, li := range w.lvlReq {
		w.offs[i] = (w.qv[li] - med) * infl
	}
	if n < fewResiduals {
		var ss float64
		for _, r := range res {
			ss += sq(r - med)
		}
		rms := math.Sqrt(ss/float64(n)) * infl
		for i, z := range w.zq {
			if z < 0 {
				w.offs[i] = math.Min(w.offs[i], rms*z)
			} else {
				w.offs[i] = math.Max(w.offs[i], rms*z)
			}
		}
	}
	// The median forecast is the point forecast plus the residuals' median:
	// the fit tracks something like the mean, and on skewed metrics
	// (latencies, sparse counts, spiky rates) the median is well below it.
	// On BOOM this lowered the MASE ratio to seasonal naive by about 0.03.
	w.shift = med
}

func (w *worker) seasonalNaive(m *Model, x []float64) error {
	period := max(w.season(m, x), 1)
	res := seasonalDiffs(x, period, w.res[:0])
	if len(res) < MinPoints-1 && period > 1 {
		period = 1
		res = seasonalDiffs(x, period, res[:0])
	}
	w.res = res
	if len(res) == 0 {
		return fmt.Errorf("%w: no two finite points one step apart", forecast.ErrInsufficientData)
	}
	quantiles(res, w.levels, w.qv)
	for i, li := range w.lvlReq {
		w.offs[i] = w.qv[li]
	}
	w.shift = 0
	n := len(x)
	last := n - 1
	for last >= 0 && x[last] != x[last] {
		last--
	}
	for h := 1; h <= w.req.Horizon; h++ {
		t := n - 1 + h
		i := t - period*((h+period-1)/period)
		for i >= 0 && x[i] != x[i] {
			i -= period
		}
		if i < 0 {
			i = last
		}
		k := (t - i + period - 1) / period // seasons back, at least 1
		w.center[h-1] = x[i]
		w.spread[h-1] = math.Sqrt(float64(k))
	}
	return nil
}

// seasonalDiffs appends x[t]−x[t−m] for every pair of finite points.
func seasonalDiffs(x []float64, m int, res []float64) []float64 {
	for t := m; t < len(x); t++ {
		if d := x[t] - x[t-m]; d == d {
			res = append(res, d)
		}
	}
	return res
}

// flat forecasts a constant v with a band of half-width tiny·|z_q|.
func (w *worker) flat(v, tiny float64) forecast.Forecast {
	for h := range w.center {
		w.center[h], w.spread[h] = 0, 0
	}
	clear(w.offs)
	return forecast.Forecast{Values: w.emit(scaling{s1: 1, c: v, s2: 0}, tiny)}
}

// emit builds Values[q][h] in the series' units from w.center, w.spread and
// w.offs. Every band is at least tiny·|z_q| wide around the median, which
// with monotone offsets makes the values strictly increase in q.
func (w *worker) emit(sc scaling, tiny float64) [][]float64 {
	nq, nh := len(w.req.Quantiles), w.req.Horizon
	buf := make([]float64, nq*nh)
	vals := make([][]float64, nq)
	for qi := range vals {
		vals[qi] = buf[qi*nh : (qi+1)*nh : (qi+1)*nh]
	}
	for h := range nh {
		c, sp := w.center[h], w.spread[h]
		mid := sc.back(c)
		for qi, q := range w.req.Quantiles {
			y := sc.back(c + sp*w.offs[qi])
			floor := clamp(mid+tiny*w.zq[qi], -math.MaxFloat64, math.MaxFloat64)
			switch {
			case q < 0.5:
				y = math.Min(y, floor)
			case q > 0.5:
				y = math.Max(y, floor)
			default:
				y = mid
			}
			if y != y { // cannot happen with finite inputs; never emit NaN
				y = mid
			}
			vals[qi][h] = y
		}
	}
	return vals
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

func sq(x float64) float64 { return x * x }

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
