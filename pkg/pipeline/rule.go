package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
	"github.com/openanomaly/openanomaly/pkg/score"
	"github.com/openanomaly/openanomaly/pkg/series"
)

// Appender receives the samples evaluations emit (remote-write).
// Implementations must not block for long and must copy lset if they keep it.
type Appender interface {
	Append(lset labels.Labels, t int64, v float64)
}

// Names of the emitted series, after the metric prefix (DESIGN.md §3).
const (
	SuffixY        = "y"
	SuffixYhat     = "yhat"
	SuffixLower    = "yhat_lower"
	SuffixUpper    = "yhat_upper"
	SuffixScore    = "anomaly_score"
	SuffixForecast = "forecast"
)

// Labels the product sets on emitted series; input labels with these names
// are kept as exported_<name>.
const (
	LabelPipeline = "pipeline"
	LabelHorizon  = "horizon"
	LabelQuantile = "quantile"
)

// Skip reasons counted in openanomaly_pipeline_skipped_series_total.
const (
	ReasonInsufficientData = "insufficient_data"
	ReasonGone             = "gone"
	ReasonModelError       = "model_error"
	ReasonNonFinite        = "non_finite_output"
)

// ErrPartialResponse fails an evaluation whose query answer the store marked
// as partial (VictoriaMetrics' isPartial).
var ErrPartialResponse = errors.New("the store answered with a partial response; the evaluation is skipped")

// maxLoggedWarnings bounds how many of a query's warnings one log line
// carries.
const maxLoggedWarnings = 5

// maxNewPoints bounds how many points arrived since the previous evaluation
// are scored, so a long outage does not turn one evaluation into a huge
// multi-step forecast.
const maxNewPoints = 240

// Health of a rule, as /api/v1/rules shows it.
const (
	HealthUnknown = "unknown"
	HealthOK      = "ok"
	HealthErr     = "err"
)

// Rule is one pipeline inside a group, with the state it carries between
// evaluations.
type Rule struct {
	spec   rulefmt.Rule
	prefix string

	// Derived once from the spec.
	qMedian, qLo, qHi int

	mtx sync.Mutex
	// lastStamp is the stamp (ms) of the previous successful evaluation;
	// points newer than it are the ones "arrived since".
	lastStamp int64
	// prevSeries are the output series written by the previous
	// evaluation, to send stale markers for those that disappear.
	prevSeries map[uint64]labels.Labels
	// hist is the input history kept for incremental reads.
	hist *history
	// novelty holds each output series' recent raw scores when the rule's
	// anomaly has a novelty window; keyed by the output base labels' hash.
	novelty      map[uint64]*scoreMax
	health       string
	lastError    error
	lastEval     time.Time
	lastDuration time.Duration
	lastSkipped  map[string]int
}

// NewRule prepares a pipeline for evaluation. spec must come from rulefmt
// (validated, with defaults applied).
func NewRule(spec rulefmt.Rule, metricPrefix string) *Rule {
	r := &Rule{spec: spec, prefix: metricPrefix, health: HealthUnknown, qMedian: -1, qLo: -1, qHi: -1}
	for i, q := range spec.Quantiles {
		switch {
		case q == 0.5:
			r.qMedian = i
		case spec.Anomaly != nil && len(spec.Anomaly.Band) == 2 && q == spec.Anomaly.Band[0]:
			r.qLo = i
		case spec.Anomaly != nil && len(spec.Anomaly.Band) == 2 && q == spec.Anomaly.Band[1]:
			r.qHi = i
		}
	}
	return r
}

// Name returns the pipeline's name (its `forecast` key).
func (r *Rule) Name() string { return r.spec.Forecast }

// Spec returns the rule as written in its file, with defaults applied.
func (r *Rule) Spec() rulefmt.Rule { return r.spec }

