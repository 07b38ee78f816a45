// Package config holds the sidecar's config file: types, defaults, strict
// loading and validation.
package config

import (
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Config is the whole config file.
type Config struct {
	Global      GlobalConfig         `yaml:"global"`
	Datasource  DatasourceConfig     `yaml:"datasource"`
	RemoteWrite []*RemoteWriteConfig `yaml:"remote_write,omitempty"`
	Models      []*ModelConfig       `yaml:"models,omitempty"`
	RuleFiles   []string             `yaml:"rule_files,omitempty"`

	// path is the file the config was loaded from; rule_files globs are
	// relative to its directory.
	path string
}

// GlobalConfig holds settings every group inherits.
type GlobalConfig struct {
	EvaluationInterval model.Duration    `yaml:"evaluation_interval,omitempty"`
	QueryOffset        model.Duration    `yaml:"query_offset,omitempty"`
	ExternalLabels     map[string]string `yaml:"external_labels,omitempty"`
	// MetricPrefix has no omitempty: "" differs from the default.
	MetricPrefix string `yaml:"metric_prefix"`
}

// Datasource read methods.
const (
	ReadQueryRange = "query_range"
	ReadRemoteRead = "remote_read"
)

// DatasourceConfig says where and how history is read.
type DatasourceConfig struct {
	URL           *commoncfg.URL `yaml:"url"`
	ReadMethod    string         `yaml:"read_method,omitempty"` // query_range (default) | remote_read
	RemoteReadURL *commoncfg.URL `yaml:"remote_read_url,omitempty"`
	// QueryTimeout bounds one query. Default 30s; a group's evaluation
	// additionally never waits longer than its interval.
	QueryTimeout model.Duration `yaml:"query_timeout,omitempty"`
	// SplitInterval splits query_range reads longer than it into pieces
	// read two at a time (a pipeline's first, full read of its context).
	// Default 6h; 0 splits only past the store's 11,000 points per series.
	SplitInterval model.Duration `yaml:"split_interval,omitempty"`

	HTTPClientConfig commoncfg.HTTPClientConfig `yaml:",inline"`
}

// RemoteWriteConfig is one remote-write endpoint.
type RemoteWriteConfig struct {
	URL           *commoncfg.URL    `yaml:"url"`
	Name          string            `yaml:"name,omitempty"`
	RemoteTimeout model.Duration    `yaml:"remote_timeout,omitempty"`
	Headers       map[string]string `yaml:"headers,omitempty"`
	QueueConfig   QueueConfig       `yaml:"queue_config,omitempty"`

	HTTPClientConfig commoncfg.HTTPClientConfig `yaml:",inline"`
}

// QueueConfig tunes a remote-write queue. Names follow Prometheus'
// queue_config where the meaning is the same.
type QueueConfig struct {
	// Capacity is the most samples buffered in memory for this endpoint;
	// beyond it new samples are dropped and counted.
	Capacity          int            `yaml:"capacity,omitempty"`
	MaxShards         int            `yaml:"max_shards,omitempty"`
	MaxSamplesPerSend int            `yaml:"max_samples_per_send,omitempty"`
	BatchSendDeadline model.Duration `yaml:"batch_send_deadline,omitempty"`
	MinBackoff        model.Duration `yaml:"min_backoff,omitempty"`
	MaxBackoff        model.Duration `yaml:"max_backoff,omitempty"`
	// RetryOnRateLimit retries 429 answers, honouring Retry-After, for at
	// most MaxRetryDuration in all; then the batch is dropped.
	// No omitempty: false differs from the default and must survive String.
	RetryOnRateLimit bool `yaml:"retry_on_http_429"`
	// MaxRetryDuration bounds how long one batch is retried after 429s.
	MaxRetryDuration model.Duration `yaml:"max_retry_duration,omitempty"`
	// FlushDeadline bounds how long shutdown waits to deliver what is queued.
	FlushDeadline model.Duration `yaml:"flush_deadline,omitempty"`
}

// ModelConfig names one model. Exactly one of the kind sections is set.
type ModelConfig struct {
	Name        string             `yaml:"name"`
	Builtin     *BuiltinConfig     `yaml:"builtin,omitempty"`
	TorchScript *TorchScriptConfig `yaml:"torchscript,omitempty"`
}

// Built-in algorithms.
const (
	AlgoHoltWinters   = "holt_winters"
	AlgoSeasonalNaive = "seasonal_naive"
)

// BuiltinConfig selects a pure-Go model and its parameters.
type BuiltinConfig struct {
	Algorithm string `yaml:"algorithm"` // holt_winters (default) | seasonal_naive
	// Season is the seasonal period; 0 (or "auto") detects daily or weekly
	// seasonality from the data.
	Season model.Duration `yaml:"season,omitempty"`
	// Alpha, Beta, Gamma fix the smoothing parameters of holt_winters;
	// 0 means fitted from the data.
	Alpha float64 `yaml:"alpha,omitempty"`
	Beta  float64 `yaml:"beta,omitempty"`
	Gamma float64 `yaml:"gamma,omitempty"`
	// RefitInterval is how long holt_winters keeps a series' fitted
	// parameters (season and smoothing) before fitting them again; in
	// between, each evaluation runs the fitted model over the newest
	// history. 0 fits at every evaluation. Default 1h.
	RefitInterval model.Duration `yaml:"refit_interval,omitempty"`
}

// TorchScriptConfig loads a model file through libtorch (build tag libtorch).
type TorchScriptConfig struct {
	Path      string `yaml:"path"`
	Device    string `yaml:"device,omitempty"` // cpu | cuda | cuda:N | auto
	BatchSize int    `yaml:"batch_size,omitempty"`
	Threads   int    `yaml:"threads,omitempty"`
}

// Defaults.
var (
	DefaultEvaluationInterval = model.Duration(time.Minute)
	DefaultMetricPrefix       = "openanomaly_"
	DefaultQueryTimeout       = model.Duration(30 * time.Second)
	DefaultRefitInterval      = model.Duration(time.Hour)
	DefaultSplitInterval      = model.Duration(6 * time.Hour)
	DefaultRemoteTimeout      = model.Duration(30 * time.Second)
	DefaultQueueConfig        = QueueConfig{
		Capacity:          100000,
		MaxShards:         4,
		MaxSamplesPerSend: 2000,
		BatchSendDeadline: model.Duration(5 * time.Second),
		MinBackoff:        model.Duration(30 * time.Millisecond),
		MaxBackoff:        model.Duration(5 * time.Second),
		RetryOnRateLimit:  true,
		MaxRetryDuration:  model.Duration(time.Minute),
		FlushDeadline:     model.Duration(time.Minute),
	}
)
