package unittest

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/config/strictyaml"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/builtin"
	"github.com/openanomaly/openanomaly/pkg/pipeline"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// suite is a loaded, validated test file, ready to run.
type suite struct {
	file      string
	models    *forecast.Registry
	prefix    string
	pipelines map[string]*pipelineDef
	tests     []*testCase
	// subqueryStep is the default step of subqueries without one.
	subqueryStep time.Duration
}

// pipelineDef is one pipeline under test with its group's settings.
type pipelineDef struct {
	spec        rulefmt.Rule
	interval    time.Duration
	queryOffset time.Duration
	limit       int
}

// testCase is one entry of tests, parsed.
type testCase struct {
	name      string // as printed in messages
	start     time.Time
	series    []inputSeries
	outputs   []*outputCheck
	anomalies []*anomalyCheck
}

type outputCheck struct {
	pipeline string
	evalTime time.Duration
	// kinds are the kinds of output compared (see kind).
	kinds   map[string]bool
	samples []expSample
}

type expSample struct {
	lset     labels.Labels
	value    float64
	abs, rel float64
}

type anomalyCheck struct {
	pipeline  string
	evalTime  time.Duration
	threshold float64
	exp       []labels.Labels
}

// loader collects the problems of one test file.
type loader struct {
	file   string
	root   *yaml.Node
	errs   []error
	failed map[*yaml.Node]bool
	parser parser.Parser
	// rulesBroken is set when the rule files had errors: a pipeline
	// that checks name may be missing because of them, which those
	// errors already say.
	rulesBroken bool
}

func (l *loader) errorf(path []any, format string, args ...any) {
	l.errorAt(path, 0, fmt.Errorf(format, args...))
}

// errorAt reports err at the node found at path, col characters into its
// value when col > 0. Nodes that did not decode were reported already.
func (l *loader) errorAt(path []any, col int, err error) {
	e := &Error{File: l.file, Err: err}
	if n, _ := strictyaml.Find(l.root, path...); n != nil {
		if l.failed[n] {
			return
		}
		e.Line, e.Col = n.Line, n.Column
		if col > 0 && !strings.Contains(n.Value, "\n") {
			switch n.Style {
			case 0:
				e.Col += col - 1
			case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
				e.Col += col
			}
		}
	}
	if len(path) > 0 {
		e.Err = fmt.Errorf("%s: %w", strictyaml.Path(path), err)
	}
	l.errs = append(l.errs, e)
}

// load reads and validates a test file and everything it names. All
// problems are reported at once; the suite is nil when there are any.
func load(file string, o Options) (*suite, []error) {
	content, err := os.ReadFile(file)
	if err != nil {
		return nil, []error{&Error{File: file, Err: err}}
	}
	root, err := strictyaml.Parse(content)
	if err != nil {
		var se *strictyaml.Error
		if errors.As(err, &se) {
			return nil, []error{&Error{File: file, Line: se.Line, Col: se.Col, Err: se.Err}}
		}
		return nil, []error{&Error{File: file, Err: err}}
	}
	l := &loader{file: file, root: root, failed: map[*yaml.Node]bool{}, parser: parser.NewParser(parser.Options{})}
	var f File
	for _, de := range strictyaml.Decode(root, &f) {
		l.failed[de.Node] = true
		msg := de.Err
		if p := de.Path.String(); p != "" {
			msg = fmt.Errorf("%s: %w", p, de.Err)
		}
		l.errs = append(l.errs, &Error{File: file, Line: de.Line, Col: de.Col, Err: msg})
	}
	if root == nil {
		return nil, []error{&Error{File: file, Err: errors.New("the file is empty")}}
	}

	// Validation goes on after decoding errors, so that everything is
	// reported at once; values that did not decode are not reported again.
	s := &suite{file: file, pipelines: map[string]*pipelineDef{}}
	dir := filepath.Dir(file)
	cfg := l.loadConfig(dir, f.ConfigFile)
	l.loadRules(s, dir, f.RuleFiles, cfg)
	s.prefix = config.DefaultMetricPrefix
	if cfg != nil {
		s.prefix = cfg.Global.MetricPrefix
	}
	if len(l.errs) == 0 {
		s.models = l.buildModels(cfg, o)
	}

	interval := time.Duration(DefaultEvaluationInterval)
	switch {
	case f.EvaluationInterval < 0:
		l.errorf([]any{"evaluation_interval"}, "evaluation_interval %s must not be negative", f.EvaluationInterval)
	case f.EvaluationInterval > 0:
		interval = time.Duration(f.EvaluationInterval)
	case cfg != nil && cfg.Global.EvaluationInterval > 0:
		interval = time.Duration(cfg.Global.EvaluationInterval)
	}
	s.subqueryStep = interval
	for _, p := range s.pipelines {
		if p.interval == 0 {
			p.interval = interval
		}
	}

	if len(f.Tests) == 0 {
		l.errorf([]any{"tests"}, "no tests defined")
	}
	inputStep := time.Duration(DefaultEvaluationInterval)
	if f.EvaluationInterval > 0 {
		inputStep = time.Duration(f.EvaluationInterval)
	}
	// Every test is checked, also those --run leaves out.
	for i := range f.Tests {
		tc := l.loadTest(s, i, &f.Tests[i], inputStep)
		if tc != nil && (o.Run == nil || o.Run.MatchString(f.Tests[i].Name)) {
			s.tests = append(s.tests, tc)
		}
	}
	if len(l.errs) > 0 {
		return nil, l.sorted()
	}
	return s, nil
}

