//go:build !libtorch

package main

import (
	"errors"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// newTorchScriptModel refuses: this binary was built without libtorch
// (`make build-libtorch` builds one with it).
func newTorchScriptModel(config.TorchScriptConfig) (forecast.Model, error) {
	return nil, errors.New("torchscript models need a binary built with libtorch support, which this build lacks")
}
