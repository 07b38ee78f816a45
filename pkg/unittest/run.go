package unittest

import (
	"context"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/pipeline"
)

// Options configure a run.
type Options struct {
	// Models builds the models of a test file's config_file, the built-in
	// default among them. The command passes the function `run` uses, so
	// that tests run exactly the models the sidecar would. Without it, a
	// test file that names a config file fails.
	Models func(*config.Config) (*forecast.Registry, error)
	// Run, when set, runs only the tests whose name it matches.
	Run *regexp.Regexp
}

// maxListed bounds how many scores a failed anomaly test lists.
const maxListed = 20

// RunFiles runs the test files in order and prints promtool-like results to
// w: "Unit Testing: FILE", then SUCCESS, or FAILED: and every problem. It
// reports whether every file passed.
func RunFiles(ctx context.Context, w io.Writer, o Options, files ...string) bool {
	ok := true
	ran := 0
	for _, f := range files {
		fmt.Fprintf(w, "Unit Testing: %s\n", f)
		n, errs := runFile(ctx, f, o)
		ran += n
		if len(errs) > 0 {
			ok = false
			fmt.Fprintln(w, "  FAILED:")
			for _, err := range errs {
				fmt.Fprintln(w, err)
			}
		} else {
			fmt.Fprintln(w, "  SUCCESS")
		}
		fmt.Fprintln(w)
	}
	// A --run that matches nothing would pass a CI job that tests nothing.
	if ok && o.Run != nil && ran == 0 {
		fmt.Fprintf(w, "FAILED: no test matched --run %q\n", o.Run.String())
		return false
	}
	return ok
}

// RunFile runs one test file. It returns its problems: errors in the file
// or the files it names (each with file:line:col), evaluations that failed,
// and checks whose expectation was not met. None means the file passed.
func RunFile(ctx context.Context, file string, o Options) []error {
	_, errs := runFile(ctx, file, o)
	return errs
}

// runFile is RunFile that also says how many tests it ran.
func runFile(ctx context.Context, file string, o Options) (int, []error) {
	s, errs := load(file, o)
	if len(errs) > 0 {
		return 0, errs
	}
	engine := NewEngine(s.subqueryStep)
	defer engine.Close()
	ran := 0
	for _, tc := range s.tests {
		ran++
		errs = append(errs, s.run(ctx, engine, tc)...)
		if ctx.Err() != nil {
			break
		}
	}
	return ran, errs
}

// evalResult is what one evaluation of a pipeline emitted.
type evalResult struct {
	samples []emitted
	skipped map[string]int
}

type emitted struct {
	lset labels.Labels
	v    float64
}

// recorder is the Appender of one pipeline: it keeps what the current
// evaluation emitted, without stale markers (they say a series is gone).
type recorder struct{ samples []emitted }

func (r *recorder) Append(lset labels.Labels, _ int64, v float64) {
	if value.IsStaleNaN(v) {
		return
	}
	r.samples = append(r.samples, emitted{lset: lset, v: v})
}

// evaluated is one pipeline's run through a test.
type evaluated struct {
	name    string
	def     *pipelineDef
	rule    *pipeline.Rule
	rec     *recorder
	last    time.Duration // offset of its last evaluation
	needed  map[time.Duration]bool
	results map[time.Duration]evalResult
}

// tick is the offset from the test's start of the evaluation a check at
// evalTime looks at: the newest at or before it.
func tick(evalTime, interval time.Duration) time.Duration {
	return evalTime - evalTime%interval
}