// sorted returns the errors with those about the test file first, by
// position; errors in the files it names follow in the order found.
func (l *loader) sorted() []error {
	pos := func(err error) (bool, int, int) {
		var e *Error
		if errors.As(err, &e) && e.File == l.file {
			return true, e.Line, e.Col
		}
		return false, 0, 0
	}
	slices.SortStableFunc(l.errs, func(a, b error) int {
		ia, la, ca := pos(a)
		ib, lb, cb := pos(b)
		switch {
		case ia != ib:
			if ia {
				return -1
			}
			return 1
		case la != lb:
			return la - lb
		}
		return ca - cb
	})
	return l.errs
}

// loadConfig loads the optional config file; nil when there is none or it
// is invalid (its errors are reported).
func (l *loader) loadConfig(dir, name string) *config.Config {
	if name == "" {
		return nil
	}
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	cfg, errs := config.LoadFile(path)
	if len(errs) > 0 {
		l.errorf([]any{"config_file"}, "config file %s is invalid", path)
		l.errs = append(l.errs, errs...)
		return nil
	}
	return cfg
}

// loadRules parses the pipeline files the globs name and records their
// pipelines in s, checking them against cfg (or, without one, that they use
// only the built-in default model).
func (l *loader) loadRules(s *suite, dir string, globs []string, cfg *config.Config) {
	before := len(l.errs)
	defer func() { l.rulesBroken = len(l.errs) > before }()
	if len(globs) == 0 {
		l.errorf([]any{"rule_files"}, "rule_files is empty: name the pipeline files under test")
		return
	}
	var paths []string
	for i, g := range globs {
		pattern := g
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, pattern)
		}
		m, err := filepath.Glob(pattern)
		switch {
		case err != nil:
			l.errorf([]any{"rule_files", i}, "invalid pattern %q: %v", g, err)
		case len(m) == 0:
			l.errorf([]any{"rule_files", i}, "%q matches no file", g)
		}
		paths = append(paths, m...)
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)

	var files []*rulefmt.RuleGroups
	for _, p := range paths {
		rgs, errs := rulefmt.ParseFile(p)
		l.errs = append(l.errs, errs...)
		if rgs != nil {
			files = append(files, rgs)
		}
	}
	l.errs = append(l.errs, rulefmt.CheckUnique(files...)...)
	if cfg != nil {
		l.errs = append(l.errs, config.CheckModels(cfg, files...)...)
	}
	for _, rgs := range files {
		for gi, g := range rgs.Groups {
			offset := time.Duration(0)
			if cfg != nil {
				offset = time.Duration(cfg.Global.QueryOffset)
			}
			if g.QueryOffset != nil {
				offset = time.Duration(*g.QueryOffset)
			}
			for ri, r := range g.Rules {
				if cfg == nil && r.Model != rulefmt.DefaultModel {
					l.errs = append(l.errs, rgs.ErrorAt(gi, ri, "model",
						fmt.Errorf("model %q is not the built-in default; name the config file that defines it with config_file in the test file", r.Model)))
				}
				s.pipelines[r.Forecast] = &pipelineDef{
					spec: r, interval: time.Duration(g.Interval), queryOffset: offset, limit: g.Limit,
				}
			}
		}
	}
}

