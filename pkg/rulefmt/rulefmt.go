// Package rulefmt is the pipeline file format: types, parsing and
// validation with positions. It never imports the code that runs pipelines.
package rulefmt

import (
	"fmt"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// RuleGroups is one pipeline file.
type RuleGroups struct {
	// Groups lists the file's groups; a file without any is valid and
	// defines nothing, as in Prometheus.
	Groups []RuleGroup `yaml:"groups,omitempty"`

	// file and root keep where the groups came from, so that checks made
	// after parsing (ErrorAt) can point at a position.
	file string
	root *yaml.Node
}

// RuleGroup is a set of pipelines evaluated together on one schedule.
type RuleGroup struct {
	// Name identifies the group; unique within the file.
	Name string `yaml:"name"`
	// Interval is how often the group runs; 0 means the config's
	// global evaluation_interval.
	Interval model.Duration `yaml:"interval,omitempty"`
	// QueryOffset delays evaluation for ingestion lag; when absent, the
	// config's global query_offset applies.
	QueryOffset *model.Duration `yaml:"query_offset,omitempty"`
	// Limit fails a rule whose query returns more series than this; 0 is no limit.
	Limit int `yaml:"limit,omitempty"`
	// Concurrency is how many of the group's pipelines evaluate at once, as
	// in vmalert; 0 or 1 evaluates them one after the other, in order.
	// Pipelines on one torchscript model that run at the same time share
	// its forward batches.
	Concurrency int `yaml:"concurrency,omitempty"`
	// Rules are the group's pipelines.
	Rules []Rule `yaml:"rules"`
}

// Direction values for Anomaly.Direction.
const (
	DirectionBoth  = "both"
	DirectionAbove = "above"
	DirectionBelow = "below"
)

// Rule is one pipeline: read expr, forecast with model, score, emit.
type Rule struct {
	// Forecast is the pipeline's name, a valid metric name unique across
	// all pipeline files; it is the pipeline label of every emitted series.
	Forecast string `yaml:"forecast"`
	// Expr is the PromQL expression whose series are forecast.
	Expr string `yaml:"expr"`
	// Model names a model from the config; "default", the built-in
	// default, always exists.
	Model string `yaml:"model,omitempty"`
	// Step is the resolution of the history given to the model.
	Step model.Duration `yaml:"step,omitempty"`
	// Context is how much history the model gets; a multiple of step and
	// at least two steps.
	Context model.Duration `yaml:"context,omitempty"`
	// Horizons are the forecast leads emitted as series, each a multiple
	// of step.
	Horizons []model.Duration `yaml:"horizons,omitempty"`
	// Quantiles are the forecast levels, each between 0 and 1; 0.5 and the
	// anomaly band's levels are added when missing.
	Quantiles []float64 `yaml:"quantiles,omitempty"`
	// Anomaly turns anomaly scoring on when present, even when empty; omit
	// it for a forecast-only pipeline.
	Anomaly *Anomaly `yaml:"anomaly,omitempty"`
	// Covariates are extra input series for models that take them
	// (Chronos-2 files exported with covariates); a rule with covariates
	// on any other model is refused at load.
	Covariates []Covariate `yaml:"covariates,omitempty"`
	// Labels are added to every emitted series and win over the input's
	// labels.
	Labels map[string]string `yaml:"labels,omitempty"`
}

// Anomaly turns scoring on for a rule.
type Anomaly struct {
	// Band is the pair of quantile levels [lo, hi] whose forecasts are the
	// band edges, with 0 < lo < 0.5 < hi < 1; the score is 1 on an edge.
	Band []float64 `yaml:"band,omitempty"`
	// Direction is which deviations score: both, above (only points above
	// the median) or below.
	Direction string `yaml:"direction,omitempty"`
	// MinDeviation is an absolute floor on the band's half-width, in the
	// metric's units, so that tiny bands do not make huge scores.
	MinDeviation float64 `yaml:"min_deviation,omitempty"`
	// Novelty, when set, makes the score relative to the series' own
	// recent past: each point's score (as above) is divided by the highest
	// score the series had in the preceding window, or by the floor if that
	// is higher. A score of 1 or more then says the point is both at least
	// floor half-widths outside the median and more extreme than anything
	// in the window, which keeps a series that is often outside its band
	// from firing again and again.
	Novelty *Novelty `yaml:"novelty,omitempty"`
}

// Novelty configures Anomaly.Novelty.
type Novelty struct {
	// Window is how far back a series' scores count, e.g. 7d.
	Window model.Duration `yaml:"window"`
	// Floor is the least divisor, in band half-widths; default 1, so a
	// point inside the band never scores 1.
	Floor float64 `yaml:"floor,omitempty"`
}

// DefaultNoveltyFloor is Novelty.Floor's default.
const DefaultNoveltyFloor = 1.0

// Covariate is an extra input series of a rule, read over the same range as
// the target and aligned to its step. A covariate whose expr returns one
// series goes with every target series; several series go with the target
// series whose labels they share (see the README, "Covariates").
type Covariate struct {
	// Name identifies the covariate: a label name, unique in the rule.
	Name string `yaml:"name"`
	// Expr is the PromQL expression of the covariate's series.
	Expr string `yaml:"expr"`
	// KnownFuture says the covariate's future values are known: its expr
	// is read up to the stamp plus the longest horizon (for example a
	// recording rule of a planned load written ahead of time). Past-only
	// covariates (the default) are read up to the stamp.
	KnownFuture bool `yaml:"known_future,omitempty"`
}

// CovariatesRefused is the message that refuses the covariates of pipeline
// rule on model, which is what (e.g. "a built-in model"): the config check
// and the load say the same.
func CovariatesRefused(rule, model, what string) string {
	return fmt.Sprintf("pipeline %q has covariates, and its model %q (%s) takes none: covariates need a torchscript model whose file takes them (Chronos-2 exported with libtorch/export.py --covariates)", rule, model, what)
}
