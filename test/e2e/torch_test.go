//go:build libtorch

package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/openanomaly/openanomaly/internal/testenv"
)

// With the libtorch tag the whole package runs against the tagged binary
// (it does everything the untagged one does, and torchscript models).
// go test inherits the cgo flags make test-libtorch exports.
func init() { buildTags = "libtorch" }

// TestTorchScriptPrometheus runs `openanomaly run` with a torchscript model,
// the tsfm/v1 fixture good.pt from libtorch/make_fixtures.py (context 48,
// horizon 12, 9 native quantiles), over a real Prometheus scraping a real
// node_exporter, and checks the full series contract arrives in Prometheus
// and on /metrics.
func TestTorchScriptPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; runs without -short")
	}
	fixtures := t.TempDir()
	if err := testenv.MakeTorchFixtures(fixtures); err != nil {
		t.Fatal(err)
	}
	prom := startNodePrometheus(t)

	config := fmt.Sprintf(`
global:
  evaluation_interval: 3s
  external_labels:
    sidecar: e2e-torch
datasource:
  url: %s
  query_timeout: 3s
remote_write:
  - url: %s
    name: prometheus
    queue_config:
      batch_send_deadline: 500ms
models:
  - name: tiny
    torchscript:
      path: %s
      device: cpu
      batch_size: 4
      threads: 1
rule_files: [pipelines.yml]
`, prom.URL, prom.RemoteWriteURL(), filepath.Join(fixtures, "good.pt"))
	// Step 1s and a context of 2m, longer than the file's L of 48 steps:
	// the model keeps the newest 48 (truncation), and NaN-left-pads while
	// Prometheus holds less; a context under the pipeline's one-minute
	// re-read overlap would make every read a full one. The model is asked
	// for the horizons counted from each series' newest point, which lags
	// the evaluation by a few seconds (scrape, rate window, step
	// alignment), so horizons of at most 6s stay within the file's native
	// 12 steps. The CPU series (one per cpu and mode, more than the batch
	// size) run in several forwards; quantiles 0.05 and 0.95 lie outside
	// the native 0.1..0.9 (extrapolated), 0.25 between native levels
	// (interpolated).
	pipelines := `
groups:
  - name: torch
    rules:
      - forecast: e2e:torch_node_cpu:rate5s
        expr: sum by (cpu, mode) (rate(node_cpu_seconds_total[5s]))
        model: tiny
        step: 1s
        context: 2m
        horizons: [3s, 6s]
        anomaly: {}
      - forecast: e2e:torch_heap_inuse:bytes
        expr: go_memstats_heap_inuse_bytes
        model: tiny
        step: 1s
        context: 2m
        horizons: [1s, 6s]
        quantiles: [0.05, 0.25, 0.5, 0.95]
        anomaly:
          band: [0.05, 0.95]
          min_deviation: 1e6
`
	sc := startSidecar(t, config, pipelines)

	cpu := contract{pipeline: "e2e:torch_node_cpu:rate5s", horizons: []string{"3s", "6s"}, quantiles: []string{"0.05", "0.5", "0.95"}, minSeries: 2}
	heap := contract{pipeline: "e2e:torch_heap_inuse:bytes", horizons: []string{"1s", "6s"}, quantiles: []string{"0.05", "0.25", "0.5", "0.95"}, minSeries: 2}
	all := []contract{cpu, heap}
	for _, c := range all {
		prom.WaitForQuery(t, fmt.Sprintf(`openanomaly_anomaly_score{pipeline=%q}`, c.pipeline), time.Minute)
	}
	// Let a few more evaluations land so every series has all outputs.
	time.Sleep(7 * time.Second)
	for _, c := range all {
		n := checkContract(t, prom.QueryAPI, c)
		checkExposition(t, sc, c, n)
		t.Logf("%s: %d input series with every output in Prometheus and on /metrics", c.pipeline, n)
	}
	for _, s := range prom.Query(t, `openanomaly_y{pipeline="e2e:torch_heap_inuse:bytes"}`) {
		if s.Labels.Get("sidecar") != "e2e-torch" || s.Labels.Get("job") == "" {
			t.Errorf("labels of %s: want sidecar=e2e-torch and the input's job", s.Labels)
		}
	}
	// The model's forwards are on /metrics under its config name: 16+ CPU
	// series at batch_size 4 need several forwards, none failed.
	resp, err := http.Get(sc.URL + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	must(t, err)
	tiny := func(name string) *dto.Metric {
		if mf := mfs[name]; mf != nil {
			for _, m := range mf.Metric {
				for _, l := range m.Label {
					if l.GetName() == "model" && l.GetValue() == "tiny" {
						return m
					}
				}
			}
		}
		t.Fatalf("/metrics: no %s{model=\"tiny\"}", name)
		return nil
	}
	forwards := tiny("openanomaly_torch_forward_duration_seconds").GetHistogram().GetSampleCount()
	batches := tiny("openanomaly_torch_batch_size").GetHistogram()
	if forwards < 4 || batches.GetSampleCount() != forwards {
		t.Errorf("%d forwards timed and %d batch sizes recorded, want the same, at least 4", forwards, batches.GetSampleCount())
	}
	if mean := batches.GetSampleSum() / float64(batches.GetSampleCount()); mean < 1 || mean > 4 {
		t.Errorf("mean batch size %v, want within [1, batch_size 4]", mean)
	}
	if n := tiny("openanomaly_torch_forward_failures_total").GetCounter().GetValue(); n != 0 {
		t.Errorf("%v failed forwards", n)
	}
	t.Logf("model tiny: %d forwards, mean batch %.2f", forwards, batches.GetSampleSum()/float64(batches.GetSampleCount()))
}
