package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"

	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// TestPrometheusNodeExporter runs the sidecar over a real Prometheus that
// scrapes a real node_exporter and itself, with contexts of minutes, writing
// the results back into that Prometheus through its remote-write receiver.
func TestPrometheusNodeExporter(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; runs without -short")
	}
	prom := startNodePrometheus(t)

	config := fmt.Sprintf(`
global:
  evaluation_interval: 4s
  external_labels:
    sidecar: e2e
datasource:
  url: %s
  query_timeout: 3s
remote_write:
  - url: %s
    name: prometheus
    queue_config:
      batch_send_deadline: 500ms
rule_files: [pipelines.yml]
`, prom.URL, prom.RemoteWriteURL())
	pipelines := `
groups:
  - name: node
    rules:
      - forecast: e2e:node_cpu:rate10s
        expr: sum by (cpu, mode) (rate(node_cpu_seconds_total[10s]))
        step: 2s
        context: 2m
        horizons: [10s, 30s]
        anomaly: {}
      - forecast: e2e:heap_inuse:bytes
        expr: go_memstats_heap_inuse_bytes
        step: 2s
        context: 2m
        horizons: [10s, 30s]
        quantiles: [0.1, 0.5, 0.9]
        anomaly:
          band: [0.1, 0.9]
          min_deviation: 1e6
        labels:
          source: go
`
	// The shipped node_exporter pack, every pipeline of it, at 1/30 of its
	// time scale (step 1m → 2s, context 2d → 96m, horizons 1h → 2m, ...):
	// the same expressions against the same real node_exporter, with
	// outputs after a minute instead of half an hour.
	pack := scaledPack(t, "../../rules/node-exporter.yml", 30)
	sc := startSidecar(t, config, pipelines+pack.yaml)

	cpu := contract{pipeline: "e2e:node_cpu:rate10s", horizons: []string{"10s", "30s"}, quantiles: []string{"0.05", "0.5", "0.95"}, minSeries: 2}
	heap := contract{pipeline: "e2e:heap_inuse:bytes", horizons: []string{"10s", "30s"}, quantiles: []string{"0.1", "0.5", "0.9"}, minSeries: 2}
	all := append([]contract{cpu, heap}, pack.contracts...)
	for _, c := range all {
		// Outputs need enough history for the model: about half a minute.
		prom.WaitForQuery(t, fmt.Sprintf(`openanomaly_anomaly_score{pipeline=%q}`, c.pipeline), 3*time.Minute)
	}
	// Let a few more evaluations land so every series has all outputs.
	time.Sleep(10 * time.Second)

	for _, c := range all {
		n := checkContract(t, prom.QueryAPI, c)
		checkExposition(t, sc, c, n)
		t.Logf("%s: %d input series with every output in Prometheus and on /metrics", c.pipeline, n)
	}
	// Rule labels and external labels arrive; the input's own labels stay.
	for _, s := range prom.Query(t, `openanomaly_y{pipeline="e2e:heap_inuse:bytes"}`) {
		if s.Labels.Get("source") != "go" || s.Labels.Get("sidecar") != "e2e" || s.Labels.Get("job") == "" {
			t.Errorf("labels of %s: want source=go, sidecar=e2e and the input's job", s.Labels)
		}
	}
	// The same series on /metrics carry no external labels (as Prometheus).
	for _, s := range sc.metrics(t)["openanomaly_y"].series {
		if _, ok := s.labels["sidecar"]; ok {
			t.Errorf("/metrics series carries the external label: %v", s.labels)
		}
	}
	mfs := sc.metrics(t)
	if v := mfs["openanomaly_remote_write_sent_samples_total"].sum(nil); v == 0 {
		t.Error("openanomaly_remote_write_sent_samples_total is 0")
	}
	if v := mfs["openanomaly_remote_write_failed_samples_total"].sum(nil); v != 0 {
		t.Errorf("openanomaly_remote_write_failed_samples_total = %v, want 0", v)
	}

	// /api/v1/rules shows both pipelines healthy.
	resp, err := http.Get(sc.URL + "/api/v1/rules")
	must(t, err)
	defer resp.Body.Close()
	var rules struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError string
				}
			}
		}
	}
	must(t, json.NewDecoder(resp.Body).Decode(&rules))
	n := 0
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("pipeline %s health %q: %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if want := 2 + len(pack.contracts); n != want {
		t.Errorf("/api/v1/rules lists %d pipelines, want %d", n, want)
	}
}

// scaledRules is a pipeline pack rewritten to a shorter time scale, and the
// contract each of its pipelines must meet.
type scaledRules struct {
	yaml      string // the groups, to append under a pipelines file's groups:
	contracts []contract
}

// scaledPack reads a shipped pipeline file and divides every duration in it
// (interval, query_offset, step, context, horizons) by factor.
func scaledPack(t *testing.T, path string, factor int64) scaledRules {
	t.Helper()
	rgs, errs := rulefmt.ParseFile(path)
	if len(errs) > 0 {
		t.Fatalf("%s: %v", path, errs)
	}
	scale := func(d model.Duration) model.Duration {
		if time.Duration(d)%time.Duration(factor) != 0 {
			t.Fatalf("%s: %s does not divide by %d", path, d, factor)
		}
		return model.Duration(int64(d) / factor)
	}
	var out scaledRules
	for gi := range rgs.Groups {
		g := &rgs.Groups[gi]
		g.Name = "scaled-" + g.Name
		g.Interval = scale(g.Interval)
		if g.QueryOffset != nil {
			o := scale(*g.QueryOffset)
			g.QueryOffset = &o
		}
		for ri := range g.Rules {
			r := &g.Rules[ri]
			r.Step, r.Context = scale(r.Step), scale(r.Context)
			c := contract{pipeline: r.Forecast, minSeries: 1}
			for hi := range r.Horizons {
				r.Horizons[hi] = scale(r.Horizons[hi])
				c.horizons = append(c.horizons, r.Horizons[hi].String())
			}
			for _, q := range r.Quantiles {
				c.quantiles = append(c.quantiles, strconv.FormatFloat(q, 'f', -1, 64))
			}
			out.contracts = append(out.contracts, c)
		}
	}
	b, err := yaml.Marshal(rgs.Groups)
	must(t, err)
	// Indented as items of the groups list the caller's file has.
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		out.yaml += "  " + line + "\n"
	}
	if len(out.contracts) == 0 {
		t.Fatalf("%s has no pipelines", path)
	}
	return out
}
