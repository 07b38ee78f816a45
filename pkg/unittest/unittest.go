// Package unittest runs unit tests for pipeline files, in the style of
// `promtool test rules`: input series written in the expanding notation are
// loaded into a real Prometheus TSDB, each pipeline's expr is evaluated by
// the real PromQL engine, and the pipeline itself (pipeline.Rule with the
// configured models) runs at every evaluation interval up to the times the
// test checks, exactly as the sidecar would run it. The test file says which
// series a pipeline must emit at a time, with which values and tolerance,
// and which series must be anomalous.
//
// A test file looks like:
//
//	rule_files: [../http-red.yml]
//	evaluation_interval: 1m
//	tests:
//	  - name: steady traffic, then a spike
//	    interval: 1m
//	    input_series:
//	      - series: 'http_requests_total{job="api"}'
//	        values: '0+600x120 72600+6000x10'
//	    output_test:
//	      - eval_time: 2h
//	        pipeline: job:http_requests:rate5m
//	        tolerance: 0.01
//	        exp_samples:
//	          - labels: 'openanomaly_y{job="api"}'
//	            value: 10
//	    anomaly_test:
//	      - eval_time: 2h
//	        pipeline: job:http_requests:rate5m
//	        exp_anomalies: []
//	      - eval_time: 2h5m
//	        pipeline: job:http_requests:rate5m
//	        exp_anomalies:
//	          - labels: '{job="api"}'
//
// The README's "Unit tests for pipelines" section documents every key.
package unittest

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/openanomaly/openanomaly/pkg/config/strictyaml"
)

// Defaults of a test file's optional keys.
var (
	// DefaultEvaluationInterval is the evaluation interval of pipelines
	// whose group sets none, when neither the test file nor its config file
	// sets one; it is also the default spacing of input samples.
	DefaultEvaluationInterval = model.Duration(time.Minute)
	// DefaultTolerance is the absolute tolerance of an expected sample.
	DefaultTolerance = 1e-9
	// DefaultRelativeTolerance is the tolerance of an expected sample
	// relative to its magnitude.
	DefaultRelativeTolerance = 1e-6
	// DefaultThreshold is the anomaly score above which a series counts as
	// an anomaly, as in the alert `openanomaly_anomaly_score > 1`.
	DefaultThreshold = 1.0
)

// File is one unit-test file.
type File struct {
	// RuleFiles are the pipeline files under test, as globs relative to
	// the test file's directory.
	RuleFiles []string `yaml:"rule_files"`
	// ConfigFile optionally names a config file, relative to the test
	// file's directory, for its models, metric_prefix,
	// evaluation_interval and query_offset. Its datasource and
	// remote_write are not used.
	ConfigFile string `yaml:"config_file,omitempty"`
	// EvaluationInterval is how often pipelines whose group sets no
	// interval are evaluated; it wins over the config file's.
	EvaluationInterval model.Duration `yaml:"evaluation_interval,omitempty"`
	// Tests are independent: each starts from an empty store.
	Tests []Test `yaml:"tests"`
}

// Test is a set of input series and the checks made on the pipelines'
// outputs while they are evaluated over it.
type Test struct {
	// Name names the test in failure messages and for --run.
	Name string `yaml:"name,omitempty"`
	// Interval is the spacing of the input series' samples; the file's
	// evaluation_interval (default 1m) when absent.
	Interval model.Duration `yaml:"interval,omitempty"`
	// StartTimestamp is the time of every input series' first sample and
	// of the first evaluation: RFC 3339 or Unix seconds; Unix epoch (0)
	// when absent. eval_time counts from it.
	StartTimestamp Timestamp `yaml:"start_timestamp,omitempty"`
	// InputSeries are loaded into the store.
	InputSeries []InputSeries `yaml:"input_series"`
	// OutputTests check emitted samples and their values.
	OutputTests []OutputTest `yaml:"output_test,omitempty"`
	// AnomalyTests check which series are anomalous.
	AnomalyTests []AnomalyTest `yaml:"anomaly_test,omitempty"`
}

