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
// tests. forward runs the graph on the inputs, in the graph's order (the
// first is the float32 [b, l] context), and copies output i into outs[i]
// when its size matches; it returns every output's shape. Implementations
// are safe for concurrent use and keep nothing of the inputs.
type module interface {
	forward(ins []input, outs [][]float32) (shapes [][]int64, err error)
	close()
}

// input is one graph input: float32 (f32) or int64 (i64) values, row-major,
// of the given shape (one or two dimensions).
type input struct {
	f32   []float32
	i64   []int64
	shape []int64
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
// fixed batch of one fails here rather than at the first real batch. A file
// that takes covariates gets them as two tasks (group ids 0 and 1, no known
// future), and once as one task whose second row is a known-future
// covariate.
func (m *Model) probe() error {
	l, h := m.md.ContextLength, m.md.Horizon
	var in batchInputs
	row0, row1 := make([]float32, l), make([]float32, l)
	for i := range l {
		row0[i] = float32(10 + math.Sin(float64(i)/4))
		row1[i] = float32(math.NaN())
		if i >= l/2 {
			row1[i] = float32(i % 7)
		}
	}
	cov := m.md.TakesCovariates()
	in.add(Task{Rows: [][]float32{row0}, Targets: 1}, 0, h, cov)
	in.add(Task{Rows: [][]float32{row1}, Targets: 1}, 1, h, cov)
	if _, err := m.run(&in, 2); err != nil {
		return fmt.Errorf("model file %s: probe forward on a [2, %d] batch: %w: %s", m.path, l, err, reexport)
	}
	if !cov {
		return nil
	}
	nan := float32(math.NaN())
	known, none := make([]float32, h), make([]float32, h)
	for s := range h {
		known[s], none[s] = float32(s%5), nan
	}
	in.reset()
	in.add(Task{Rows: [][]float32{row0, row1}, Future: [][]float32{none, known}, Targets: 1}, 0, h, cov)
	if _, err := m.run(&in, 2); err != nil {
		return fmt.Errorf("model file %s: probe forward of a target with a known-future covariate (inputs %q): %w: %s", m.path, m.md.Inputs, err, reexport)
	}
	return nil
}

// run forwards a batch of b rows and returns output 0, [b, Q, H],
// checking every output's shape against the metadata.
func (m *Model) run(in *batchInputs, b int) ([]float32, error) {
	l, q, h := m.md.ContextLength, len(m.md.Quantiles), m.md.Horizon
	ins := []input{{f32: in.context, shape: []int64{int64(b), int64(l)}}}
	if m.md.TakesCovariates() {
		ins = append(ins, input{i64: in.groups, shape: []int64{int64(b)}}, input{f32: in.future, shape: []int64{int64(b), int64(h)}})
	}
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
	shapes, err := m.mod.forward(ins, outs)
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

// TakesCovariates implements forecast.CovariateModel: the file has the
// covariate inputs (Metadata.TakesCovariates) and its family an adapter
// for them (CovariateFamily).
func (m *Model) TakesCovariates() bool {
	_, ok := m.family.(CovariateFamily)
	return ok && m.md.TakesCovariates()
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
	var res [][][]float32
	var err error
	if hasCovariates(req) {
		var tasks []Task
		if tasks, err = m.tasks(req, idx); err != nil {
			return nil, fmt.Errorf("model %s: %w", m.md.Name, err)
		}
		res, err = m.family.(CovariateFamily).ForecastTasks(ctx, m.md, m.forwardTasks, tasks, req.Horizon)
	} else {
		flat := make([]float32, 0, len(idx)*l)
		rows := make([][]float32, len(idx))
		for r, i := range idx {
			flat = appendContext(flat, req.Histories[i], l)
			rows[r] = flat[r*l : (r+1)*l : (r+1)*l]
		}
		res, err = m.family.Forecast(ctx, m.md, m.forward, rows, req.Horizon)
	}
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", m.md.Name, err)
	}
	if len(res) != len(idx) {
		return nil, fmt.Errorf("model %s: family %q returned %d forecasts for %d series", m.md.Name, m.md.Family, len(res), len(idx))
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

func hasCovariates(req forecast.Request) bool {
	for _, c := range req.Covariates {
		if len(c) > 0 {
			return true
		}
	}
	return false
}

// tasks turns the histories idx of req and their covariates into tasks: the
// target's context, then the past-only covariates' and the known-future
// ones' (Chronos2Pipeline's order: past-only, then known-future), each the
// newest L points up to the target's newest; Future, when a covariate is
// known-future, has req.Horizon values per row, NaN for the target and the
// past-only rows.
func (m *Model) tasks(req forecast.Request, idx []int) ([]Task, error) {
	if !m.TakesCovariates() {
		why := fmt.Sprintf("its inputs are %q, models that take covariates have %q", m.md.Inputs, CovariateInputs)
		if m.md.TakesCovariates() {
			why = fmt.Sprintf("model family %q has no adapter for them", m.md.Family)
		}
		return nil, fmt.Errorf("the request has covariates, and the model file %s takes none: %s (export Chronos-2 with libtorch/export.py --covariates)", m.path, why)
	}
	if len(req.Covariates) != len(req.Histories) {
		return nil, fmt.Errorf("%d covariate lists for %d histories", len(req.Covariates), len(req.Histories))
	}
	l := m.md.ContextLength
	tasks := make([]Task, len(idx))
	nan := float32(math.NaN())
	for r, i := range idx {
		hist, covs := req.Histories[i], req.Covariates[i]
		n := len(hist)
		t := Task{Rows: [][]float32{appendContext(make([]float32, 0, l), hist, l)}, Targets: 1}
		known := false
		for pass := range 2 {
			for _, c := range covs {
				if c.KnownFuture != (pass == 1) {
					continue
				}
				want := n
				if c.KnownFuture {
					want += req.Horizon
					known = true
				}
				if len(c.Values) != want {
					return nil, fmt.Errorf("series %d: covariate %q has %d values, want %d (the history's %d%s)", i, c.Name, len(c.Values), want, n,
						map[bool]string{true: fmt.Sprintf(" and the horizon's %d", req.Horizon)}[c.KnownFuture])
				}
				t.Rows = append(t.Rows, appendContext(make([]float32, 0, l), c.Values[:n], l))
			}
		}
		if known {
			t.Future = make([][]float32, len(t.Rows))
			row := 1
			for pass := range 2 {
				for _, c := range covs {
					if c.KnownFuture != (pass == 1) {
						continue
					}
					f := make([]float32, req.Horizon)
					for s := range f {
						f[s] = nan
						if c.KnownFuture {
							if v := float32(c.Values[n+s]); !math.IsInf(float64(v), 0) {
								f[s] = v
							}
						}
					}
					t.Future[row] = f
					row++
				}
			}
			t.Future[0] = make([]float32, req.Horizon)
			for s := range t.Future[0] {
				t.Future[0][s] = nan
			}
		}
		tasks[r] = t
	}
	return tasks, nil
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
