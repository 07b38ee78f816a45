//go:build libtorch

package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/torch"
	// The foundation model families' adapters register themselves.
	_ "github.com/openanomaly/openanomaly/pkg/forecast/tsfm"
)

// torchMetrics are the torchscript models' forward metrics, shared by every
// model and every reload; nil until registerModelMetrics (then the models
// record nothing).
var torchMetrics *torch.Metrics

// registerModelMetrics registers the torchscript models' metrics
// (openanomaly_torch_*) with reg, once per process.
func registerModelMetrics(reg prometheus.Registerer) {
	torchMetrics = torch.NewMetrics(reg)
}

// newTorchScriptModel loads a tsfm/v1 TorchScript file through libtorch; its
// forwards are recorded under model=name.
func newTorchScriptModel(name string, cfg config.TorchScriptConfig) (forecast.Model, error) {
	return torch.New(cfg, torch.WithMetrics(torchMetrics, name))
}
