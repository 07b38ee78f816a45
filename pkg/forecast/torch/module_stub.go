//go:build !libtorch

package torch

// loadModule fails: this binary has no libtorch.
func loadModule(path, device string, threads int) (mod module, meta, chosen, version string, err error) {
	return nil, "", "", "", ErrNoLibtorch
}
