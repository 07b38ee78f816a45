// Package forecast defines the model interface every forecaster implements
// (built-in Go models, TorchScript models through libtorch) and the registry
// that maps names in the config to models.
package forecast

import (
	"context"
	"time"
)

// Request is a batch of equally spaced histories to forecast.
type Request struct {
	// Histories holds one history per series, oldest first, newest last,
	// one value per Step. Missing points are NaN. Histories may differ in
	// length; the newest point of each is at the same position relative
	// to the forecast origin: the first forecast step is one Step after
	// the last element. Models must neither modify nor keep them: the
	// pipeline reuses them between evaluations.
	Histories [][]float64
	// Step is the spacing of the histories.
	Step time.Duration
	// Horizon is how many steps ahead to forecast, at least 1.
	Horizon int
	// Quantiles are the levels wanted, sorted ascending, each in (0, 1).
	// 0.5 is always among them.
	Quantiles []float64
	// Keys, when set, has one entry per history that names its series
	// stably across requests (the pipeline and the series' labels), so a
	// model may keep per-series state such as fitted parameters. Time is
	// the evaluation's time, by which such state ages; a replay passes
	// the replayed time, not the wall clock.
	Keys []uint64
	Time time.Time
	// Covariates, when set, has one entry per history: the covariates of
	// that series, each aligned to it (Covariate.Values). Only models that
	// implement CovariateModel and say so take them; the pipeline refuses
	// a rule with covariates on any other model at load. Models must
	// neither modify nor keep them.
	Covariates [][]Covariate
}

// Covariate is one extra input series of a history (issue 5; Chronos-2
// takes them): past-only, known up to the newest history point, or
// known-future, known (where not NaN) also over the forecast horizon.
type Covariate struct {
	// Name is the covariate's name in the rule.
	Name string
	// KnownFuture says Values extends beyond the history.
	KnownFuture bool
	// Values[i] is the covariate at the time of history point i: as long
	// as the history for a past-only covariate, the history's length plus
	// Request.Horizon for a known-future one (the forecast steps 1..Horizon
	// follow). NaN where unknown.
	Values []float64
}

// CovariateModel is implemented by models that may take covariates
// (Request.Covariates); TakesCovariates says whether this one does (a
// torchscript model does when its file has covariate inputs and its family
// an adapter for them). Models without it take none.
type CovariateModel interface {
	TakesCovariates() bool
}

// TakesCovariates reports whether m takes covariates.
func TakesCovariates(m Model) bool {
	cm, ok := m.(CovariateModel)
	return ok && cm.TakesCovariates()
}

// Forecast is the model's answer for one series.
type Forecast struct {
	// Values[q][h] is the forecast for quantile Request.Quantiles[q] at
	// h+1 steps after the last history point. Every value is finite, and
	// for a fixed h the values are non-decreasing in q.
	Values [][]float64
	// Err is set when this series could not be forecast (for example too
	// little data); Values is then nil. Other series are unaffected.
	Err error
}

// Model turns histories into quantile forecasts.
type Model interface {
	// Forecast returns one Forecast per history, in order. An error fails
	// the whole batch (for example a dead inference backend); per-series
	// problems go into Forecast.Err.
	Forecast(ctx context.Context, req Request) ([]Forecast, error)
}

// SharedBatches is implemented by models that put concurrent requests into
// shared batches (torchscript models). The pipeline sends such a model a
// rule's two requests, for scoring and for the horizons, at the same time,
// so that they fill one forward instead of two.
type SharedBatches interface {
	SharesBatches() bool
}

// ErrInsufficientData marks a series with too few finite points for the model.
// Wrap it to add detail; callers test with errors.Is and count the skip.
var ErrInsufficientData = insufficientData{}

type insufficientData struct{}

func (insufficientData) Error() string { return "insufficient data" }