// buildModels makes the models the pipelines use: the built-in default,
// and with a config file the models it defines, built by o.Models.
func (l *loader) buildModels(cfg *config.Config, o Options) *forecast.Registry {
	if cfg == nil {
		reg := forecast.NewRegistry()
		if err := reg.Register(forecast.DefaultName, builtin.Default()); err != nil {
			l.errs = append(l.errs, err)
		}
		return reg
	}
	if o.Models == nil {
		l.errorf([]any{"config_file"}, "this runner cannot build a config file's models")
		return nil
	}
	reg, err := o.Models(cfg)
	if err != nil {
		l.errorf([]any{"config_file"}, "models: %v", err)
		return nil
	}
	return reg
}

// loadTest parses and checks tests[i]; nil when it has errors.
func (l *loader) loadTest(s *suite, i int, t *Test, inputStep time.Duration) *testCase {
	nerrs := len(l.errs)
	base := []any{"tests", i}
	at := func(path ...any) []any { return append(slices.Clip(base), path...) }
	tc := &testCase{name: fmt.Sprintf("#%d", i+1), start: time.Unix(0, 0).UTC()}
	if t.Name != "" {
		tc.name = fmt.Sprintf("%q", t.Name)
	}
	if !t.StartTimestamp.IsZero() {
		tc.start = t.StartTimestamp.Time
	}
	step := inputStep
	switch {
	case t.Interval < 0:
		l.errorf(at("interval"), "interval %s must not be negative", t.Interval)
	case t.Interval > 0:
		step = time.Duration(t.Interval)
	}

	// Input series.
	if len(t.InputSeries) == 0 {
		l.errorf(at("input_series"), "no input series")
	}
	seen := map[uint64]int{}
	for j, is := range t.InputSeries {
		lset, err := l.parser.ParseMetric(is.Series)
		if err != nil {
			col, msg := parseErrorAt(err, 0)
			l.errorAt(at("input_series", j, "series"), col, fmt.Errorf("%s", msg))
			continue
		}
		if prev, dup := seen[lset.Hash()]; dup {
			l.errorf(at("input_series", j, "series"), "series %s is already defined in input_series[%d]", seriesString(lset), prev)
			continue
		}
		seen[lset.Hash()] = j
		if strings.TrimSpace(is.Values) == "" {
			l.errorf(at("input_series", j, "values"), "values is empty")
			continue
		}
		// ParseSeriesDesc reads "labels values"; the labels are parsed
		// above, so that errors point into the right key.
		const prefix = "{} "
		_, vals, err := l.parser.ParseSeriesDesc(prefix + is.Values)
		if err != nil {
			col, msg := parseErrorAt(err, len(prefix))
			l.errorAt(at("input_series", j, "values"), col, fmt.Errorf("%s", msg))
			continue
		}
		in := inputSeries{lset: lset}
		for k, v := range vals {
			if v.Omitted {
				continue
			}
			ts := tc.start.Add(time.Duration(k) * step).UnixMilli()
			in.samples = append(in.samples, inputSample{t: ts, f: v.Value, h: v.Histogram})
		}
		tc.series = append(tc.series, in)
	}

	// Checks.
	if len(t.OutputTests) == 0 && len(t.AnomalyTests) == 0 {
		l.errorf(base, "the test checks nothing: add output_test or anomaly_test")
	}
	for j := range t.OutputTests {
		if c := l.loadOutputTest(s, at("output_test", j), &t.OutputTests[j]); c != nil {
			tc.outputs = append(tc.outputs, c)
		}
	}
	for j := range t.AnomalyTests {
		if c := l.loadAnomalyTest(s, at("anomaly_test", j), &t.AnomalyTests[j]); c != nil {
			tc.anomalies = append(tc.anomalies, c)
		}
	}
	if len(l.errs) > nerrs {
		return nil
	}
	return tc
}

