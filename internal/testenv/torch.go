package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// TorchPython is the Python whose torch writes the TorchScript fixtures:
// $OPENANOMALY_TORCH_PYTHON (make test-libtorch sets it to the torch the
// tagged binary links), or python3.
func TorchPython() string {
	if py := os.Getenv("OPENANOMALY_TORCH_PYTHON"); py != "" {
		return py
	}
	return "python3"
}

// MakeTorchFixtures runs libtorch/make_fixtures.py with TorchPython, writing
// the tsfm/v1 fixture files (good.pt: context 48, horizon 12, 9 quantiles;
// the broken ones; cases.json) into dir. It takes no testing.TB so that a
// TestMain can call it.
func MakeTorchFixtures(dir string) error {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return fmt.Errorf("testenv: cannot locate make_fixtures.py")
	}
	script := filepath.Join(filepath.Dir(self), "..", "..", "libtorch", "make_fixtures.py")
	py := TorchPython()
	cmd := exec.Command(py, script, dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("make_fixtures.py with %s: %v\n%s", py, err, out.String())
	}
	return nil
}
