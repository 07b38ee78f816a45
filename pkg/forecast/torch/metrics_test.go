package torch

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// TestMetrics checks the forward metrics: one observation per forward (not
// the probe), the batch sizes, and a failed forward counted.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	met := NewMetrics(reg)
	m, f := newFake(t, 2)
	WithMetrics(met, "tiny")(m)

	hist := []float64{1, 2, 3, 4}
	req := forecast.Request{Histories: [][]float64{hist, hist, hist, hist, hist}, Horizon: 2, Quantiles: []float64{0.5}}
	if _, err := m.Forecast(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	f.err = errors.New("boom")
	if _, err := m.Forecast(context.Background(), req); err == nil {
		t.Fatal("a failing forward did not fail the forecast")
	}

	// Forwards of 2, 2 and 1 series, then one of 2 that failed.
	want := `
# HELP openanomaly_torch_batch_size Number of series in one forward of a torchscript model (at most its batch_size).
# TYPE openanomaly_torch_batch_size histogram
openanomaly_torch_batch_size_bucket{model="tiny",le="1"} 1
openanomaly_torch_batch_size_bucket{model="tiny",le="2"} 4
openanomaly_torch_batch_size_bucket{model="tiny",le="4"} 4
openanomaly_torch_batch_size_bucket{model="tiny",le="8"} 4
openanomaly_torch_batch_size_bucket{model="tiny",le="16"} 4
openanomaly_torch_batch_size_bucket{model="tiny",le="32"} 4
openanomaly_torch_batch_size_bucket{model="tiny",le="64"} 4
openanomaly_torch_batch_size_bucket{model="tiny",le="128"} 4
openanomaly_torch_batch_size_bucket{model="tiny",le="256"} 4
openanomaly_torch_batch_size_bucket{model="tiny",le="512"} 4
openanomaly_torch_batch_size_bucket{model="tiny",le="1024"} 4
openanomaly_torch_batch_size_bucket{model="tiny",le="+Inf"} 4
openanomaly_torch_batch_size_sum{model="tiny"} 7
openanomaly_torch_batch_size_count{model="tiny"} 4
# HELP openanomaly_torch_forward_failures_total Forwards of a torchscript model that failed (the graph raised, or returned outputs of the wrong shape).
# TYPE openanomaly_torch_forward_failures_total counter
openanomaly_torch_forward_failures_total{model="tiny"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "openanomaly_torch_batch_size", "openanomaly_torch_forward_failures_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(met.forwardDuration); n != 1 {
		t.Errorf("%d forward duration series, want 1", n)
	}
	if got := histogramCount(t, reg, "openanomaly_torch_forward_duration_seconds"); got != 4 {
		t.Errorf("forward duration count %d, want 4", got)
	}

	// Without metrics (and with a nil Metrics) nothing is recorded and
	// nothing breaks.
	m2, _ := newFake(t, 2)
	WithMetrics(nil, "x")(m2)
	if _, err := m2.Forecast(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

func histogramCount(t *testing.T, reg prometheus.Gatherer, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var n uint64
			for _, m := range mf.Metric {
				n += m.GetHistogram().GetSampleCount()
			}
			return n
		}
	}
	return 0
}
