//go:build libtorch

package torch

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/openanomaly/openanomaly/internal/testenv"
	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// fixtures is the folder libtorch/make_fixtures.py wrote for this run.
var fixtures string

// TestMain makes the fixtures with the Python torch in
// OPENANOMALY_TORCH_PYTHON (make test-libtorch sets it to the torch this
// binary links), or python3.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tsfm-fixtures-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := testenv.MakeTorchFixtures(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtures = dir
	if testDevice() != "cpu" {
		tolerance = 1e-5
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tolerance for Go against Python on the same file and rows, relative to
// the series' scale (the largest |value| of its forecast, at least 1): the
// same libtorch does the same float32 arithmetic, but a batch split
// differently (batch_size, row count) may block the matrix product
// differently, and each output carries the rounding of terms as large as the
// series' level. 1e-6 is about 8 float32 ulps of that scale.
// On CUDA (OPENANOMALY_TORCH_DEVICE=cuda) the kernels differ from the CPU
// ones Python used, so the bound is 1e-5 there (not yet run on a GPU).
var tolerance = 1e-6

// testDevice is where the tests load the models: OPENANOMALY_TORCH_DEVICE,
// or cpu.
func testDevice() string {
	if d := os.Getenv("OPENANOMALY_TORCH_DEVICE"); d != "" {
		return d
	}
	return "cpu"
}

type refCase struct {
	Batch      int           `json:"batch"`
	Histories  [][]*float64  `json:"histories"`
	Quantiles  [][][]float64 `json:"quantiles"`
	MeanModelQ [][][]float64 `json:"mean_model_quantiles"`
}

type refFile struct {
	ContextLength int       `json:"context_length"`
	Horizon       int       `json:"horizon"`
	Quantiles     []float64 `json:"quantiles"`
	TorchVersion  string    `json:"torch_version"`
	Cases         []refCase `json:"cases"`
}

func loadRef(t *testing.T) refFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r refFile
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

func (c refCase) request(r refFile) forecast.Request {
	req := forecast.Request{Horizon: r.Horizon, Quantiles: r.Quantiles}
	for _, h := range c.Histories {
		row := make([]float64, len(h))
		for i, v := range h {
			row[i] = math.NaN()
			if v != nil {
				row[i] = *v
			}
		}
		req.Histories = append(req.Histories, row)
	}
	return req
}

func load(t *testing.T, file string, batch int) *Model {
	t.Helper()
	m, err := New(config.TorchScriptConfig{Path: filepath.Join(fixtures, file), Device: testDevice(), BatchSize: batch, Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// compare checks got against Python's [B, Q, H] and returns the largest
// scaled difference.
func compare(t *testing.T, name string, got []forecast.Forecast, want [][][]float64) float64 {
	t.Helper()
	worst := 0.0
	if len(got) != len(want) {
		t.Fatalf("%s: %d forecasts, want %d", name, len(got), len(want))
	}
	for r, f := range got {
		if f.Err != nil {
			t.Errorf("%s: series %d: %v", name, r, f.Err)
			continue
		}
		scale := 1.0
		for k := range want[r] {
			for _, w := range want[r][k] {
				scale = math.Max(scale, math.Abs(w))
			}
		}
		for k := range want[r] {
			for s, w := range want[r][k] {
				d := math.Abs(f.Values[k][s]-w) / scale
				worst = math.Max(worst, d)
				if !(d <= tolerance) {
					t.Errorf("%s: series %d q%d h%d = %.9g, Python %.9g", name, r, k, s, f.Values[k][s], w)
				}
			}
		}
	}
	return worst
}

func TestLoad(t *testing.T) {
	m := load(t, "good.pt", 0)
	md := m.Metadata()
	if md.ContextLength != 48 || md.Horizon != 12 || len(md.Quantiles) != 9 || md.Family != "fixture" || md.TorchVersion != Version() {
		t.Errorf("metadata %+v, libtorch %s", md, Version())
	}
	if want := testDevice(); m.Device() != want && m.Device() != want+":0" {
		t.Errorf("device %q, want %s", m.Device(), want)
	}
	if ref := loadRef(t); !strings.HasPrefix(ref.TorchVersion, Version()) {
		t.Errorf("fixtures made by torch %s, binary links libtorch %s", ref.TorchVersion, Version())
	}
}

func TestMatchesPython(t *testing.T) {
	ref := loadRef(t)
	for _, file := range []string{"good.pt", "good_mean.pt"} {
		for _, batch := range []int{1, 100, 256} {
			m := load(t, file, batch)
			for _, c := range ref.Cases {
				if batch == 1 && c.Batch > 7 {
					continue // 256 forwards of one row: slow, and batch 100 splits already
				}
				got, err := m.Forecast(context.Background(), c.request(ref))
				if err != nil {
					t.Fatal(err)
				}
				want := c.Quantiles
				if file == "good_mean.pt" {
					want = c.MeanModelQ
				}
				name := fmt.Sprintf("%s batch_size %d, %d series", file, batch, c.Batch)
				t.Logf("%s: largest difference %.3g (tolerance %g)", name, compare(t, name, got, want), tolerance)
			}
		}
	}
}

func TestRefused(t *testing.T) {
	for _, tc := range []struct {
		file, device string
		want         []string
	}{
		{"no_metadata.pt", "cpu", []string{"has no tsfm/v1 metadata", reexport}},
		{"bad_json.pt", "cpu", []string{`metadata "tsfm.json" is not valid JSON`, reexport}},
		{"wrong_contract.pt", "cpu", []string{`contract "tsfm/v0", this build reads "tsfm/v1"`, reexport}},
		{"wrong_shape.pt", "cpu", []string{"probe forward on a [2, 48] batch", "output 0 (quantiles) has shape [2 12 9], metadata says [2 9 12]", reexport}},
		{"raises.pt", "cpu", []string{"probe forward on a [2, 48] batch: TorchScript graph raised builtins.RuntimeError: fixture: this graph always raises: ", reexport}},
		{"missing.pt", "cpu", []string{"load model file", "missing.pt"}},
		{"good.pt", "cuda:99", []string{"device cuda:99: "}},
	} {
		_, err := New(config.TorchScriptConfig{Path: filepath.Join(fixtures, tc.file), Device: tc.device})
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s on %s: %v\nwant it to contain %q", tc.file, tc.device, err, w)
			}
		}
		if err != nil {
			t.Logf("%s: %v", tc.file, err)
		}
	}
}

func TestAutoDevice(t *testing.T) {
	m, err := New(config.TorchScriptConfig{Path: filepath.Join(fixtures, "good.pt"), Device: "auto"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	t.Logf("auto picked %s", m.Device())
	if m.Device() != "cpu" && !strings.HasPrefix(m.Device(), "cuda") {
		t.Errorf("device %q", m.Device())
	}
}

func TestRaisingForward(t *testing.T) {
	ref := loadRef(t)
	m := load(t, "raises_large.pt", 0)
	c := ref.Cases[1]
	req := c.request(ref)
	req.Histories[3] = append(req.Histories[3], 1e31)
	if _, err := m.Forecast(context.Background(), req); err == nil || !strings.Contains(err.Error(), "fixture: context value out of range") {
		t.Errorf("forward that raises: %v", err)
	} else {
		t.Logf("error: %v", err)
	}
	// The module is still usable after the exception.
	got, err := m.Forecast(context.Background(), c.request(ref))
	if err != nil {
		t.Fatal(err)
	}
	compare(t, "after the exception", got, c.Quantiles)
}

func TestConcurrentForecasts(t *testing.T) {
	ref := loadRef(t)
	m := load(t, "good.pt", 3)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				c := ref.Cases[(g+i)%2] // 1 and 7 series
				got, err := m.Forecast(context.Background(), c.request(ref))
				if err != nil {
					t.Error(err)
					return
				}
				compare(t, "concurrent", got, c.Quantiles)
			}
		})
	}
	wg.Wait()
}