// copyState takes over the evaluation state of a rule's predecessor after a
// reload, so stale markers and "since the previous evaluation" keep working.
func (r *Rule) copyState(old *Rule) {
	old.mtx.Lock()
	defer old.mtx.Unlock()
	r.mtx.Lock()
	defer r.mtx.Unlock()
	r.lastStamp = old.lastStamp
	r.prevSeries = old.prevSeries
	// The history is kept only if it is of the same data: readRange
	// compares expr, step and context.
	r.hist = old.hist
	// Remembered scores carry over while they mean the same thing.
	if r.spec.Anomaly != nil && r.spec.Anomaly.Novelty != nil && old.spec.Anomaly != nil && old.spec.Anomaly.Novelty != nil &&
		*r.spec.Anomaly.Novelty == *old.spec.Anomaly.Novelty && r.spec.Anomaly.Direction == old.spec.Anomaly.Direction &&
		slices.Equal(r.spec.Anomaly.Band, old.spec.Anomaly.Band) && r.spec.Anomaly.MinDeviation == old.spec.Anomaly.MinDeviation {
		r.novelty = old.novelty
	}
	r.health, r.lastError, r.lastEval, r.lastDuration = old.health, old.lastError, old.lastEval, old.lastDuration
}

// evalEnv is what an evaluation needs from its group and manager.
type evalEnv struct {
	querier     datasource.Querier
	models      *forecast.Registry
	appender    Appender
	exposition  *Exposition
	metrics     *Metrics
	queryOffset time.Duration
	limit       int
	interval    time.Duration
	// logger may be nil: then nothing is logged.
	logger *slog.Logger
}

func (e evalEnv) log() *slog.Logger {
	if e.logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.logger
}

type preparedSeries struct {
	out      labels.Labels // output labels without __name__
	values   []float64
	newest   int // index of the newest finite point
	firstNew int // index of the first point that arrived since the previous evaluation
}

// Eval runs the pipeline for the scheduled time ts. It emits through env and
// returns the error that made the whole evaluation fail, if any.
func (r *Rule) eval(ctx context.Context, ts time.Time, env evalEnv) error {
	start := time.Now()
	name := r.spec.Forecast
	env.metrics.evaluations.WithLabelValues(name).Inc()
	skipped, err := r.evalInner(ctx, ts, env)

	r.mtx.Lock()
	defer r.mtx.Unlock()
	r.lastEval = ts
	r.lastDuration = time.Since(start)
	r.lastError = err
	r.lastSkipped = skipped
	if err != nil {
		r.health = HealthErr
		env.metrics.failures.WithLabelValues(name).Inc()
		// A failed evaluation says nothing new: take the rule's outputs
		// off /metrics (the scraper marks them stale) but do not write
		// stale markers, like Prometheus' rule engine.
		env.exposition.set(name, nil)
		env.metrics.outputSeries.WithLabelValues(name).Set(0)
		return err
	}
	r.health = HealthOK
	return nil
}

