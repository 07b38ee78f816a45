// Package e2e runs the openanomaly binary against real stores: a Prometheus
// scraping a real node_exporter, and a VictoriaMetrics loaded with NAB data.
package e2e

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/internal/testenv"
)

var binary string

// buildTags are the build tags of the binary TestMain builds: a tagged test
// file (torch_test.go, libtorch) sets them in an init.
var buildTags string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "openanomaly-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "openanomaly")
	build := exec.Command("go", "build", "-tags="+buildTags, "-o", binary, "github.com/openanomaly/openanomaly/cmd/openanomaly")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building openanomaly:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// sidecar is a running openanomaly process.
type sidecar struct {
	URL string
	log *bytes.Buffer
	cmd *exec.Cmd
}

// startSidecar writes config and pipelines into a temporary folder, runs
// `openanomaly run` on a free port and waits until it is ready.
func startSidecar(t *testing.T, config, pipelines string) *sidecar {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "openanomaly.yml")
	must(t, os.WriteFile(cfgFile, []byte(config), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "pipelines.yml"), []byte(pipelines), 0o644))

	check := exec.Command(binary, "check", "config", cfgFile)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("openanomaly check config: %v\n%s", err, out)
	}

	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s := &sidecar{URL: "http://" + addr, log: &bytes.Buffer{}}
	s.cmd = exec.Command(binary, "run", "--config.file="+cfgFile, "--web.listen-address="+addr, "--log.level=debug")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	must(t, s.cmd.Start())
	var rulesAtFailure []byte
	t.Cleanup(func() {
		if t.Failed() {
			// The rules' health and skip counts say why outputs are missing.
			if resp, err := http.Get(s.URL + "/api/v1/rules"); err == nil {
				rulesAtFailure, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
		}
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			t.Errorf("openanomaly did not stop within 20s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("openanomaly log:\n%s", s.log.String())
			t.Logf("openanomaly /api/v1/rules before the stop:\n%s", rulesAtFailure)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("openanomaly not ready after 20s:\n%s", s.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// metrics scrapes the sidecar's /metrics.
func (s *sidecar) metrics(t *testing.T) map[string]*dtoFamily {
	t.Helper()
	resp, err := http.Get(s.URL + "/metrics")
	must(t, err)
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	must(t, err)
	out := map[string]*dtoFamily{}
	for name, mf := range mfs {
		f := &dtoFamily{}
		for _, m := range mf.Metric {
			lbls := map[string]string{}
			for _, l := range m.Label {
				lbls[l.GetName()] = l.GetValue()
			}
			var v float64
			switch {
			case m.Gauge != nil:
				v = m.Gauge.GetValue()
			case m.Counter != nil:
				v = m.Counter.GetValue()
			case m.Untyped != nil:
				v = m.Untyped.GetValue()
			}
			f.series = append(f.series, expoSeries{lbls, v})
		}
		out[name] = f
	}
	return out
}

type dtoFamily struct{ series []expoSeries }

type expoSeries struct {
	labels map[string]string
	v      float64
}

// sum adds up a family's values over the series whose labels include want.
func (f *dtoFamily) sum(want map[string]string) float64 {
	if f == nil {
		return 0
	}
	total := 0.0
next:
	for _, s := range f.series {
		for k, v := range want {
			if s.labels[k] != v {
				continue next
			}
		}
		total += s.v
	}
	return total
}

// contract is what every pipeline must have produced in a store.
type contract struct {
	pipeline  string
	horizons  []string
	quantiles []string
	// minSeries is the least number of input series expected.
	minSeries int
}

// checkContract asserts through PromQL on a store that every series of the
// emitted-series contract arrived with sane values, and returns the number
// of input series.
func checkContract(t *testing.T, store testenv.QueryAPI, c contract) int {
	t.Helper()
	sel := fmt.Sprintf(`{pipeline=%q}`, c.pipeline)
	ys := store.Query(t, "openanomaly_y"+sel)
	if len(ys) < c.minSeries {
		t.Fatalf("%s: %d openanomaly_y series, want at least %d", c.pipeline, len(ys), c.minSeries)
	}
	now := time.Now()
	for _, name := range []string{"openanomaly_yhat", "openanomaly_yhat_lower", "openanomaly_yhat_upper", "openanomaly_anomaly_score"} {
		// Every y has its companion, and no companion lacks a y.
		for _, q := range []string{"openanomaly_y" + sel + " unless " + name + sel, name + sel + " unless openanomaly_y" + sel} {
			if res := store.Query(t, q); len(res) != 0 {
				t.Errorf("%s: %q returned %d series, want none: %v", c.pipeline, q, len(res), res[0].Labels)
			}
		}
	}
	for _, q := range []string{
		"openanomaly_yhat_lower" + sel + " > openanomaly_yhat" + sel,
		"openanomaly_yhat" + sel + " > openanomaly_yhat_upper" + sel,
	} {
		if res := store.Query(t, q); len(res) != 0 {
			t.Errorf("%s: band out of order: %q returned %v", c.pipeline, q, res[0].Labels)
		}
	}
	for _, s := range store.Query(t, "openanomaly_anomaly_score"+sel) {
		v := s.Points[0].V
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 1e6 {
			t.Errorf("%s: score %v for %s", c.pipeline, v, s.Labels)
		}
	}
	for _, s := range store.Query(t, "timestamp(openanomaly_yhat"+sel+")") {
		if ts := time.Unix(0, int64(s.Points[0].V*1e9)); ts.After(now) {
			t.Errorf("%s: sample stamped in the future: %s", c.pipeline, ts)
		}
	}
	for _, h := range c.horizons {
		for _, q := range c.quantiles {
			fsel := fmt.Sprintf(`{pipeline=%q,horizon=%q,quantile=%q}`, c.pipeline, h, q)
			if res := store.Query(t, "openanomaly_y"+sel+" unless on("+labelList(ys)+") openanomaly_forecast"+fsel); len(res) != 0 {
				t.Errorf("%s: %d series lack a forecast for horizon %s quantile %s, e.g. %s", c.pipeline, len(res), h, q, res[0].Labels)
			}
		}
		// Quantiles are ordered at every horizon.
		lo := fmt.Sprintf(`openanomaly_forecast{pipeline=%q,horizon=%q,quantile=%q}`, c.pipeline, h, c.quantiles[0])
		hi := fmt.Sprintf(`openanomaly_forecast{pipeline=%q,horizon=%q,quantile=%q}`, c.pipeline, h, c.quantiles[len(c.quantiles)-1])
		if res := store.Query(t, lo+" > ignoring(quantile) "+hi); len(res) != 0 {
			t.Errorf("%s: horizon %s: quantile %s above %s for %s", c.pipeline, h, c.quantiles[0], c.quantiles[len(c.quantiles)-1], res[0].Labels)
		}
	}
	return len(ys)
}

// labelList names the labels of the y series except __name__, for on(...).
func labelList(series []testenv.Series) string {
	names := map[string]bool{}
	for _, s := range series {
		s.Labels.Range(func(l labels.Label) {
			if l.Name != model.MetricNameLabel {
				names[l.Name] = true
			}
		})
	}
	var out []string
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// checkExposition asserts the sidecar's /metrics carries the same outputs.
func checkExposition(t *testing.T, s *sidecar, c contract, inputs int) {
	t.Helper()
	mfs := s.metrics(t)
	sel := map[string]string{"pipeline": c.pipeline}
	count := func(name string, extra map[string]string) int {
		f := mfs[name]
		if f == nil {
			return 0
		}
		n := 0
	next:
		for _, s := range f.series {
			for k, v := range sel {
				if s.labels[k] != v {
					continue next
				}
			}
			for k, v := range extra {
				if s.labels[k] != v {
					continue next
				}
			}
			if math.IsNaN(s.v) || math.IsInf(s.v, 0) {
				t.Errorf("/metrics: non-finite %s %v", name, s.labels)
			}
			n++
		}
		return n
	}
	ny := count("openanomaly_y", nil)
	if ny < c.minSeries {
		t.Fatalf("/metrics: %s has %d openanomaly_y series, want at least %d", c.pipeline, ny, c.minSeries)
	}
	// The store can lag the exposition by one evaluation at most; input
	// series come and go rarely in these tests.
	if diff := ny - inputs; diff < -1 || diff > 1 {
		t.Errorf("/metrics has %d y series for %s, the store %d", ny, c.pipeline, inputs)
	}
	for _, name := range []string{"openanomaly_yhat", "openanomaly_yhat_lower", "openanomaly_yhat_upper", "openanomaly_anomaly_score"} {
		if n := count(name, nil); n != ny {
			t.Errorf("/metrics: %d %s series for %d y series", n, name, ny)
		}
	}
	for _, h := range c.horizons {
		for _, q := range c.quantiles {
			if n := count("openanomaly_forecast", map[string]string{"horizon": h, "quantile": q}); n != ny {
				t.Errorf("/metrics: %d forecasts for horizon %s quantile %s, want %d", n, h, q, ny)
			}
		}
	}
	if v := mfs["openanomaly_pipeline_evaluations_total"].sum(sel); v < 1 {
		t.Errorf("openanomaly_pipeline_evaluations_total for %s = %v", c.pipeline, v)
	}
	if v := mfs["openanomaly_pipeline_evaluation_failures_total"].sum(sel); v != 0 {
		t.Errorf("openanomaly_pipeline_evaluation_failures_total for %s = %v", c.pipeline, v)
	}
	// The context is read once; later evaluations read only what is new.
	full := mfs["openanomaly_pipeline_reads_total"].sum(map[string]string{"pipeline": c.pipeline, "kind": "full"})
	incremental := mfs["openanomaly_pipeline_reads_total"].sum(map[string]string{"pipeline": c.pipeline, "kind": "incremental"})
	if full != 1 || incremental < 1 {
		t.Errorf("%s: %v full and %v incremental reads, want 1 and at least 1", c.pipeline, full, incremental)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// startNodePrometheus starts a real node_exporter and a real Prometheus that
// scrapes it (and itself) every second, with its remote-write receiver on.
func startNodePrometheus(t *testing.T) *testenv.Prometheus {
	t.Helper()
	node := testenv.StartNodeExporter(t)
	return testenv.StartPrometheus(t, testenv.PrometheusOptions{
		ScrapeTargets:       []testenv.Target{{Job: "node", URL: node}},
		ScrapeInterval:      time.Second,
		RemoteWriteReceiver: true,
	})
}
