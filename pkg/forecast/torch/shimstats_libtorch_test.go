//go:build libtorch

package torch

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// TestShimForwardStats checks the shim's forward timing: one call per
// forward (the probe included), the forward within the whole call, and the
// failed forward of a graph that raises counted too.
func TestShimForwardStats(t *testing.T) {
	m := load(t, "good.pt", 4)
	s0, ok := ShimForwardStats(m)
	if !ok {
		t.Fatal("no shim statistics")
	}
	if s0.Calls != 1 || s0.Forward <= 0 || s0.Call < s0.Forward {
		t.Errorf("after the probe: %+v, want 1 call, 0 < forward <= call", s0)
	}
	hists := make([][]float64, 10) // batch_size 4: 3 forwards
	for i := range hists {
		hists[i] = make([]float64, 30+i)
		for j := range hists[i] {
			hists[i][j] = 5 + math.Sin(float64(j+i))
		}
	}
	if _, err := m.Forecast(context.Background(), forecast.Request{Histories: hists, Step: time.Minute, Horizon: 12, Quantiles: []float64{0.1, 0.5, 0.9}}); err != nil {
		t.Fatal(err)
	}
	s1, _ := ShimForwardStats(m)
	d := s1.Sub(s0)
	if d.Calls != 3 || d.Forward <= 0 || d.Call < d.Forward {
		t.Errorf("3 forwards: %+v, want 3 calls, 0 < forward <= call", d)
	}

	raises, err := New(config.TorchScriptConfig{Path: filepath.Join(fixtures, "raises_large.pt"), Device: testDevice(), Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	r0, _ := ShimForwardStats(raises)
	hists[0][0] = 1e31
	if _, err := raises.Forecast(context.Background(), forecast.Request{Histories: hists[:1], Step: time.Minute, Horizon: 12, Quantiles: []float64{0.5}}); err == nil {
		t.Error("no error from a graph that raises")
	}
	r1, _ := ShimForwardStats(raises)
	if d := r1.Sub(r0); d.Calls != 1 || d.Call < d.Forward {
		t.Errorf("a forward that raised: %+v, want 1 call, forward <= call", d)
	}
	raises.Close()
	if _, ok := ShimForwardStats(raises); ok {
		t.Error("statistics of a closed model")
	}
}