// run evaluates the pipelines a test checks and checks them. Each pipeline
// is evaluated at every multiple of its interval from the test's start to
// its last check, with the input samples up to that time in the store, as
// the sidecar would evaluate it: the rule carries its state (the points
// since the previous evaluation, the series it emitted) from one
// evaluation to the next.
func (s *suite) run(ctx context.Context, engine *promql.Engine, tc *testCase) []error {
	st, err := openStore(tc.series)
	if err != nil {
		return []error{fmt.Errorf("    test %s: %w", tc.name, err)}
	}
	defer st.Close()
	q := &Querier{Engine: engine, Queryable: st.db}

	// The pipelines the test checks, in the order they first appear.
	var evs []*evaluated
	byName := map[string]*evaluated{}
	need := func(name string, evalTime time.Duration) {
		ev, ok := byName[name]
		if !ok {
			def := s.pipelines[name]
			ev = &evaluated{
				name: name, def: def, rule: pipeline.NewRule(def.spec, s.prefix), rec: &recorder{},
				needed: map[time.Duration]bool{}, results: map[time.Duration]evalResult{},
			}
			byName[name] = ev
			evs = append(evs, ev)
		}
		t := tick(evalTime, ev.def.interval)
		ev.needed[t] = true
		ev.last = max(ev.last, t)
	}
	for _, c := range tc.outputs {
		need(c.pipeline, c.evalTime)
	}
	for _, c := range tc.anomalies {
		need(c.pipeline, c.evalTime)
	}

	// Every evaluation time of every pipeline, in order, so that the store
	// grows as time passes and each evaluation sees what was there then.
	offsets := map[time.Duration]bool{}
	for _, ev := range evs {
		for t := time.Duration(0); t <= ev.last; t += ev.def.interval {
			offsets[t] = true
		}
	}
	ticks := make([]time.Duration, 0, len(offsets))
	for t := range offsets {
		ticks = append(ticks, t)
	}
	slices.Sort(ticks)

	metrics := pipeline.NewMetrics(nil)
	for _, t := range ticks {
		if err := ctx.Err(); err != nil {
			return []error{err}
		}
		ts := tc.start.Add(t)
		if err := st.appendUntil(ctx, ts.UnixMilli()); err != nil {
			return []error{fmt.Errorf("    test %s: load input series: %w", tc.name, err)}
		}
		for _, ev := range evs {
			if t > ev.last || t%ev.def.interval != 0 {
				continue
			}
			ev.rec.samples = nil
			err := ev.rule.Eval(ctx, ts, pipeline.EvalOptions{
				Querier: q, Models: s.models, Appender: ev.rec,
				QueryOffset: ev.def.queryOffset, Limit: ev.def.limit, Metrics: metrics,
			})
			if err != nil {
				// Like promtool: a failed evaluation ends the test; what
				// it would check next is meaningless.
				return []error{fmt.Errorf("    test %s: pipeline %s at %s: evaluation failed: %w",
					tc.name, ev.name, formatDuration(t), err)}
			}
			if ev.needed[t] {
				ev.results[t] = evalResult{samples: ev.rec.samples, skipped: ev.rule.Status().SkippedLastEval}
			}
		}
	}

	var errs []error
	for _, c := range tc.outputs {
		ev := byName[c.pipeline]
		if err := c.check(tc.name, ev.results[tick(c.evalTime, ev.def.interval)]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range tc.anomalies {
		ev := byName[c.pipeline]
		if err := c.check(tc.name, s.prefix, ev.results[tick(c.evalTime, ev.def.interval)]); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// check compares the emitted samples of the kinds expected (all of them
// when none is) against the expected ones and describes every difference.
func (c *outputCheck) check(testName string, res evalResult) error {
	var got []emitted
	for _, e := range res.samples {
		if len(c.samples) == 0 || c.kinds[kind(e.lset)] {
			got = append(got, e)
		}
	}
	slices.SortFunc(got, func(a, b emitted) int { return labels.Compare(a.lset, b.lset) })
	exp := slices.Clone(c.samples)
	slices.SortFunc(exp, func(a, b expSample) int { return labels.Compare(a.lset, b.lset) })

	var lines []string
	used := make([]bool, len(got))
	for _, e := range exp {
		i := slices.IndexFunc(got, func(g emitted) bool { return labels.Equal(g.lset, e.lset) })
		if i < 0 {
			lines = append(lines, fmt.Sprintf("%s: missing, want %s", seriesString(e.lset), formatFloat(e.value)))
			continue
		}
		used[i] = true
		tol := max(e.abs, e.rel*math.Abs(e.value))
		if d := math.Abs(got[i].v - e.value); !(d <= tol) {
			lines = append(lines, fmt.Sprintf("%s: got %s, want %s ± %s (off by %s)",
				seriesString(e.lset), formatFloat(got[i].v), formatFloat(e.value), strconv.FormatFloat(tol, 'g', 3, 64), strconv.FormatFloat(d, 'g', 3, 64)))
		}
	}
	for i, g := range got {
		if !used[i] {
			lines = append(lines, fmt.Sprintf("%s: unexpected, got %s", seriesString(g.lset), formatFloat(g.v)))
		}
	}
	if len(lines) == 0 {
		return nil
	}
	if len(c.samples) == 0 {
		lines = append([]string{"want no samples at all, got:"}, lines...)
	}
	lines = append(lines, skippedLine(res.skipped)...)
	return fmt.Errorf("    test %s: pipeline %s at %s: output samples differ:\n        %s",
		testName, c.pipeline, formatDuration(c.evalTime), indent(strings.Join(lines, "\n"), "        "))
}

// check compares the series whose score exceeds the threshold against the
// expected anomalies.
func (c *anomalyCheck) check(testName, prefix string, res evalResult) error {
	type scored struct {
		lset  labels.Labels
		score float64
	}
	var scores []scored
	var got []labels.Labels
	for _, e := range res.samples {
		if e.lset.Get(labels.MetricName) != prefix+pipeline.SuffixScore {
			continue
		}
		b := labels.NewBuilder(e.lset)
		b.Del(labels.MetricName)
		lset := b.Labels()
		scores = append(scores, scored{lset, e.v})
		if e.v > c.threshold {
			got = append(got, lset)
		}
	}
	slices.SortFunc(got, labels.Compare)
	exp := slices.Clone(c.exp)
	slices.SortFunc(exp, labels.Compare)
	if slices.EqualFunc(got, exp, labels.Equal) {
		return nil
	}
	slices.SortFunc(scores, func(a, b scored) int { return labels.Compare(a.lset, b.lset) })
	lines := []string{"exp: " + labelList(exp), "got: " + labelList(got)}
	if len(scores) == 0 {
		lines = append(lines, "scores: none emitted")
	} else {
		lines = append(lines, "scores:")
		for i, sc := range scores {
			if i == maxListed {
				lines = append(lines, fmt.Sprintf("  ... and %d more", len(scores)-maxListed))
				break
			}
			lines = append(lines, fmt.Sprintf("  %s %s", sc.lset, formatFloat(sc.score)))
		}
	}
	lines = append(lines, skippedLine(res.skipped)...)
	return fmt.Errorf("    test %s: pipeline %s at %s: anomalies (score > %s) differ:\n        %s",
		testName, c.pipeline, formatDuration(c.evalTime), formatFloat(c.threshold), indent(strings.Join(lines, "\n"), "        "))
}

// seriesString prints labels the way PromQL writes a series:
// name{label="value", ...}.
func seriesString(lset labels.Labels) string {
	name := lset.Get(labels.MetricName)
	if name == "" {
		return lset.String()
	}
	b := labels.NewBuilder(lset)
	b.Del(labels.MetricName)
	return name + b.Labels().String()
}

func labelList(ls []labels.Labels) string {
	if len(ls) == 0 {
		return "none"
	}
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = l.String()
	}
	return strings.Join(s, ", ")
}

// skippedLine says which series the evaluation skipped and why, the usual
// reason for a missing sample.
func skippedLine(skipped map[string]int) []string {
	if len(skipped) == 0 {
		return nil
	}
	parts := make([]string, 0, len(skipped))
	n := 0
	for _, reason := range sortedKeys(skipped) {
		parts = append(parts, fmt.Sprintf("%d %s", skipped[reason], reason))
		n += skipped[reason]
	}
	return []string{fmt.Sprintf("the evaluation skipped %d input series: %s", n, strings.Join(parts, ", "))}
}