// InputSeries is one input series in promtool's notation.
type InputSeries struct {
	// Series is the series' labels in PromQL notation:
	// 'http_requests_total{job="api"}'.
	Series string `yaml:"series"`
	// Values in the expanding notation: '1+1x3' is 1 2 3 4, '_' a missing
	// sample, '_x3' three of them, 'stale' a stale marker.
	Values string `yaml:"values"`
}

// OutputTest checks what one pipeline emitted at one evaluation.
type OutputTest struct {
	// EvalTime is the time, from the test's start, of the evaluation
	// checked: the newest one at or before it.
	EvalTime model.Duration `yaml:"eval_time"`
	// Pipeline is the pipeline's name (its forecast key).
	Pipeline string `yaml:"pipeline"`
	// Tolerance and RelativeTolerance apply to every expected sample that
	// sets none itself.
	Tolerance         *float64 `yaml:"tolerance,omitempty"`
	RelativeTolerance *float64 `yaml:"relative_tolerance,omitempty"`
	// ExpSamples lists, for every kind of output it names (a metric name,
	// and for openanomaly_forecast a horizon and a quantile), the sample of
	// every input series; other kinds are not compared. An empty list
	// means the pipeline emitted nothing at all.
	ExpSamples []ExpSample `yaml:"exp_samples"`
}

// ExpSample is one expected output sample.
type ExpSample struct {
	// Labels in PromQL notation, with the metric name:
	// 'openanomaly_yhat{job="api"}'. The pipeline label is added when
	// absent.
	Labels string `yaml:"labels"`
	// Value is the expected value.
	Value float64 `yaml:"value"`
	// Tolerance and RelativeTolerance override the test's: the sample
	// matches when |got - value| <= max(tolerance,
	// relative_tolerance * |value|).
	Tolerance         *float64 `yaml:"tolerance,omitempty"`
	RelativeTolerance *float64 `yaml:"relative_tolerance,omitempty"`
}

// AnomalyTest checks which series of a pipeline are anomalous at one
// evaluation.
type AnomalyTest struct {
	// EvalTime is as in OutputTest.
	EvalTime model.Duration `yaml:"eval_time"`
	// Pipeline is the pipeline's name; it must have an anomaly section.
	Pipeline string `yaml:"pipeline"`
	// Threshold: a series is anomalous when its anomaly score is greater.
	// Default 1 (outside the band).
	Threshold *float64 `yaml:"threshold,omitempty"`
	// ExpAnomalies lists every anomalous series; empty means none.
	ExpAnomalies []ExpAnomaly `yaml:"exp_anomalies"`
}

// ExpAnomaly is one series expected to be anomalous.
type ExpAnomaly struct {
	// Labels of the series' outputs without the metric name, in PromQL
	// notation: '{job="api"}'. The pipeline label is added when absent;
	// a rule's own labels must be listed.
	Labels string `yaml:"labels"`
}

// Timestamp is a point in time written as RFC 3339 or as Unix seconds.
type Timestamp struct {
	time.Time
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (t *Timestamp) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		t.Time = time.Unix(sec, int64((f-float64(sec))*1e9)).UTC()
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("cannot parse %q as RFC 3339 or Unix seconds", s)
	}
	t.Time = v
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (t Timestamp) MarshalYAML() (any, error) {
	return t.Format(time.RFC3339Nano), nil
}

// Error is one problem in a test file, with its position.
type Error struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	Err       error
}

// Error reads like `http.test.yml:12:9: tests[0].input_series[1].values: ...`.
func (e *Error) Error() string {
	return strictyaml.Position(e.File, e.Line, e.Col) + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// formatDuration prints a duration as the test file would write it.
func formatDuration(d time.Duration) string {
	if d < 0 {
		return "-" + model.Duration(-d).String()
	}
	return model.Duration(d).String()
}

// formatFloat prints a value exactly, so it can be pasted into a test file.
func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// indent prefixes every line of s but the first with prefix.
func indent(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}
