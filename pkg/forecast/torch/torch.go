// Package torch runs TorchScript models that follow the tsfm/v1 file
// contract (DESIGN.md §5) through libtorch, on CPU or CUDA, as a
// forecast.Model.
//
// The libtorch binding (shim.cc, module_libtorch.go) compiles only with the
// build tag libtorch; without it New returns ErrNoLibtorch and everything
// else here (the contract check, batching, padding, quantile mapping) still
// builds and is tested against a fake module.
package torch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// ErrNoLibtorch is returned by New in a binary built without the libtorch tag.
var ErrNoLibtorch = errors.New("torchscript: built without libtorch (build with -tags libtorch, see libtorch/README.md)")

// DefaultBatchSize is the most histories one forward takes when the config
// leaves batch_size at 0.
const DefaultBatchSize = 64

// module is one loaded TorchScript graph: the libtorch binding, or a fake in
// tests. forward runs a float32 [b, l] batch and copies output i into
// outs[i] when its size matches; it returns every output's shape.
// Implementations are safe for concurrent use.
type module interface {
	forward(in []float32, b, l int, outs [][]float32) (shapes [][]int64, err error)
	close()
}

// Model is a tsfm/v1 TorchScript file loaded on a device. It is safe for
// concurrent use.
type Model struct {
	md        Metadata
	path      string
	device    string
	batchSize int
	obs       *observer // nil: no metrics
	family    Family
	batch     batcher

	// mu guards mod against Close while forwards run.
	mu  sync.RWMutex
	mod module
}

// New loads the file cfg.Path on cfg.Device, checks it against the tsfm/v1
// contract (metadata present and valid, and a probe batch of two rows gives
// output shapes that match it) and returns the model. cfg.Threads, when set,
// is the intra-op thread count of this model's forwards (libtorch's
// default: one per core). Options (WithMetrics) apply to the forecasts, not
// to the probe.
func New(cfg config.TorchScriptConfig, opts ...Option) (*Model, error) {
	device := cfg.Device
	if device == "" {
		device = "auto"
	}
	mod, raw, chosen, version, err := loadModule(cfg.Path, device, cfg.Threads)
	if err != nil {
		return nil, err
	}
	md, err := parseMetadata(raw, cfg.Path, version)
	if err != nil {
		mod.close()
		return nil, err
	}
	m, err := newModel(md, mod, cfg.Path, chosen, cfg.BatchSize)
	if err != nil {
		mod.close()
		return nil, err
	}
	for _, o := range opts {
		o(m)
	}
	// A Model dropped without Close (a reload that replaced it) still
	// frees libtorch's memory.
	runtime.AddCleanup(m, func(mod module) { mod.close() }, mod)
	return m, nil
}

// newModel wraps a loaded module and runs the probe.
func newModel(md Metadata, mod module, path, device string, batchSize int) (*Model, error) {
	if batchSize <= 0 {
		batchSize = DefaultBatchSize
	}
	m := &Model{md: md, path: path, device: device, batchSize: batchSize, mod: mod, family: familyOf(md.Family)}
	if err := m.probe(); err != nil {
		return nil, err
	}
	return m, nil
}

// SharesBatches implements forecast.SharedBatches: concurrent requests
// share forwards (see batcher.go).
func (m *Model) SharesBatches() bool { return true }

// Metadata returns the file's tsfm/v1 metadata.
func (m *Model) Metadata() Metadata { return m.md }

// Device returns the device the model runs on, e.g. "cpu" or "cuda:0".
func (m *Model) Device() string { return m.device }

// Close frees the module. Forecasts after Close fail; Close waits for the
// running ones.
func (m *Model) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.mod != nil {
		m.mod.close()
		m.mod = nil
	}
}

// probe runs two rows, one full and one mostly NaN padding, and checks the
// outputs against the metadata. Two rows, because a graph traced with a
// fixed batch of one fails here rather than at the first real batch.
func (m *Model) probe() error {
	l := m.md.ContextLength
	in := make([]float32, 2*l)
	for i := range l {
		in[i] = float32(10 + math.Sin(float64(i)/4))
		in[l+i] = float32(math.NaN())
		if i >= l/2 {
			in[l+i] = float32(i % 7)
		}
	}
	if _, err := m.run(in, 2); err != nil {
		return fmt.Errorf("model file %s: probe forward on a [2, %d] batch: %w: %s", m.path, l, err, reexport)
	}
	return nil
}