func (r *Rule) evalInner(ctx context.Context, ts time.Time, env evalEnv) (map[string]int, error) {
	name := r.spec.Forecast
	step := time.Duration(r.spec.Step)
	stepMs := step.Milliseconds()
	stamp := ts.Add(-env.queryOffset).UnixMilli()
	// The grid is aligned to multiples of the step, so every store
	// (VictoriaMetrics aligns query_range to the step) sees the same
	// points, and its last point is at or before the stamp: never ahead.
	endMs := stamp - mod(stamp, stepMs)
	n := int(time.Duration(r.spec.Context) / step)
	startMs := endMs - int64(n-1)*stepMs

	// Read only what is new since the previous evaluation (history.go).
	key := historyKey{expr: r.spec.Expr, step: step, context: time.Duration(r.spec.Context)}
	r.mtx.Lock()
	prevHist := r.hist
	r.mtx.Unlock()
	fromMs, incremental := prevHist.readRange(key, startMs, stepMs, n)

	fetchStart := time.Now()
	res, err := env.querier.QueryRange(ctx, r.spec.Expr, time.UnixMilli(fromMs), time.UnixMilli(endMs), step)
	env.metrics.ruleDuration.WithLabelValues(name, "fetch").Observe(time.Since(fetchStart).Seconds())
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	if len(res.Warnings) > 0 {
		// Warnings (Prometheus annotations, Thanos partial-response
		// notes) do not fail the evaluation; they are counted and logged
		// once per evaluation, not once per warning.
		env.metrics.partialOrWarned.WithLabelValues(name, "warning").Inc()
		env.log().Warn("Query returned warnings", "pipeline", name, "count", len(res.Warnings),
			"warnings", res.Warnings[:min(len(res.Warnings), maxLoggedWarnings)])
	}
	if res.Partial {
		// A partial answer lacks series or samples without saying which:
		// a forecast from it would score missing data as anomalies. There
		// is no setting to accept partial answers (yet), so the
		// evaluation fails and the rule's health says why.
		env.metrics.partialOrWarned.WithLabelValues(name, "partial").Inc()
		return nil, fmt.Errorf("query: %w", ErrPartialResponse)
	}
	// The limit bounds memory too: refuse before aligning anything.
	if env.limit > 0 && len(res.Series) > env.limit {
		env.metrics.inputSeries.WithLabelValues(name).Set(float64(len(res.Series)))
		return nil, fmt.Errorf("query returned %d series, more than the group's limit of %d", len(res.Series), env.limit)
	}
	kind := ReadFull
	if !incremental {
		prevHist = nil
	} else {
		kind = ReadIncremental
	}
	env.metrics.reads.WithLabelValues(name, kind).Inc()
	var dropped series.Dropped
	hist := merge(prevHist, key, res.Series, startMs, fromMs, stepMs, n, &dropped)
	countDropped(env.metrics, name, dropped)
	// merge reused the previous history's memory: from here on only the
	// new one is valid, whatever happens to this evaluation.
	r.mtx.Lock()
	r.hist = hist
	r.mtx.Unlock()
	inputs := hist.sorted()

	env.metrics.inputSeries.WithLabelValues(name).Set(float64(len(inputs)))
	if env.limit > 0 && len(inputs) > env.limit {
		// Series that left recently and new ones together: as many as a
		// full read would return. Keep no history over the limit.
		r.mtx.Lock()
		r.hist = nil
		r.mtx.Unlock()
		return nil, fmt.Errorf("query returned %d series, more than the group's limit of %d", len(inputs), env.limit)
	}

	// Series are "gone" when their newest sample is older than this
	// before the stamp (DESIGN.md §3).
	goneAfter := max(5*time.Minute, 2*step).Milliseconds()
	r.mtx.Lock()
	lastStamp := r.lastStamp
	prev := r.prevSeries
	r.mtx.Unlock()

	skipped := map[string]int{}
	prepared := make([]preparedSeries, 0, len(inputs))
	var inputLabels []labels.Labels // the input labels of each prepared series
	seen := make(map[uint64]labels.Labels, len(inputs))
	for _, s := range inputs {
		values := s.values
		newest := -1
		for i := n - 1; i >= 0; i-- {
			if !math.IsNaN(values[i]) {
				newest = i
				break
			}
		}
		if newest < 0 || stamp-(startMs+int64(newest)*stepMs) > goneAfter {
			skipped[ReasonGone]++
			continue
		}
		firstNew := newest
		if lastStamp > 0 {
			for i := newest - 1; i >= 0 && newest-i < maxNewPoints; i-- {
				if startMs+int64(i)*stepMs <= lastStamp {
					break
				}
				if !math.IsNaN(values[i]) {
					firstNew = i
				}
			}
		}
		out := r.outputLabels(s.lset)
		h := out.Hash()
		if other, dup := seen[h]; dup && labels.Equal(other, out) {
			return nil, fmt.Errorf("two input series map to the same output labels %s; add a label that tells them apart or aggregate in expr", out)
		}
		seen[h] = out
		prepared = append(prepared, preparedSeries{out: out, values: values, newest: newest, firstNew: firstNew})
		inputLabels = append(inputLabels, s.lset)
	}

	fm, ok := env.models.Get(r.spec.Model)
	if !ok {
		return nil, fmt.Errorf("model %q is not configured", r.spec.Model)
	}

	// Two batches: histories ending just before the first new point, to
	// judge the new points with forecasts made only from data before them;
	// and full histories, for the horizons counted from the stamp.
	// Keys name each series to the model, which may then reuse what it
	// fitted for it (the score request fits, the future one reuses).
	keys := make([]uint64, len(prepared))
	for i, p := range prepared {
		keys[i] = p.out.Hash()
	}
	scoreReq := forecast.Request{Step: step, Quantiles: r.spec.Quantiles, Horizon: 1, Keys: keys, Time: ts}
	futureReq := forecast.Request{Step: step, Quantiles: r.spec.Quantiles, Horizon: 1, Time: ts}
	if len(r.spec.Horizons) > 0 {
		futureReq.Keys = keys
	}
	for i, p := range prepared {
		scoreReq.Histories = append(scoreReq.Histories, p.values[:p.firstNew])
		scoreReq.Horizon = max(scoreReq.Horizon, p.newest-p.firstNew+1)
		if len(r.spec.Horizons) > 0 {
			futureReq.Histories = append(futureReq.Histories, p.values[:p.newest+1])
			tn := startMs + int64(prepared[i].newest)*stepMs
			for _, hz := range r.spec.Horizons {
				steps := ceilDiv(stamp+time.Duration(hz).Milliseconds()-tn, stepMs)
				futureReq.Horizon = max(futureReq.Horizon, int(steps))
			}
		}
	}

	if len(r.spec.Covariates) > 0 && len(prepared) > 0 {
		// Known-future covariates are read as far as either request
		// forecasts past the grid's last point.
		extra := max(scoreReq.Horizon, futureReq.Horizon)
		covStart := time.Now()
		var covDropped series.Dropped
		covs, err := r.readCovariates(ctx, env, startMs, stepMs, n, extra, &covDropped)
		env.metrics.ruleDuration.WithLabelValues(name, "fetch_covariates").Observe(time.Since(covStart).Seconds())
		if err != nil {
			return nil, err
		}
		countDropped(env.metrics, name, covDropped)
		matched := make([][]float64, len(covs))
		scoreReq.Covariates = make([][]forecast.Covariate, len(prepared))
		if len(r.spec.Horizons) > 0 {
			futureReq.Covariates = make([][]forecast.Covariate, len(prepared))
		}
		for i, p := range prepared {
			for ci := range covs {
				if matched[ci], err = covs[ci].match(inputLabels[i]); err != nil {
					return nil, err
				}
			}
			scoreReq.Covariates[i] = covariatesFor(matched, covs, p.firstNew, scoreReq.Horizon)
			if len(r.spec.Horizons) > 0 {
				futureReq.Covariates[i] = covariatesFor(matched, covs, p.newest+1, futureReq.Horizon)
			}
		}
	}

	modelStart := time.Now()
	var scored, future []forecast.Forecast
	if sb, ok := fm.(forecast.SharedBatches); ok && sb.SharesBatches() && len(prepared) > 0 && len(r.spec.Horizons) > 0 {
		var futureErr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			future, futureErr = fm.Forecast(ctx, futureReq)
		}()
		scored, err = fm.Forecast(ctx, scoreReq)
		<-done
		if err == nil {
			err = futureErr
		}
	} else if len(prepared) > 0 {
		scored, err = fm.Forecast(ctx, scoreReq)
		if err == nil && len(r.spec.Horizons) > 0 {
			future, err = fm.Forecast(ctx, futureReq)
		}
	}
	elapsed := time.Since(modelStart).Seconds()
	env.metrics.modelDuration.WithLabelValues(r.spec.Model).Observe(elapsed)
	env.metrics.ruleDuration.WithLabelValues(name, "model").Observe(elapsed)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", r.spec.Model, err)
	}
	if len(scored) != len(prepared) || (len(r.spec.Horizons) > 0 && len(future) != len(prepared)) {
		return nil, fmt.Errorf("model %q returned %d forecasts for %d series", r.spec.Model, len(scored), len(prepared))
	}

	emitStart := time.Now()
	var outs []outSample
	curr := make(map[uint64]labels.Labels, len(prepared)*(5+len(r.spec.Horizons)*len(r.spec.Quantiles)))
	b := labels.NewBuilder(labels.EmptyLabels())
	emit := func(base labels.Labels, suffix string, v float64, extra ...string) {
		b.Reset(base)
		b.Set(labels.MetricName, r.prefix+suffix)
		for i := 0; i+1 < len(extra); i += 2 {
			b.Set(extra[i], extra[i+1])
		}
		lset := b.Labels()
		outs = append(outs, outSample{lset: lset, v: v})
		curr[lset.Hash()] = lset
	}
	if r.spec.Anomaly != nil && r.spec.Anomaly.Novelty != nil && r.novelty == nil {
		r.novelty = map[uint64]*scoreMax{}
	}
	for i, p := range prepared {
		sf := scored[i]
		if sf.Err != nil {
			skipped[skipReason(sf.Err)]++
			continue
		}
		var ff forecast.Forecast
		if len(r.spec.Horizons) > 0 {
			ff = future[i]
			if ff.Err != nil {
				skipped[skipReason(ff.Err)]++
				continue
			}
		}
		hNewest := p.newest - p.firstNew
		y := p.values[p.newest]
		yhat := sf.Values[r.qMedian][hNewest]
		vals := []float64{y, yhat}
		var lo, hi, sc float64
		if r.spec.Anomaly != nil {
			lo, hi = sf.Values[r.qLo][hNewest], sf.Values[r.qHi][hNewest]
			sc = 0
			nov := r.spec.Anomaly.Novelty
			var past *scoreMax
			if nov != nil {
				if past = r.novelty[keys[i]]; past == nil {
					past = &scoreMax{}
					r.novelty[keys[i]] = past
				}
			}
			for j := p.firstNew; j <= p.newest; j++ {
				if math.IsNaN(p.values[j]) {
					continue
				}
				h := j - p.firstNew
				s := score.Score(p.values[j], sf.Values[r.qMedian][h], sf.Values[r.qLo][h], sf.Values[r.qHi][h],
					r.spec.Anomaly.MinDeviation, r.spec.Anomaly.Direction)
				if past != nil {
					s = past.novelty(startMs+int64(j)*stepMs, time.Duration(nov.Window).Milliseconds(), s, nov.Floor)
				}
				sc = max(sc, s)
			}
			vals = append(vals, lo, hi, sc)
		}
		if !allFinite(vals...) {
			skipped[ReasonNonFinite]++
			continue
		}
		emit(p.out, SuffixY, y)
		emit(p.out, SuffixYhat, yhat)
		if r.spec.Anomaly != nil {
			emit(p.out, SuffixLower, lo)
			emit(p.out, SuffixUpper, hi)
			emit(p.out, SuffixScore, sc)
		}
		tn := startMs + int64(p.newest)*stepMs
		for _, hz := range r.spec.Horizons {
			steps := int(ceilDiv(stamp+time.Duration(hz).Milliseconds()-tn, stepMs))
			for qi, q := range r.spec.Quantiles {
				v := ff.Values[qi][steps-1]
				if !allFinite(v) {
					continue
				}
				emit(p.out, SuffixForecast, v, LabelHorizon, model.Duration(hz).String(), LabelQuantile, formatQuantile(q))
			}
		}
	}

	// Forget the scores of series that have been away for a whole window.
	if nov := r.noveltyWindow(); nov > 0 {
		for k, m := range r.novelty {
			if m.newest()+max(1, nov/noveltyBuckets) <= stamp-nov {
				delete(r.novelty, k)
			}
		}
	}

	if env.appender != nil {
		for _, o := range outs {
			env.appender.Append(o.lset, stamp, o.v)
		}
		for h, lset := range prev {
			if _, ok := curr[h]; !ok {
				env.appender.Append(lset, stamp, math.Float64frombits(value.StaleNaN))
			}
		}
	}
	env.exposition.set(name, outs)
	env.metrics.outputSeries.WithLabelValues(name).Set(float64(len(outs)))
	for reason, c := range skipped {
		env.metrics.skippedSeries.WithLabelValues(name, reason).Add(float64(c))
	}
	env.metrics.ruleDuration.WithLabelValues(name, "emit").Observe(time.Since(emitStart).Seconds())

	r.mtx.Lock()
	r.prevSeries = curr
	r.lastStamp = stamp
	r.mtx.Unlock()
	return skipped, nil
}

