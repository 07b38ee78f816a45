package e2e

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/internal/testenv"
	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/builtin"
	"github.com/openanomaly/openanomaly/pkg/pipeline"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// nabFile is one realKnownCause series and the step it was sampled at.
type nabFile struct {
	name string
	step time.Duration
	// cut, when set, is the last sample kept: later data is cut off and
	// this sample lands at the present.
	cut time.Time
}

// machineDrop is the last 5-minute sample of the sudden drop of
// machine_temperature_system_failure (88 at 07:00, 71 at 08:00 on
// 2014-02-07, one of NAB's labelled anomaly windows).
var machineDrop = time.Date(2014, 2, 7, 8, 0, 0, 0, time.UTC)

var nabFiles = []nabFile{
	{name: "machine_temperature_system_failure", step: 5 * time.Minute, cut: machineDrop},
	{name: "cpu_utilization_asg_misconfiguration", step: 5 * time.Minute},
	{name: "ec2_request_latency_system_failure", step: 5 * time.Minute},
	// Irregular: hours-long gaps between runs of 5-minute samples.
	{name: "rogue_agent_key_hold", step: 5 * time.Minute},
	{name: "rogue_agent_key_updown", step: 5 * time.Minute},
	{name: "nyc_taxi", step: 30 * time.Minute},
	{name: "ambient_temperature_system_failure", step: time.Hour},
}

// nabPipelines has one pipeline per sampling step, each over a few days.
const nabPipelines = `
groups:
  - name: nab
    interval: 10s
    rules:
      - forecast: nab:5m
        expr: nab{step="5m"}
        step: 5m
        context: 3d
        horizons: [15m, 1h]
        anomaly: {}
      - forecast: nab:30m
        expr: nab{step="30m"}
        step: 30m
        context: 3d
        horizons: [1h, 3h]
        anomaly: {}
      - forecast: nab:1h
        expr: nab{step="1h"}
        step: 1h
        context: 3d
        horizons: [1h, 6h]
        quantiles: [0.1, 0.5, 0.9]
        anomaly:
          band: [0.1, 0.9]
`

// TestVictoriaMetricsNAB loads NAB's realKnownCause series into a real
// VictoriaMetrics, shifted so each ends at the present, and runs the sidecar
// over them with contexts of days, writing back into VictoriaMetrics.
// machine_temperature_system_failure is cut right after its sudden drop, so
// the present is the drop: the sidecar must score it above 1.
func TestVictoriaMetricsNAB(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; runs without -short")
	}
	vm := testenv.StartVictoriaMetrics(t)

	// The drop must be the newest 5-minute point when the sidecar first
	// evaluates: leave at least two minutes of the current window.
	now := time.Now()
	if left := 5*time.Minute - now.Sub(now.Truncate(5*time.Minute)); left < 2*time.Minute {
		t.Logf("waiting %s for the next 5-minute window", left.Round(time.Second))
		time.Sleep(left + time.Second)
		now = time.Now()
	}
	for _, f := range nabFiles {
		ts, vs := testenv.LoadNAB(t, filepath.Join("realKnownCause", f.name+".csv"))
		if !f.cut.IsZero() {
			i := sort.Search(len(ts), func(i int) bool { return ts[i].After(f.cut) })
			ts, vs = ts[:i], vs[:i]
			if !ts[len(ts)-1].Equal(f.cut) {
				t.Fatalf("%s has no sample at %s", f.name, f.cut)
			}
		}
		// The newest sample lands on the newest step boundary, so that
		// every sample sits on the sidecar's step-aligned grid.
		last := ts[len(ts)-1]
		ts = testenv.Shift(ts, last, now.Truncate(f.step))
		// A week is more than any context here.
		from := sort.Search(len(ts), func(i int) bool { return ts[i].After(now.Add(-7 * 24 * time.Hour)) })
		vm.Import(t, "nab", map[string]string{"file": f.name, "step": shortDuration(f.step)}, ts[from:], vs[from:])
	}
	vm.Flush(t)

	config := fmt.Sprintf(`
global:
  external_labels:
    sidecar: nab
datasource:
  url: %s
  query_timeout: 8s
remote_write:
  - url: %s
    queue_config:
      batch_send_deadline: 500ms
rule_files: [pipelines.yml]
`, vm.URL, vm.RemoteWriteURL())
	sc := startSidecar(t, config, nabPipelines)

	contracts := []contract{
		{pipeline: "nab:5m", horizons: []string{"15m", "1h"}, quantiles: []string{"0.05", "0.5", "0.95"}, minSeries: 5},
		{pipeline: "nab:30m", horizons: []string{"1h", "3h"}, quantiles: []string{"0.05", "0.5", "0.95"}, minSeries: 1},
		{pipeline: "nab:1h", horizons: []string{"1h", "6h"}, quantiles: []string{"0.1", "0.5", "0.9"}, minSeries: 1},
	}
	for _, c := range contracts {
		vm.WaitForQuery(t, fmt.Sprintf(`openanomaly_anomaly_score{pipeline=%q}`, c.pipeline), 2*time.Minute)
	}
	// Every series of every pipeline has been evaluated at least once; one
	// more interval lets the remote-write batches land.
	time.Sleep(12 * time.Second)

	for _, c := range contracts {
		n := checkContract(t, vm.QueryAPI, c)
		checkExposition(t, sc, c, n)
		t.Logf("%s: %d input series with every output in VictoriaMetrics and on /metrics", c.pipeline, n)
	}

	// The drop.
	q := `max_over_time(openanomaly_anomaly_score{pipeline="nab:5m",file="machine_temperature_system_failure"}[10m])`
	res := vm.Query(t, q)
	if len(res) != 1 {
		t.Fatalf("%s: %d series, want 1", q, len(res))
	}
	dropScore := res[0].Points[0].V
	t.Logf("machine_temperature_system_failure at its drop (%s, shifted to the present): score %.2f", machineDrop.Format(time.DateTime), dropScore)
	if dropScore <= 1 {
		t.Errorf("score at the drop = %.3f, want > 1", dropScore)
	}
	for _, s := range vm.Query(t, `openanomaly_anomaly_score{pipeline="nab:5m"}`) {
		t.Logf("  score now %-40s %.2f", s.Labels.Get("file"), s.Points[0].V)
	}

	// The same pipeline, replayed at ordinary times earlier that day (one
	// evaluation each, as the group would have run it then).
	printOrdinaryScores(t, vm, now.Truncate(5*time.Minute))
}