// run forwards a [b, L] batch and returns output 0, [b, Q, H], checking
// every output's shape against the metadata.
func (m *Model) run(in []float32, b int) ([]float32, error) {
	q, h := len(m.md.Quantiles), m.md.Horizon
	want := [][]int64{{int64(b), int64(q), int64(h)}, {int64(b), int64(h)}}[:len(m.md.Outputs)]
	outs := make([][]float32, len(want))
	for i, w := range want {
		n := int64(1)
		for _, d := range w {
			n *= d
		}
		outs[i] = make([]float32, n)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.mod == nil {
		return nil, errors.New("model closed")
	}
	shapes, err := m.mod.forward(in, b, m.md.ContextLength, outs)
	if err != nil {
		return nil, err
	}
	if len(shapes) != len(want) {
		return nil, fmt.Errorf("graph returned %d outputs, metadata declares %d (%q)", len(shapes), len(want), m.md.Outputs)
	}
	for i, w := range want {
		if !slices.Equal(shapes[i], w) {
			return nil, fmt.Errorf("output %d (%s) has shape %v, metadata says %v ([B, Q, H] with Q = %d quantiles, H = %d)",
				i, m.md.Outputs[i], shapes[i], w, q, h)
		}
	}
	return outs[0], nil
}

// Forecast implements forecast.Model. Each history is cut to its newest L
// points or NaN-left-padded to L; histories without a finite point in that
// window get ErrInsufficientData. The rest go to the model family's adapter
// (Family), which runs them through the graph in batches of at most the
// configured batch size, shared with the concurrent requests of other rules
// on this model, and forecasts horizons beyond the file's native one where
// the family knows how. Requested quantiles between native levels are
// interpolated linearly; outside the native range they are extrapolated
// linearly from the two outermost native levels.
func (m *Model) Forecast(ctx context.Context, req forecast.Request) ([]forecast.Forecast, error) {
	if req.Horizon < 1 {
		return nil, fmt.Errorf("horizon %d must be at least 1", req.Horizon)
	}
	mapping := mapQuantiles(m.md.Quantiles, req.Quantiles)
	l, q := m.md.ContextLength, len(m.md.Quantiles)

	out := make([]forecast.Forecast, len(req.Histories))
	idx := make([]int, 0, len(req.Histories)) // indices of the histories to run
	for i, hist := range req.Histories {
		if !anyFinite(hist[max(0, len(hist)-l):]) {
			out[i].Err = fmt.Errorf("%w: no finite point in the newest %d", forecast.ErrInsufficientData, l)
			continue
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return out, nil
	}
	flat := make([]float32, 0, len(idx)*l)
	rows := make([][]float32, len(idx))
	for r, i := range idx {
		flat = appendContext(flat, req.Histories[i], l)
		rows[r] = flat[r*l : (r+1)*l : (r+1)*l]
	}
	res, err := m.family.Forecast(ctx, m.md, m.forward, rows, req.Horizon)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.md.Name, err)
	}
	if len(res) != len(rows) {
		return nil, fmt.Errorf("model %s: family %q returned %d forecasts for %d series", m.md.Name, m.md.Family, len(res), len(rows))
	}
	native := make([]float64, q)
	for r, i := range idx {
		vals := make([][]float64, len(req.Quantiles))
		for k := range vals {
			vals[k] = make([]float64, req.Horizon)
		}
		ok := len(res[r]) == q
		for s := 0; ok && s < req.Horizon; s++ {
			for k := range q {
				if len(res[r][k]) != req.Horizon {
					ok = false
					break
				}
				native[k] = float64(res[r][k][s])
			}
			if !ok {
				break
			}
			// Sorting is the standard fix for crossing quantiles
			// (rearrangement); it never moves uncrossed ones.
			slices.Sort(native)
			for k, mp := range mapping {
				v := mp.apply(native)
				if math.IsNaN(v) || math.IsInf(v, 0) {
					ok = false
				}
				vals[k][s] = v
			}
		}
		if !ok {
			out[i].Err = errors.New("model returned a non-finite forecast")
			continue
		}
		out[i].Values = vals
	}
	return out, nil
}

// appendContext appends the newest l points of hist as float32, NaN-left-
// padded to l. Values that are not finite as float32 (±Inf, or beyond
// float32's range) become NaN: the contract knows only NaN as missing.
func appendContext(in []float32, hist []float64, l int) []float32 {
	if len(hist) > l {
		hist = hist[len(hist)-l:]
	}
	nan := float32(math.NaN())
	for range l - len(hist) {
		in = append(in, nan)
	}
	for _, v := range hist {
		f := float32(v)
		if math.IsInf(float64(f), 0) {
			f = nan
		}
		in = append(in, f)
	}
	return in
}

func anyFinite(xs []float64) bool {
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			return true
		}
	}
	return false
}

// quantileMap computes one requested level from the sorted native values:
// native[i] + w*(native[j]-native[i]). Inside the native range i < j are the
// neighbours and w is in [0, 1]; outside, i and j are the two outermost
// levels on that side and w extrapolates the line through them.
type quantileMap struct {
	i, j int
	w    float64
}

func (mp quantileMap) apply(native []float64) float64 {
	return native[mp.i] + mp.w*(native[mp.j]-native[mp.i])
}

// mapQuantiles maps each wanted level onto the native ones (ascending).
func mapQuantiles(native, want []float64) []quantileMap {
	out := make([]quantileMap, len(want))
	n := len(native)
	for k, p := range want {
		switch {
		case n == 1:
			out[k] = quantileMap{0, 0, 0}
		case p <= native[0]:
			out[k] = quantileMap{0, 1, (p - native[0]) / (native[1] - native[0])}
		case p >= native[n-1]:
			out[k] = quantileMap{n - 2, n - 1, (p - native[n-2]) / (native[n-1] - native[n-2])}
		default:
			j, _ := slices.BinarySearch(native, p) // native[j-1] < p <= native[j]
			out[k] = quantileMap{j - 1, j, (p - native[j-1]) / (native[j] - native[j-1])}
		}
	}
	return out
}