// noveltyWindow returns the novelty window in ms, 0 without one.
func (r *Rule) noveltyWindow() int64 {
	if r.spec.Anomaly == nil || r.spec.Anomaly.Novelty == nil {
		return 0
	}
	return time.Duration(r.spec.Anomaly.Novelty.Window).Milliseconds()
}

// outputLabels turns an input series' labels into the base labels of its
// outputs: __name__ dropped, product labels renamed to exported_<name>, the
// rule's labels added (they win), and the pipeline label set.
func (r *Rule) outputLabels(in labels.Labels) labels.Labels {
	b := labels.NewBuilder(in)
	b.Del(labels.MetricName)
	for _, n := range []string{LabelPipeline, LabelHorizon, LabelQuantile} {
		if v := in.Get(n); v != "" {
			b.Del(n)
			b.Set("exported_"+n, v)
		}
	}
	for k, v := range r.spec.Labels {
		b.Set(k, v)
	}
	b.Set(LabelPipeline, r.spec.Forecast)
	return b.Labels()
}

// markStale writes stale markers for everything the rule emitted last and
// takes it off /metrics; used when the rule is removed.
func (r *Rule) markStale(t int64, env evalEnv) {
	r.mtx.Lock()
	prev := r.prevSeries
	r.prevSeries = nil
	r.mtx.Unlock()
	if env.appender != nil {
		for _, lset := range prev {
			env.appender.Append(lset, t, math.Float64frombits(value.StaleNaN))
		}
	}
	env.exposition.set(r.spec.Forecast, nil)
}

