package torch

import (
	"context"
	"fmt"
	"math"
	"sort"
	"sync"
)

// Forward runs rows through the model file's graph. Each row is one context
// of exactly the file's ContextLength (NaN marks missing points and left
// padding); each result is that row's output 0, the native quantiles,
// row-major [Q][H] with the file's Q levels and H steps. Rows go into
// batches of at most the configured batch size, shared with other
// concurrent callers of the same model. Forward neither modifies nor keeps
// the rows.
type Forward func(ctx context.Context, rows [][]float32) ([][]float32, error)

// A Family does what a model family's official pipeline does outside its
// graph: for now, forecasting beyond the file's native horizon (Chronos-
// Bolt's quantile-path feedback, TimesFM's further decoding passes). The
// model file's metadata "family" picks it; families register in init
// functions with RegisterFamily. A file whose family is not registered gets
// the generic one, which forecasts only up to the native horizon.
type Family interface {
	// Forecast returns, for each row, the native quantiles for horizon
	// steps, [Q][horizon] with md's Q levels, the newest context point
	// followed by step 1. horizon is at least 1. A horizon the family
	// cannot produce is an error that says what to do (export a longer
	// horizon). fw is safe to call several times and concurrently.
	Forecast(ctx context.Context, md Metadata, fw Forward, rows [][]float32, horizon int) ([][][]float32, error)
}

// A CovariateFamily is a Family that also forecasts with covariates, from a
// file that takes them (Metadata.TakesCovariates).
type CovariateFamily interface {
	Family
	// ForecastTasks returns, for each task's target rows in order (task
	// 0's targets, then task 1's, ...), what Forecast returns for a row. A task's Future rows are the known
	// values of its rows over horizon steps (not the file's horizon), NaN
	// where unknown, or nil. fw is safe to call several times and
	// concurrently.
	ForecastTasks(ctx context.Context, md Metadata, fw ForwardTasks, tasks []Task, horizon int) ([][][]float32, error)
}

var (
	familiesMu sync.RWMutex
	families   = map[string]Family{}
)

// RegisterFamily makes f the adapter of model files whose metadata family is
// name. It panics when name is registered twice, as a programming error.
func RegisterFamily(name string, f Family) {
	familiesMu.Lock()
	defer familiesMu.Unlock()
	if _, dup := families[name]; dup {
		panic(fmt.Sprintf("torch: family %q registered twice", name))
	}
	families[name] = f
}

// Families returns the names of the registered families, sorted.
func Families() []string {
	familiesMu.RLock()
	defer familiesMu.RUnlock()
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func familyOf(name string) Family {
	familiesMu.RLock()
	defer familiesMu.RUnlock()
	if f, ok := families[name]; ok {
		return f
	}
	return Generic{}
}

// Generic is the family of files with no adapter of their own: one forward,
// horizons up to the file's native one.
type Generic struct{}

// Forecast implements Family.
func (Generic) Forecast(ctx context.Context, md Metadata, fw Forward, rows [][]float32, horizon int) ([][][]float32, error) {
	if horizon > md.Horizon {
		return nil, fmt.Errorf("horizon %d is longer than the file's %d steps, and model family %q has no adapter that forecasts further (families with one: %v): export a file with a longer horizon",
			horizon, md.Horizon, md.Family, Families())
	}
	res, err := fw(ctx, rows)
	if err != nil {
		return nil, err
	}
	return Native(md, res, horizon), nil
}

// Native cuts flat [Q][H] forward results down to [Q][horizon] per row,
// horizon at most md.Horizon. Families use it on what Forward returned.
func Native(md Metadata, res [][]float32, horizon int) [][][]float32 {
	q, h := len(md.Quantiles), md.Horizon
	out := make([][][]float32, len(res))
	for r, flat := range res {
		out[r] = make([][]float32, q)
		for k := range q {
			out[r][k] = flat[k*h : k*h+horizon : k*h+horizon]
		}
	}
	return out
}

// FutureWindow returns the known future values of steps from .. from+h-1
// of each row (step 0 is the first forecast step), NaN where unknown or
// beyond what fut holds; nil for nil. Families use it to cut a
// task's Future (horizon steps) to the file's horizon for a forward.
func FutureWindow(fut [][]float32, from, h int) [][]float32 {
	if fut == nil {
		return nil
	}
	nan := float32(math.NaN())
	out := make([][]float32, len(fut))
	for r, f := range fut {
		out[r] = make([]float32, h)
		for s := range h {
			out[r][s] = nan
			if from+s < len(f) {
				out[r][s] = f[from+s]
			}
		}
	}
	return out
}