// pipelineFor checks the pipeline key of a check and returns its pipeline.
func (l *loader) pipelineFor(s *suite, path []any, name string) *pipelineDef {
	if name == "" {
		l.errorf(append(path, "pipeline"), "pipeline is required")
		return nil
	}
	p, ok := s.pipelines[name]
	if !ok && l.rulesBroken {
		return nil
	}
	if !ok {
		names := make([]string, 0, len(s.pipelines))
		for n := range s.pipelines {
			names = append(names, n)
		}
		slices.Sort(names)
		if len(names) == 0 {
			l.errorf(append(path, "pipeline"), "unknown pipeline %q: the rule files define none", name)
		} else {
			l.errorf(append(path, "pipeline"), "unknown pipeline %q; the rule files define %s", name, strings.Join(names, ", "))
		}
		return nil
	}
	return p
}

func (l *loader) checkEvalTime(path []any, d time.Duration) {
	if d < 0 {
		l.errorf(append(path, "eval_time"), "eval_time %s must not be negative", formatDuration(d))
	}
}

// tolerance returns a tolerance key's value, or def when it is absent.
func (l *loader) tolerance(path []any, key string, v *float64, def float64) float64 {
	if v == nil {
		return def
	}
	if !(*v >= 0) || math.IsInf(*v, 0) {
		l.errorf(append(path, key), "%s %v must be a finite number >= 0", key, *v)
	}
	return *v
}

// outputNames returns the metric names a pipeline emits, with the reason a
// name may not be there.
func (s *suite) outputNames(p *pipelineDef) map[string]string {
	names := map[string]string{
		s.prefix + pipeline.SuffixY:    "",
		s.prefix + pipeline.SuffixYhat: "",
	}
	for _, suffix := range []string{pipeline.SuffixLower, pipeline.SuffixUpper, pipeline.SuffixScore} {
		names[s.prefix+suffix] = ""
		if p.spec.Anomaly == nil {
			names[s.prefix+suffix] = "it has no anomaly section"
		}
	}
	names[s.prefix+pipeline.SuffixForecast] = ""
	if len(p.spec.Horizons) == 0 {
		names[s.prefix+pipeline.SuffixForecast] = "it has no horizons"
	}
	return names
}

func (l *loader) loadOutputTest(s *suite, path []any, t *OutputTest) *outputCheck {
	nerrs := len(l.errs)
	p := l.pipelineFor(s, path, t.Pipeline)
	l.checkEvalTime(path, time.Duration(t.EvalTime))
	abs := l.tolerance(path, "tolerance", t.Tolerance, DefaultTolerance)
	rel := l.tolerance(path, "relative_tolerance", t.RelativeTolerance, DefaultRelativeTolerance)
	if p == nil {
		return nil
	}
	c := &outputCheck{pipeline: t.Pipeline, evalTime: time.Duration(t.EvalTime), kinds: map[string]bool{}}
	valid := s.outputNames(p)
	seen := map[uint64]int{}
	for k, es := range t.ExpSamples {
		sp := append(slices.Clip(path), "exp_samples", k)
		lset, ok := l.expLabels(append(slices.Clip(sp), "labels"), es.Labels, t.Pipeline)
		if !ok {
			continue
		}
		name := lset.Get(labels.MetricName)
		why, known := valid[name]
		switch {
		case name == "":
			l.errorf(append(sp, "labels"), "labels %q have no metric name; want one of %s", es.Labels, strings.Join(sortedKeys(valid), ", "))
			continue
		case !known:
			l.errorf(append(sp, "labels"), "pipelines emit no series named %q; want one of %s", name, strings.Join(sortedKeys(valid), ", "))
			continue
		case why != "":
			l.errorf(append(sp, "labels"), "pipeline %q emits no %s: %s", t.Pipeline, name, why)
			continue
		}
		if prev, dup := seen[lset.Hash()]; dup {
			l.errorf(append(sp, "labels"), "sample %s is already expected in exp_samples[%d]", seriesString(lset), prev)
			continue
		}
		seen[lset.Hash()] = k
		if math.IsNaN(es.Value) || math.IsInf(es.Value, 0) {
			l.errorf(append(sp, "value"), "value %v: pipelines never emit NaN or ±Inf", es.Value)
		}
		c.kinds[kind(lset)] = true
		c.samples = append(c.samples, expSample{
			lset: lset, value: es.Value,
			abs: l.tolerance(sp, "tolerance", es.Tolerance, abs),
			rel: l.tolerance(sp, "relative_tolerance", es.RelativeTolerance, rel),
		})
	}
	if len(l.errs) > nerrs {
		return nil
	}
	return c
}

