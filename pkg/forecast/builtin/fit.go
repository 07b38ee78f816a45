package builtin

import "math"

// fitter searches the smoothing parameters that minimise the one-step sum
// of squared clipped errors over the history.
type fitter struct {
	x      []float64
	l0, b0 float64
	s0, s  []float64 // initial seasonal terms and a working copy; empty without a season
	sig0   float64   // initial error scale of the clipped updates
}

// hwFixed holds the classic parameters the user fixed in the config; 0 means
// fitted.
type hwFixed struct {
	alpha, betaStar, gammaStar float64
}

// Search grids. Why so coarse: the engine fits 10,000 series per
// evaluation on a couple of cores, so the search has a budget of about ten
// passes over the history. The loss is smooth and flat near its minimum:
// on BOOM (full protocol, 77 series) a 7-point α grid with two bisection
// rounds, 4 γ* and 4 trend candidates (about 20 passes) was no more
// accurate than this (about 10). φ < 1 always: an undamped trend fitted on
// a day of minute data extrapolates noise.
var (
	alphaGrid    = []float64{0.03, 0.1, 0.25, 0.5, 0.85}
	gammaGrid    = []float64{0, 0.3} // besides startGammaStar
	trendGrid    = []struct{ betaStar, phi float64 }{{0.05, 0.98}, {0.2, 0.9}}
	bisectRounds = 1
)

const (
	alphaMin = 0.005
	alphaMax = 0.999
	// Starting values of the parameters not yet searched.
	startGammaStar = 0.1
	startPhi       = 0.98
)

func (f *fitter) sse(a, bs, gs, phi float64) float64 {
	p := classic(a, bs, gs, phi)
	var v float64
	if len(f.s0) == 0 {
		v = lossLevel(f.x, f.l0, f.b0, f.sig0, p)
	} else {
		copy(f.s, f.s0)
		v = lossSeasonal(f.x, f.l0, f.b0, f.sig0, f.s, p)
	}
	if !(v < math.Inf(1)) { // NaN or +Inf: never the best
		return math.Inf(1)
	}
	return v
}

// fit returns the classic parameters α, β*, γ*, φ.
func (f *fitter) fit(fx hwFixed) (a, bs, gs, phi float64) {
	seasonal := len(f.s0) > 0
	a, bs, gs, phi = 0.3, 0, 0, startPhi
	if seasonal {
		gs = startGammaStar
	}
	if fx.alpha > 0 {
		a = fx.alpha
	}
	if fx.betaStar > 0 {
		bs = fx.betaStar
	}
	if fx.gammaStar > 0 {
		gs = fx.gammaStar
	}

	best := math.Inf(1)
	if fx.alpha == 0 {
		a, best = f.searchAlpha(bs, gs, phi)
	}
	if seasonal && fx.gammaStar == 0 {
		if math.IsInf(best, 1) {
			best = f.sse(a, bs, gs, phi)
		}
		for _, g := range gammaGrid {
			if g == gs {
				continue
			}
			if v := f.sse(a, bs, g, phi); v < best {
				best, gs = v, g
			}
		}
	}
	if fx.betaStar == 0 {
		if math.IsInf(best, 1) {
			best = f.sse(a, bs, gs, phi)
		}
		for _, c := range trendGrid {
			if v := f.sse(a, c.betaStar, gs, c.phi); v < best {
				best, bs, phi = v, c.betaStar, c.phi
			}
		}
		if fx.alpha == 0 && bs > 0 {
			// The trend changes the best α (a trend absorbs some of what α
			// did); one more look on either side.
			for _, k := range []float64{0.7, 1.4} {
				c := clamp(a*k, alphaMin, alphaMax)
				if v := f.sse(c, bs, gs, phi); v < best {
					best, a = v, c
				}
			}
		}
	}
	return a, bs, gs, phi
}

// searchAlpha finds α on the grid, then bisects towards the better
// neighbour.
func (f *fitter) searchAlpha(bs, gs, phi float64) (float64, float64) {
	bi, best := 0, math.Inf(1)
	for i, a := range alphaGrid {
		if v := f.sse(a, bs, gs, phi); v < best {
			bi, best = i, v
		}
	}
	a := alphaGrid[bi]
	lo, hi := alphaMin, alphaMax
	if bi > 0 {
		lo = alphaGrid[bi-1]
	}
	if bi < len(alphaGrid)-1 {
		hi = alphaGrid[bi+1]
	}
	for range bisectRounds {
		l, h := (lo+a)/2, (a+hi)/2
		vl, vh := f.sse(l, bs, gs, phi), f.sse(h, bs, gs, phi)
		switch {
		case vl < best && vl <= vh:
			hi, a, best = a, l, vl
		case vh < best:
			lo, a, best = a, h, vh
		default:
			lo, hi = l, h
		}
	}
	return a, best
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }
