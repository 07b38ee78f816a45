// Package builtin holds the pure-Go forecasting models that ship in the
// binary: the default (additive Holt-Winters with a damped trend, fitted per
// series, with a detected daily or weekly season) and the seasonal naive
// baseline.
//
// Both answer with quantiles calibrated on each series' own in-sample
// one-step errors, work on histories with missing points, and never return
// NaN or ±Inf. A series with fewer than MinPoints finite points gets an
// error wrapping forecast.ErrInsufficientData.
package builtin

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// MinPoints is the fewest finite history points a built-in model forecasts
// from; with fewer, the series' Forecast.Err wraps
// forecast.ErrInsufficientData. Ten points leave a level, a trend and a
// handful of residuals to size the band from, which is then deliberately
// wide (see Model).
const MinPoints = 10

// Model is a built-in forecaster. It is safe for concurrent use.
//
// holt_winters (the default): additive Holt-Winters, ETS(A,Ad,A), fitted
// per series by minimising the one-step squared error over the history
// (a coarse grid on α refined by bisection, then short grids on γ* and on
// the damped trend (β*, φ)). The season is cfg.Season, or, when that is
// 0, daily or weekly if the history's autocorrelation shows it; either way
// it needs two full seasons of history, and without them the model is
// Holt's damped trend. Initial states come from the first two seasons.
//
// Quantiles: the median is the point forecast; the other levels add the
// empirical quantiles of the in-sample one-step residuals (centred on their
// median), scaled by the square root of the model's h-step variance factor
// (1 + Σ_{j<h} c_j², c_j = α + βφ(1−φ^j)/(1−φ) + γ·[m divides j]; Hyndman
// et al. 2008, class 1), and inflated for the degrees of freedom the fit
// used (√(n/(n−p)), capped at 2). Residuals from the first two seasons are
// left out when enough remain, since the initial season was fitted on them.
// With fewer than 50 residuals the band is at least as wide as a normal one
// with the residuals' RMS.
//
// seasonal_naive: the median is the value one season earlier, repeated
// periodically for longer horizons; the other quantiles add the empirical
// quantiles of the history's seasonal differences, widened by √k for a
// value k seasons back. Without a season (none set or detected) it is the
// naive last-value forecast.
//
// A constant history gives a flat forecast with a band of ±1e-9 relative
// width; every band is at least that wide, so quantiles strictly increase.
type Model struct {
	algorithm string
	season    time.Duration
	fixed     hwFixed
	// refit is how long fitted parameters are reused for requests that
	// name their series (Request.Keys); 0 fits every time.
	refit time.Duration
	cache *fitCache
}

// New returns the built-in model cfg describes. Algorithm "" means
// holt_winters. Alpha, Beta and Gamma are the classic smoothing factors
// (level, trend relative to the level's change, season), in (0, 1]; 0 fits
// them. They apply to holt_winters only.
func New(cfg config.BuiltinConfig) (forecast.Model, error) {
	m := &Model{algorithm: cfg.Algorithm, season: time.Duration(cfg.Season), refit: time.Duration(cfg.RefitInterval), cache: newFitCache()}
	if m.algorithm == "" {
		m.algorithm = config.AlgoHoltWinters
	}
	var errs []error
	switch m.algorithm {
	case config.AlgoHoltWinters:
	case config.AlgoSeasonalNaive:
		if cfg.Alpha != 0 || cfg.Beta != 0 || cfg.Gamma != 0 {
			errs = append(errs, fmt.Errorf("alpha, beta and gamma apply to %s only", config.AlgoHoltWinters))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown algorithm %q, want %s or %s", cfg.Algorithm, config.AlgoHoltWinters, config.AlgoSeasonalNaive))
	}
	if m.season < 0 {
		errs = append(errs, fmt.Errorf("season %v is negative", m.season))
	}
	if m.refit < 0 {
		errs = append(errs, fmt.Errorf("refit interval %v is negative", m.refit))
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"alpha", cfg.Alpha}, {"beta", cfg.Beta}, {"gamma", cfg.Gamma}} {
		if !(p.v >= 0 && p.v <= 1) {
			errs = append(errs, fmt.Errorf("%s %v outside [0, 1]", p.name, p.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("builtin model: %w", err)
	}
	m.fixed = hwFixed{alpha: cfg.Alpha, betaStar: cfg.Beta, gammaStar: cfg.Gamma}
	return m, nil
}

// Default returns the built-in default model: holt_winters with the season
// detected and all parameters fitted. The caller registers it as
// forecast.DefaultName.
func Default() forecast.Model {
	m, err := New(config.DefaultBuiltinConfig)
	if err != nil {
		panic(err) // the zero config is valid; a failure is a bug here
	}
	return m
}

// chunk is how many series a worker takes at a time: large enough that the
// shared counter is not contended, small enough to balance the load.
const chunk = 16

// Forecast implements forecast.Model. Series are forecast in parallel on
// GOMAXPROCS workers; the only batch-level errors are an invalid request
// and ctx ending.
func (m *Model) Forecast(ctx context.Context, req forecast.Request) ([]forecast.Forecast, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	if m.caching(req) {
		m.cache.sweep(req.Time, m.refit)
	}
	out := make([]forecast.Forecast, len(req.Histories))
	workers := min(runtime.GOMAXPROCS(0), (len(req.Histories)+chunk-1)/chunk)
	if workers <= 1 {
		w := newWorker(&req)
		for i, h := range req.Histories {
			if i%chunk == 0 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			out[i] = m.forecastOne(&w, &req, h, i)
		}
		return out, ctx.Err()
	}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newWorker(&req)
			for ctx.Err() == nil {
				lo := int(next.Add(chunk)) - chunk
				if lo >= len(out) {
					return
				}
				for i := lo; i < min(lo+chunk, len(out)); i++ {
					out[i] = m.forecastOne(&w, &req, req.Histories[i], i)
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// forecastOne forecasts series i with *w. A panic (a bug) fails that series
// only, with an error that asks for a report, instead of the process; the
// worker, whose buffers it may have left half-written, is replaced.
func (m *Model) forecastOne(w **worker, req *forecast.Request, h []float64, i int) (f forecast.Forecast) {
	defer func() {
		if p := recover(); p != nil {
			*w = newWorker(req)
			f = forecast.Forecast{Err: fmt.Errorf("built-in model failed on this series (a bug: please report it with the series' data): %v", p)}
		}
	}()
	return (*w).forecast(m, h, i)
}

// caching reports whether req's series may reuse fitted parameters.
func (m *Model) caching(req forecast.Request) bool {
	return m.refit > 0 && m.algorithm == config.AlgoHoltWinters && len(req.Keys) == len(req.Histories) && !req.Time.IsZero()
}

func validate(req forecast.Request) error {
	if req.Keys != nil && len(req.Keys) != len(req.Histories) {
		return fmt.Errorf("builtin model: %d keys for %d histories", len(req.Keys), len(req.Histories))
	}
	if req.Horizon < 1 {
		return fmt.Errorf("builtin model: horizon %d, want at least 1", req.Horizon)
	}
	if len(req.Quantiles) == 0 {
		return fmt.Errorf("builtin model: no quantiles requested")
	}
	for i, q := range req.Quantiles {
		if !(q > 0 && q < 1) {
			return fmt.Errorf("builtin model: quantile %v outside (0, 1)", q)
		}
		if i > 0 && q <= req.Quantiles[i-1] {
			return fmt.Errorf("builtin model: quantiles %v not strictly ascending", req.Quantiles)
		}
	}
	return nil
}
