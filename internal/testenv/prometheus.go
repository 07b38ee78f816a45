package testenv

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.yaml.in/yaml/v3"
)

// Target is a scrape target for StartPrometheus.
type Target struct {
	// Job is the job label; empty means "target<i>" for the i-th target.
	Job string
	// URL is the target's metrics URL (http://127.0.0.1:9100/metrics) or
	// just host:port, meaning /metrics over http.
	URL string
}

// PrometheusOptions configures StartPrometheus.
type PrometheusOptions struct {
	// ScrapeTargets are scraped in addition to Prometheus itself (job
	// "prometheus").
	ScrapeTargets []Target
	// ScrapeInterval is the global scrape and evaluation interval (and the
	// scrape timeout). Default 1s.
	ScrapeInterval time.Duration
	// RemoteWriteReceiver enables /api/v1/write
	// (--web.enable-remote-write-receiver).
	RemoteWriteReceiver bool
	// ExtraConfig is YAML appended to the generated prometheus.yml at top
	// level (rule_files:, remote_write:, remote_read:).
	ExtraConfig string
	// ExtraArgs are appended to the command line; a flag given again there
	// overrides the default.
	ExtraArgs []string
}

// Prometheus is a running Prometheus server.
type Prometheus struct {
	// QueryAPI holds the base URL, http://127.0.0.1:port.
	QueryAPI
	// Dir is the server's working directory; ConfigFile and the TSDB
	// (Dir/data) are in it.
	Dir        string
	ConfigFile string

	opts PrometheusOptions
	proc *process
}

// StartPrometheus starts a Prometheus that scrapes itself and
// opts.ScrapeTargets, and returns once /-/ready answers 200. It runs with
// --web.enable-lifecycle, so Reload works.
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	bin := lookBinary(t, "OPENANOMALY_PROMETHEUS", "prometheus", "prometheus")
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	dir := t.TempDir()
	p := &Prometheus{Dir: dir, ConfigFile: filepath.Join(dir, "prometheus.yml"), opts: opts}
	proc, base := startServer(t, "prometheus", bin, dir, "/-/ready", func(addr string) []string {
		if err := os.WriteFile(p.ConfigFile, prometheusConfig(t, addr, opts), 0o644); err != nil {
			t.Fatalf("testenv: write prometheus config: %v", err)
		}
		args := []string{
			"--config.file=" + p.ConfigFile,
			"--web.listen-address=" + addr,
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.enable-lifecycle",
		}
		if opts.RemoteWriteReceiver {
			args = append(args, "--web.enable-remote-write-receiver")
		}
		return append(args, opts.ExtraArgs...)
	})
	p.proc, p.URL = proc, base
	return p
}

func prometheusConfig(t testing.TB, selfAddr string, opts PrometheusOptions) []byte {
	t.Helper()
	type staticConfig struct {
		Targets []string `yaml:"targets"`
	}
	type scrapeConfig struct {
		JobName       string         `yaml:"job_name"`
		Scheme        string         `yaml:"scheme,omitempty"`
		MetricsPath   string         `yaml:"metrics_path,omitempty"`
		StaticConfigs []staticConfig `yaml:"static_configs"`
	}
	iv := opts.ScrapeInterval.String()
	cfg := struct {
		Global        map[string]string `yaml:"global"`
		ScrapeConfigs []scrapeConfig    `yaml:"scrape_configs"`
	}{
		Global: map[string]string{"scrape_interval": iv, "scrape_timeout": iv, "evaluation_interval": iv},
		ScrapeConfigs: []scrapeConfig{{
			JobName:       "prometheus",
			StaticConfigs: []staticConfig{{Targets: []string{selfAddr}}},
		}},
	}
	for i, tg := range opts.ScrapeTargets {
		job := tg.Job
		if job == "" {
			job = fmt.Sprintf("target%d", i)
		}
		sc := scrapeConfig{JobName: job}
		u, err := url.Parse(tg.URL)
		if err != nil || u.Host == "" {
			// host:port without a scheme.
			sc.StaticConfigs = []staticConfig{{Targets: []string{tg.URL}}}
		} else {
			sc.Scheme, sc.MetricsPath = u.Scheme, u.Path
			sc.StaticConfigs = []staticConfig{{Targets: []string{u.Host}}}
		}
		cfg.ScrapeConfigs = append(cfg.ScrapeConfigs, sc)
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("testenv: marshal prometheus config: %v", err)
	}
	if opts.ExtraConfig != "" {
		b = append(b, '\n')
		b = append(b, opts.ExtraConfig...)
		b = append(b, '\n')
	}
	return b
}

// RemoteWriteURL is the URL of the remote-write receiver (enabled with
// PrometheusOptions.RemoteWriteReceiver).
func (p *Prometheus) RemoteWriteURL() string { return p.URL + "/api/v1/write" }

// Write sends one series through the remote-write receiver. Prometheus 2.x
// accepts only samples newer than about an hour before the newest sample in
// its head block and rejects the whole request otherwise; load older
// history into VictoriaMetrics instead.
func (p *Prometheus) Write(t testing.TB, name string, lbls map[string]string, ts []time.Time, vs []float64) {
	t.Helper()
	if !p.opts.RemoteWriteReceiver {
		t.Fatalf("testenv: Prometheus.Write needs PrometheusOptions.RemoteWriteReceiver")
	}
	RemoteWrite(t, p.RemoteWriteURL(), name, lbls, ts, vs)
}

// Reload makes Prometheus reread its config file (POST /-/reload).
func (p *Prometheus) Reload(t testing.TB) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, p.URL+"/-/reload", nil)
	httpDo(t, req, http.StatusOK)
}

// Stop stops the server now, before the test ends (to test a store that
// went away). Calling it again, or the cleanup after it, does nothing.
func (p *Prometheus) Stop() { p.proc.stop() }

// RemoteWrite sends one series, as a remote-write 1.0 request, to url
// (Prometheus' /api/v1/write, VictoriaMetrics' /api/v1/write). It fails the
// test on any status but 2xx.
func RemoteWrite(t testing.TB, url, name string, lbls map[string]string, ts []time.Time, vs []float64) {
	t.Helper()
	if len(ts) != len(vs) {
		t.Fatalf("testenv: RemoteWrite: %d timestamps, %d values", len(ts), len(vs))
	}
	ls := []prompb.Label{{Name: "__name__", Value: name}}
	for k, v := range lbls {
		ls = append(ls, prompb.Label{Name: k, Value: v})
	}
	slices.SortFunc(ls, func(a, b prompb.Label) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	samples := make([]prompb.Sample, len(ts))
	for i := range ts {
		samples[i] = prompb.Sample{Timestamp: ts[i].UnixMilli(), Value: vs[i]}
	}
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{Labels: ls, Samples: samples}}}
	raw, err := wr.Marshal()
	if err != nil {
		t.Fatalf("testenv: marshal write request: %v", err)
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	httpDo(t, req, http.StatusOK, http.StatusNoContent)
}
