//go:build libtorch

package main

import (
	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/torch"
)

// newTorchScriptModel loads a tsfm/v1 TorchScript file through libtorch.
func newTorchScriptModel(cfg config.TorchScriptConfig) (forecast.Model, error) {
	return torch.New(cfg)
}
