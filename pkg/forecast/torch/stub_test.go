//go:build !libtorch

package torch

import (
	"errors"
	"testing"

	"github.com/openanomaly/openanomaly/pkg/config"
)

func TestNewWithoutLibtorch(t *testing.T) {
	if _, err := New(config.TorchScriptConfig{Path: "m.pt", Device: "cpu"}); !errors.Is(err, ErrNoLibtorch) {
		t.Errorf("New = %v, want ErrNoLibtorch", err)
	}
}