// printOrdinaryScores evaluates nab:5m at times before the drop and logs
// machine_temperature's score at each.
func printOrdinaryScores(t *testing.T, vm *testenv.VictoriaMetrics, drop time.Time) {
	t.Helper()
	groups, errs := rulefmt.Parse([]byte(nabPipelines), "pipelines.yml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var spec rulefmt.Rule
	for _, r := range groups.Groups[0].Rules {
		if r.Forecast == "nab:5m" {
			spec = r
		}
	}
	q, err := datasource.NewHTTPQuerier(datasource.HTTPOptions{URL: vm.URL, Timeout: 10 * time.Second})
	must(t, err)
	models := forecast.NewRegistry()
	must(t, models.Register("default", builtin.Default()))

	var above int
	hoursBefore := []int{24, 18, 12, 9, 6, 3, 2}
	for _, h := range hoursBefore {
		ts := drop.Add(-time.Duration(h) * time.Hour)
		app := &captureAppender{}
		r := pipeline.NewRule(spec, "openanomaly_")
		if err := r.Eval(context.Background(), ts.Add(time.Second), pipeline.EvalOptions{Querier: q, Models: models, Appender: app}); err != nil {
			t.Fatalf("replay at %s: %v", ts, err)
		}
		v, ok := app.get("openanomaly_anomaly_score", "machine_temperature_system_failure")
		if !ok {
			t.Fatalf("replay at %s: no score for machine_temperature_system_failure", ts)
		}
		if v > 1 {
			above++
		}
		t.Logf("machine_temperature_system_failure %2dh before the drop (%s): score %.2f",
			h, machineDrop.Add(-time.Duration(h)*time.Hour).Format(time.DateTime), v)
	}
	// Ordinary times are mostly inside the band; a quiet series is not
	// flagged all day.
	if above > len(hoursBefore)/2 {
		t.Errorf("%d of %d ordinary times scored above 1", above, len(hoursBefore))
	}
}

// captureAppender keeps what one evaluation emits.
type captureAppender struct {
	mtx     sync.Mutex
	samples []struct {
		lset labels.Labels
		v    float64
	}
}

func (a *captureAppender) Append(lset labels.Labels, _ int64, v float64) {
	a.mtx.Lock()
	defer a.mtx.Unlock()
	a.samples = append(a.samples, struct {
		lset labels.Labels
		v    float64
	}{lset.Copy(), v})
}

func (a *captureAppender) get(name, file string) (float64, bool) {
	a.mtx.Lock()
	defer a.mtx.Unlock()
	for _, s := range a.samples {
		if s.lset.Get(labels.MetricName) == name && s.lset.Get("file") == file && !math.IsNaN(s.v) {
			return s.v, true
		}
	}
	return 0, false
}

// shortDuration formats 5m0s as 5m, 30m0s as 30m and 1h0m0s as 1h.
func shortDuration(d time.Duration) string { return model.Duration(d).String() }
