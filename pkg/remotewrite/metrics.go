package remotewrite

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	namespace = "openanomaly"
	subsystem = "remote_write"

	labelRemoteName = "remote_name"
	labelURL        = "url"
)

// Reasons of dropped_samples_total.
const (
	reasonQueueFull   = "queue_full"
	reasonShutdown    = "shutdown"
	reasonRateLimited = "rate_limited"
	reasonEncode      = "encode_error"
)

// metrics holds the collectors every queue of one registry shares; each
// queue uses the children for its own remote_name and url.
type metrics struct {
	samples       *prometheus.CounterVec
	sent          *prometheus.CounterVec
	failed        *prometheus.CounterVec
	retried       *prometheus.CounterVec
	dropped       *prometheus.CounterVec
	pending       *prometheus.GaugeVec
	capacity      *prometheus.GaugeVec
	highestSent   *prometheus.GaugeVec
	batchDuration *prometheus.HistogramVec
}

// newMetrics creates the collectors and registers them with reg (none when
// reg is nil). Collectors already registered by an earlier queue or storage
// on the same registry are reused, so that several queues, or a queue
// rebuilt on reload, never fail with a duplicate registration.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	qLabels := []string{labelRemoteName, labelURL}
	counter := func(name, help string, extra ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Subsystem: subsystem, Name: name, Help: help,
		}, append(qLabels[:len(qLabels):len(qLabels)], extra...))
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace, Subsystem: subsystem, Name: name, Help: help,
		}, qLabels)
	}
	m := &metrics{
		samples: counter("samples_total",
			"Samples offered to the remote-write queue, including those dropped on arrival."),
		sent: counter("sent_samples_total",
			"Samples the remote endpoint accepted."),
		failed: counter("failed_samples_total",
			"Samples dropped because the endpoint rejected them with a non-retryable status.", "code"),
		retried: counter("retried_samples_total",
			"Samples sent again after a retryable failure."),
		dropped: counter("dropped_samples_total",
			"Samples given up by the sender: queue full, shutdown flush deadline, or rate limited for too long.", "reason"),
		pending: gauge("pending_samples",
			"Samples buffered or in flight, not yet sent, failed or dropped."),
		capacity: gauge("queue_capacity",
			"Most samples the queue buffers; more are dropped."),
		highestSent: gauge("highest_sent_timestamp_seconds",
			"Newest sample timestamp the endpoint accepted, in seconds since the epoch."),
		batchDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: "sent_batch_duration_seconds",
			Help:    "Duration of one write request, successful or not.",
			Buckets: append(prometheus.DefBuckets, 25, 60),
		}, qLabels),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	m.samples = register(reg, m.samples, &errs)
	m.sent = register(reg, m.sent, &errs)
	m.failed = register(reg, m.failed, &errs)
	m.retried = register(reg, m.retried, &errs)
	m.dropped = register(reg, m.dropped, &errs)
	m.pending = register(reg, m.pending, &errs)
	m.capacity = register(reg, m.capacity, &errs)
	m.highestSent = register(reg, m.highestSent, &errs)
	m.batchDuration = register(reg, m.batchDuration, &errs)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register remote-write metrics: %w", err)
	}
	return m, nil
}

// register registers c, or returns the equal collector already registered.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errs *[]error) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	*errs = append(*errs, err)
	return c
}

// queueMetrics are the children of one queue.
type queueMetrics struct {
	m      *metrics
	labels prometheus.Labels

	samples       prometheus.Counter
	sent          prometheus.Counter
	retried       prometheus.Counter
	pending       prometheus.Gauge
	capacity      prometheus.Gauge
	highestSent   prometheus.Gauge
	batchDuration prometheus.Observer
}

// forQueue binds the children of one queue.
func (m *metrics) forQueue(name, url string) *queueMetrics {
	// Every drop reason exists from the start at 0, so that an alert on
	// its increase fires at the first drop (a counter that appears with
	// its first value has no increase to see).
	for _, r := range []string{reasonQueueFull, reasonShutdown, reasonRateLimited, reasonEncode} {
		m.dropped.WithLabelValues(name, url, r)
	}
	return &queueMetrics{
		m:             m,
		labels:        prometheus.Labels{labelRemoteName: name, labelURL: url},
		samples:       m.samples.WithLabelValues(name, url),
		sent:          m.sent.WithLabelValues(name, url),
		retried:       m.retried.WithLabelValues(name, url),
		pending:       m.pending.WithLabelValues(name, url),
		capacity:      m.capacity.WithLabelValues(name, url),
		highestSent:   m.highestSent.WithLabelValues(name, url),
		batchDuration: m.batchDuration.WithLabelValues(name, url),
	}
}

func (qm *queueMetrics) failed(code string, n int) {
	qm.m.failed.WithLabelValues(qm.labels[labelRemoteName], qm.labels[labelURL], code).Add(float64(n))
}

func (qm *queueMetrics) dropped(reason string, n int) {
	qm.m.dropped.WithLabelValues(qm.labels[labelRemoteName], qm.labels[labelURL], reason).Add(float64(n))
}

// delete removes every series of this queue. Deleting only label values,
// never unregistering, keeps the collectors usable by other queues and by
// the next reload; deleting twice is harmless.
func (qm *queueMetrics) delete() {
	qm.m.samples.DeletePartialMatch(qm.labels)
	qm.m.sent.DeletePartialMatch(qm.labels)
	qm.m.failed.DeletePartialMatch(qm.labels)
	qm.m.retried.DeletePartialMatch(qm.labels)
	qm.m.dropped.DeletePartialMatch(qm.labels)
	qm.m.pending.DeletePartialMatch(qm.labels)
	qm.m.capacity.DeletePartialMatch(qm.labels)
	qm.m.highestSent.DeletePartialMatch(qm.labels)
	qm.m.batchDuration.DeletePartialMatch(qm.labels)
}