// TestThreads checks that a model's threads apply on whichever OS thread
// runs its forward: with OpenMP the count is per thread. It calls run, the
// forward itself, on a locked thread: Forecast hands rows to the batcher's
// goroutine, whose thread the test cannot see.
func TestThreads(t *testing.T) {
	ref := loadRef(t)
	two := load(t, "good_mean.pt", 0) // threads: 2
	m1, err := New(config.TorchScriptConfig{Path: filepath.Join(fixtures, "good.pt"), Device: testDevice(), Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m1.Close()
	in := make([]float32, ref.ContextLength)
	for i := range in {
		in[i] = float32(i % 5)
	}
	for _, tc := range []struct {
		m    *Model
		want int
	}{{m1, 1}, {two, 2}, {m1, 1}} {
		done := make(chan int)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			if _, err := tc.m.run(&batchInputs{context: in}, 1); err != nil {
				t.Error(err)
			}
			done <- threadsNow()
		}()
		if got := <-done; got != tc.want {
			t.Errorf("threads after a forward = %d, want %d", got, tc.want)
		}
	}
}

// rss returns the process's resident set size in bytes.
func rss(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	pages, err := strconv.ParseInt(strings.Fields(string(b))[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// TestNoLeak runs 10,000 forwards and bounds the growth of the RSS: a leak
// of one input or output buffer per forward (7 rows: 1.3 KiB in, 3 KiB out)
// would grow it by at least 40 MiB.
func TestNoLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ref := loadRef(t)
	m := load(t, "good.pt", 0)
	req := ref.Cases[1].request(ref)
	for range 500 { // warm up allocators and libtorch's caches
		if _, err := m.Forecast(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	before := rss(t)
	for range 10000 {
		if _, err := m.Forecast(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	after := rss(t)
	const bound = 16 << 20
	t.Logf("RSS %d MiB before, %d MiB after 10,000 forwards of 7 series (bound: +%d MiB)", before>>20, after>>20, bound>>20)
	if after-before > bound {
		t.Errorf("RSS grew by %d MiB over 10,000 forwards, bound %d MiB", (after-before)>>20, bound>>20)
	}
}
