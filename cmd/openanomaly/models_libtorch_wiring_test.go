//go:build libtorch

package main

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openanomaly/openanomaly/internal/testenv"
	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// TestBuildModelsTorchScript checks the wiring: a torchscript entry in the
// config becomes a registered model that forecasts, and its forwards are
// recorded in the openanomaly_torch_* metrics under its name.
func TestBuildModelsTorchScript(t *testing.T) {
	metricsReg := prometheus.NewPedanticRegistry()
	registerModelMetrics(metricsReg)
	t.Cleanup(func() { torchMetrics = nil })
	dir := t.TempDir()
	if err := testenv.MakeTorchFixtures(dir); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{Models: []*config.ModelConfig{{Name: "tiny", TorchScript: &config.TorchScriptConfig{
		Path: filepath.Join(dir, "good.pt"), Device: "auto", BatchSize: 4, Threads: 1,
	}}}}
	reg, err := buildModels(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := reg.Get("tiny")
	if !ok {
		t.Fatalf("model not registered: %v", reg.Names())
	}
	hist := make([]float64, 100)
	for i := range hist {
		hist[i] = 100 + 10*math.Sin(float64(i)/5)
	}
	qs := []float64{0.05, 0.5, 0.95}
	got, err := m.Forecast(context.Background(), forecast.Request{
		Histories: [][]float64{hist, hist[:10]}, Step: time.Minute, Horizon: 12, Quantiles: qs,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range got {
		if f.Err != nil || len(f.Values) != len(qs) || len(f.Values[0]) != 12 {
			t.Fatalf("series %d: %+v", i, f)
		}
		for s := range 12 {
			lo, mid, hi := f.Values[0][s], f.Values[1][s], f.Values[2][s]
			if !(lo < mid && mid < hi) || math.IsInf(hi, 0) {
				t.Errorf("series %d step %d: quantiles %g %g %g not increasing", i, s, lo, mid, hi)
			}
		}
	}
	// One forward of the two series (batch_size 4), none failed.
	want := map[string]float64{
		"openanomaly_torch_forward_duration_seconds": 1, "openanomaly_torch_batch_size": 1,
		"openanomaly_torch_forward_failures_total": 0,
	}
	mfs, err := metricsReg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		w, ok := want[mf.GetName()]
		if !ok {
			continue
		}
		delete(want, mf.GetName())
		if len(mf.Metric) != 1 || mf.Metric[0].GetLabel()[0].GetValue() != "tiny" {
			t.Errorf("%s: %v, want one series with model=tiny", mf.GetName(), mf.Metric)
			continue
		}
		got := mf.Metric[0].GetCounter().GetValue()
		if h := mf.Metric[0].GetHistogram(); h != nil {
			got = float64(h.GetSampleCount())
			if mf.GetName() == "openanomaly_torch_batch_size" && h.GetSampleSum() != 2 {
				t.Errorf("batch size sum %v, want 2", h.GetSampleSum())
			}
		}
		if got != w {
			t.Errorf("%s = %v, want %v", mf.GetName(), got, w)
		}
	}
	for name := range want {
		t.Errorf("%s not registered", name)
	}
}
