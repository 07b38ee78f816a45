package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline engine's own health metrics. One set is shared by
// every group of a Manager; per-group and per-pipeline label values are
// deleted when a group goes away.
type Metrics struct {
	iterations       *prometheus.CounterVec
	iterationsMissed *prometheus.CounterVec
	groupDuration    *prometheus.GaugeVec
	groupLastEval    *prometheus.GaugeVec
	groupInterval    *prometheus.GaugeVec

	evaluations     *prometheus.CounterVec
	failures        *prometheus.CounterVec
	ruleDuration    *prometheus.HistogramVec
	inputSeries     *prometheus.GaugeVec
	outputSeries    *prometheus.GaugeVec
	skippedSeries   *prometheus.CounterVec
	droppedSamples  *prometheus.CounterVec
	modelDuration   *prometheus.HistogramVec
	partialOrWarned *prometheus.CounterVec
	reads           *prometheus.CounterVec
}

// NewMetrics creates and registers the engine's metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	const ns = "openanomaly"
	m := &Metrics{
		iterations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "group", Name: "iterations_total",
			Help: "Scheduled evaluations of a group, run or missed.",
		}, []string{"group"}),
		iterationsMissed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "group", Name: "iterations_missed_total",
			Help: "Evaluations of a group skipped because the previous one was still running.",
		}, []string{"group"}),
		groupDuration: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "group", Name: "last_duration_seconds",
			Help: "Duration of the group's last evaluation.",
		}, []string{"group"}),
		groupLastEval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "group", Name: "last_evaluation_timestamp_seconds",
			Help: "Scheduled timestamp of the group's last evaluation.",
		}, []string{"group"}),
		groupInterval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "group", Name: "interval_seconds",
			Help: "The group's evaluation interval.",
		}, []string{"group"}),
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "pipeline", Name: "evaluations_total",
			Help: "Evaluations of a pipeline.",
		}, []string{"pipeline"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "pipeline", Name: "evaluation_failures_total",
			Help: "Evaluations of a pipeline that failed.",
		}, []string{"pipeline"}),
		ruleDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "pipeline", Name: "evaluation_duration_seconds",
			Help:    "Duration of one pipeline evaluation, split by stage (fetch, fetch_covariates for the covariates of pipelines that have them, model, emit).",
			Buckets: []float64{.005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"pipeline", "stage"}),
		inputSeries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "pipeline", Name: "input_series",
			Help: "Series returned by the pipeline's query in its last evaluation.",
		}, []string{"pipeline"}),
		outputSeries: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: "pipeline", Name: "output_series",
			Help: "Series the pipeline emitted in its last evaluation.",
		}, []string{"pipeline"}),
		skippedSeries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "pipeline", Name: "skipped_series_total",
			Help: "Input series that produced no output in an evaluation, by reason.",
		}, []string{"pipeline", "reason"}),
		droppedSamples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "pipeline", Name: "dropped_input_samples_total",
			Help: "Input samples kept from the model, by reason (stale, nan, inf).",
		}, []string{"pipeline", "reason"}),
		modelDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: "model", Name: "duration_seconds",
			Help:    "Duration of one model call on a batch.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"model"}),
		partialOrWarned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "pipeline", Name: "query_warnings_total",
			Help: "Query answers that carried warnings or were marked partial.",
		}, []string{"pipeline", "kind"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: "pipeline", Name: "reads_total",
			Help: "Reads of a pipeline's input from the store: full (the whole context) or incremental (only what is new).",
		}, []string{"pipeline", "kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.iterations, m.iterationsMissed, m.groupDuration, m.groupLastEval,
			m.groupInterval, m.evaluations, m.failures, m.ruleDuration, m.inputSeries,
			m.outputSeries, m.skippedSeries, m.droppedSamples, m.modelDuration, m.partialOrWarned, m.reads)
	}
	return m
}

func (m *Metrics) deleteGroup(g string) {
	m.iterations.DeleteLabelValues(g)
	m.iterationsMissed.DeleteLabelValues(g)
	m.groupDuration.DeleteLabelValues(g)
	m.groupLastEval.DeleteLabelValues(g)
	m.groupInterval.DeleteLabelValues(g)
}

func (m *Metrics) deletePipeline(p string) {
	lbl := prometheus.Labels{"pipeline": p}
	m.evaluations.DeletePartialMatch(lbl)
	m.failures.DeletePartialMatch(lbl)
	m.ruleDuration.DeletePartialMatch(lbl)
	m.inputSeries.DeletePartialMatch(lbl)
	m.outputSeries.DeletePartialMatch(lbl)
	m.skippedSeries.DeletePartialMatch(lbl)
	m.droppedSamples.DeletePartialMatch(lbl)
	m.partialOrWarned.DeletePartialMatch(lbl)
	m.reads.DeletePartialMatch(lbl)
}