// Status is a rule's state for /api/v1/rules.
type Status struct {
	Name            string            `json:"name"`
	Query           string            `json:"query"`
	Model           string            `json:"model"`
	Health          string            `json:"health"`
	LastError       string            `json:"lastError,omitempty"`
	LastEvaluation  time.Time         `json:"lastEvaluation"`
	EvaluationTime  float64           `json:"evaluationTime"`
	OutputSeries    int               `json:"outputSeries"`
	SkippedLastEval map[string]int    `json:"skippedSeries,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
}

// Status returns the rule's current state.
func (r *Rule) Status() Status {
	r.mtx.Lock()
	defer r.mtx.Unlock()
	st := Status{
		Name: r.spec.Forecast, Query: r.spec.Expr, Model: r.spec.Model, Health: r.health,
		LastEvaluation: r.lastEval, EvaluationTime: r.lastDuration.Seconds(),
		SkippedLastEval: r.lastSkipped, Labels: r.spec.Labels,
	}
	// After a failure the outputs are off /metrics (prevSeries is kept for
	// the stale markers of a later success).
	if r.health == HealthOK {
		st.OutputSeries = len(r.prevSeries)
	}
	if r.lastError != nil {
		st.LastError = r.lastError.Error()
	}
	return st
}

func countDropped(m *Metrics, name string, d series.Dropped) {
	if d.Stale > 0 {
		m.droppedSamples.WithLabelValues(name, "stale").Add(float64(d.Stale))
	}
	if d.NaN > 0 {
		m.droppedSamples.WithLabelValues(name, "nan").Add(float64(d.NaN))
	}
	if d.Inf > 0 {
		m.droppedSamples.WithLabelValues(name, "inf").Add(float64(d.Inf))
	}
}

func skipReason(err error) string {
	if errors.Is(err, forecast.ErrInsufficientData) {
		return ReasonInsufficientData
	}
	return ReasonModelError
}

func allFinite(vs ...float64) bool {
	for _, v := range vs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// formatQuantile prints a level in shortest decimal form (0.05, 0.5).
func formatQuantile(q float64) string { return strconv.FormatFloat(q, 'f', -1, 64) }

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func ceilDiv(a, b int64) int64 {
	if a <= 0 {
		return 1
	}
	return (a + b - 1) / b
}

// EvalOptions is what a one-off evaluation needs outside a running group:
// backtests and tests that replay a pipeline at chosen times.
type EvalOptions struct {
	Querier     datasource.Querier
	Models      *forecast.Registry
	Appender    Appender
	QueryOffset time.Duration
	Limit       int
	// Metrics may be nil; then the evaluation's metrics go nowhere.
	Metrics *Metrics
	// Logger may be nil; then nothing is logged.
	Logger *slog.Logger
}

// Eval evaluates the rule once for the scheduled time ts, as its group
// would, and emits through o.Appender. The rule keeps its state between
// calls (stale markers, points since the previous evaluation).
func (r *Rule) Eval(ctx context.Context, ts time.Time, o EvalOptions) error {
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return r.eval(ctx, ts, evalEnv{
		querier: o.Querier, models: o.Models, appender: o.Appender, exposition: NewExposition(),
		metrics: o.Metrics, queryOffset: o.QueryOffset, limit: o.Limit, logger: o.Logger,
	})
}