func (l *loader) loadAnomalyTest(s *suite, path []any, t *AnomalyTest) *anomalyCheck {
	nerrs := len(l.errs)
	p := l.pipelineFor(s, path, t.Pipeline)
	l.checkEvalTime(path, time.Duration(t.EvalTime))
	threshold := DefaultThreshold
	if t.Threshold != nil {
		threshold = *t.Threshold
		if !(threshold >= 0) || math.IsInf(threshold, 0) {
			l.errorf(append(path, "threshold"), "threshold %v must be a finite number >= 0", threshold)
		}
	}
	if p == nil {
		return nil
	}
	if p.spec.Anomaly == nil {
		l.errorf(append(path, "pipeline"), "pipeline %q has no anomaly section: it emits no anomaly score", t.Pipeline)
		return nil
	}
	c := &anomalyCheck{pipeline: t.Pipeline, evalTime: time.Duration(t.EvalTime), threshold: threshold}
	seen := map[uint64]int{}
	for k, ea := range t.ExpAnomalies {
		lp := append(slices.Clip(path), "exp_anomalies", k, "labels")
		lset, ok := l.expLabels(lp, ea.Labels, t.Pipeline)
		if !ok {
			continue
		}
		if name := lset.Get(labels.MetricName); name != "" {
			l.errorf(lp, "labels %q have a metric name; an anomaly is named by the labels of its series alone, like '{job=\"api\"}'", ea.Labels)
			continue
		}
		if prev, dup := seen[lset.Hash()]; dup {
			l.errorf(lp, "anomaly %s is already expected in exp_anomalies[%d]", lset, prev)
			continue
		}
		seen[lset.Hash()] = k
		c.exp = append(c.exp, lset)
	}
	if len(l.errs) > nerrs {
		return nil
	}
	return c
}

// expLabels parses expected labels and adds the pipeline label, which must
// name the pipeline when given.
func (l *loader) expLabels(path []any, s, pipelineName string) (labels.Labels, bool) {
	if strings.TrimSpace(s) == "" {
		l.errorf(path, "labels are required")
		return labels.EmptyLabels(), false
	}
	lset, err := l.parser.ParseMetric(s)
	if err != nil {
		col, msg := parseErrorAt(err, 0)
		l.errorAt(path, col, fmt.Errorf("%s", msg))
		return labels.EmptyLabels(), false
	}
	switch v := lset.Get(pipeline.LabelPipeline); v {
	case "":
		b := labels.NewBuilder(lset)
		b.Set(pipeline.LabelPipeline, pipelineName)
		lset = b.Labels()
	case pipelineName:
	default:
		l.errorf(path, "label pipeline=%q differs from the test's pipeline %q", v, pipelineName)
		return labels.EmptyLabels(), false
	}
	return lset, true
}

// parseErrorAt turns a PromQL parse error into a message and the 1-based
// character of the input it points at (0 when unknown), for input that was
// parsed with offset characters in front of it.
func parseErrorAt(err error, offset int) (int, string) {
	var pe *parser.ParseErr
	if pes, ok := errors.AsType[parser.ParseErrors](err); ok && len(pes) > 0 {
		pe = &pes[0]
	} else if e, ok := errors.AsType[*parser.ParseErr](err); ok {
		pe = e
	}
	if pe == nil {
		return 0, err.Error()
	}
	col := int(pe.PositionRange.Start) - offset + 1
	if col < 1 {
		col = 1
	}
	return col, fmt.Sprintf("parse error at character %d: %v", col, pe.Err)
}

// kind names one kind of output: each input series emits at most one
// sample of a kind per evaluation. It is the metric name, and for
// forecasts the horizon and the quantile.
func kind(lset labels.Labels) string {
	return lset.Get(labels.MetricName) + "\xff" + lset.Get(pipeline.LabelHorizon) + "\xff" + lset.Get(pipeline.LabelQuantile)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
