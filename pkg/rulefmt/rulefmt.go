// Package rulefmt is the pipeline file format: types, parsing and
// validation with positions. It never imports the code that runs pipelines.
package rulefmt

import (
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// RuleGroups is one pipeline file.
type RuleGroups struct {
	Groups []RuleGroup `yaml:"groups"`

	// file and root keep where the groups came from, so that checks made
	// after parsing (ErrorAt) can point at a position.
	file string
	root *yaml.Node
}

// RuleGroup is a set of pipelines evaluated together on one schedule.
type RuleGroup struct {
	Name string `yaml:"name"`
	// Interval is how often the group runs; 0 means the config's
	// global evaluation_interval.
	Interval model.Duration `yaml:"interval,omitempty"`
	// QueryOffset delays evaluation for ingestion lag; nil means the
	// config's global query_offset.
	QueryOffset *model.Duration `yaml:"query_offset,omitempty"`
	// Limit fails a rule whose query returns more series than this; 0 is no limit.
	Limit int    `yaml:"limit,omitempty"`
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
	Forecast   string            `yaml:"forecast"`
	Expr       string            `yaml:"expr"`
	Model      string            `yaml:"model,omitempty"`
	Step       model.Duration    `yaml:"step,omitempty"`
	Context    model.Duration    `yaml:"context,omitempty"`
	Horizons   []model.Duration  `yaml:"horizons,omitempty"`
	Quantiles  []float64         `yaml:"quantiles,omitempty"`
	Anomaly    *Anomaly          `yaml:"anomaly,omitempty"`
	Covariates []Covariate       `yaml:"covariates,omitempty"`
	Labels     map[string]string `yaml:"labels,omitempty"`
}

// Anomaly turns scoring on for a rule.
type Anomaly struct {
	Band         []float64 `yaml:"band,omitempty"`
	Direction    string    `yaml:"direction,omitempty"`
	MinDeviation float64   `yaml:"min_deviation,omitempty"`
}

// Covariate is reserved for the foundation-model issue; only an empty list
// is accepted for now.
type Covariate struct {
	Name        string `yaml:"name"`
	Expr        string `yaml:"expr"`
	KnownFuture bool   `yaml:"known_future,omitempty"`
}
