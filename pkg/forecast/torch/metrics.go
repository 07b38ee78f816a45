package torch

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the forward metrics of the torchscript models of a process,
// labelled by the model's name in the config. One Metrics serves every model
// and every config reload.
type Metrics struct {
	forwardDuration *prometheus.HistogramVec
	batchSize       *prometheus.HistogramVec
	forwardFailures *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		forwardDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "openanomaly_torch_forward_duration_seconds",
			Help:    "Duration of one forward of a torchscript model over a batch of series, including copying the batch in and the outputs out.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5ms .. 131s
		}, []string{"model"}),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "openanomaly_torch_batch_size",
			Help:    "Number of series in one forward of a torchscript model (at most its batch_size).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 .. 1024
		}, []string{"model"}),
		forwardFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "openanomaly_torch_forward_failures_total",
			Help: "Forwards of a torchscript model that failed (the graph raised, or returned outputs of the wrong shape).",
		}, []string{"model"}),
	}
	if reg != nil {
		reg.MustRegister(m.forwardDuration, m.batchSize, m.forwardFailures)
	}
	return m
}

// Option configures New.
type Option func(*Model)

// WithMetrics makes the model's forecasts observe met under the label
// model="name". A nil met records nothing.
func WithMetrics(met *Metrics, name string) Option {
	return func(m *Model) {
		if met == nil {
			return
		}
		m.obs = &observer{
			duration: met.forwardDuration.WithLabelValues(name),
			batch:    met.batchSize.WithLabelValues(name),
			failures: met.forwardFailures.WithLabelValues(name),
		}
	}
}

// observer holds one model's children of the Metrics.
type observer struct {
	duration, batch prometheus.Observer
	failures        prometheus.Counter
}

// forward records one forward of b series that took d and failed if err.
func (o *observer) forward(b int, d time.Duration, err error) {
	if o == nil {
		return
	}
	o.duration.Observe(d.Seconds())
	o.batch.Observe(float64(b))
	if err != nil {
		o.failures.Inc()
	}
}
