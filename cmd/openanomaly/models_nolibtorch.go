//go:build !libtorch

package main

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// registerModelMetrics registers nothing: there are no torchscript models.
func registerModelMetrics(prometheus.Registerer) {}

// newTorchScriptModel refuses: this binary was built without libtorch
// (`make build-libtorch` builds one with it).
func newTorchScriptModel(string, config.TorchScriptConfig) (forecast.Model, error) {
	return nil, errors.New("torchscript models need a binary built with libtorch support, which this build lacks")
}
