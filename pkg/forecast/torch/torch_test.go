package torch

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// fakeModule returns, for row r, quantile k and step s: the row's last
// finite input + 10*k + s (or what out says), and records the batches.
type fakeModule struct {
	l, q, h int
	out     func(row []float32, k, s int) float32
	shape   [][]int64 // when set, returned instead of the right shapes
	err     error
	// gate, when set, is received from before each forward runs.
	gate chan struct{}
	// fail, when set, fails a forward whose batch holds a row it accepts.
	fail func(row []float32) bool

	mu      sync.Mutex
	batches [][]float32
	// groups and futures record the group_ids and future_covariates
	// inputs of each batch, for files that take covariates.
	groups  [][]int64
	futures [][]float32
}

func (f *fakeModule) forward(ins []input, outs [][]float32) ([][]int64, error) {
	in := ins[0].f32
	b, l := int(ins[0].shape[0]), int(ins[0].shape[1])
	f.mu.Lock()
	f.batches = append(f.batches, slices.Clone(in))
	if len(ins) == 3 {
		f.groups = append(f.groups, slices.Clone(ins[1].i64))
		f.futures = append(f.futures, slices.Clone(ins[2].f32))
	}
	f.mu.Unlock()
	if f.gate != nil {
		<-f.gate
	}
	if f.err != nil {
		return nil, f.err
	}
	for r := range b {
		if f.fail != nil && f.fail(in[r*l:(r+1)*l]) {
			return nil, errors.New("graph raised")
		}
	}
	if f.shape != nil {
		return f.shape, nil
	}
	for r := range b {
		row := in[r*l : (r+1)*l]
		for k := range f.q {
			for s := range f.h {
				outs[0][(r*f.q+k)*f.h+s] = f.out(row, k, s)
			}
		}
	}
	return [][]int64{{int64(b), int64(f.q), int64(f.h)}}, nil
}

func (f *fakeModule) close() {}

func lastFinite(row []float32) float32 {
	for i := len(row) - 1; i >= 0; i-- {
		if !math.IsNaN(float64(row[i])) {
			return row[i]
		}
	}
	return float32(math.NaN())
}

var testMD = Metadata{
	Contract: Contract, Family: "fake", Name: "fake", ContextLength: 4, Horizon: 3,
	Quantiles: []float64{0.1, 0.5, 0.9}, Inputs: []string{"context"}, Outputs: []string{"quantiles"},
	NaNPolicy: "missing", TorchVersion: "2.11.0", Device: "cpu",
}

func newFake(t *testing.T, batch int) (*Model, *fakeModule) {
	t.Helper()
	f := &fakeModule{l: 4, q: 3, h: 3, out: func(row []float32, k, s int) float32 {
		return lastFinite(row) + float32(10*k+s)
	}}
	m, err := newModel(testMD, f, "fake.pt", "cpu", batch)
	if err != nil {
		t.Fatal(err)
	}
	f.batches = nil // forget the probe
	return m, f
}

func TestForecastPadsTruncatesAndBatches(t *testing.T) {
	m, f := newFake(t, 2)
	nan := math.NaN()
	req := forecast.Request{
		Histories: [][]float64{
			{1, 2, 3, 4, 5, 6},      // truncated to 3 4 5 6
			{7},                     // padded
			{nan, nan, nan, nan, 8}, // only the newest 4 count: NaN NaN NaN 8
			{9, nan, nan, nan, nan}, // no finite point in the newest 4
			{math.Inf(1), 2},        // Inf becomes NaN
		},
		Horizon: 2, Quantiles: []float64{0.1, 0.5, 0.9},
	}
	got, err := m.Forecast(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	wantLast := []float64{6, 7, 8, -1, 2}
	for i, g := range got {
		if i == 3 {
			if !errors.Is(g.Err, forecast.ErrInsufficientData) || g.Values != nil {
				t.Errorf("series 3: err %v, values %v; want ErrInsufficientData", g.Err, g.Values)
			}
			continue
		}
		if g.Err != nil {
			t.Fatalf("series %d: %v", i, g.Err)
		}
		for k := range 3 {
			for s := range 2 {
				if want := wantLast[i] + float64(10*k+s); g.Values[k][s] != want {
					t.Errorf("series %d q%d h%d = %g, want %g", i, k, s, g.Values[k][s], want)
				}
			}
		}
	}
	// Four series to run in batches of at most 2: [0 1] [2 4].
	n := math.NaN()
	want := [][]float64{{3, 4, 5, 6, n, n, n, 7}, {n, n, n, 8, n, n, n, 2}}
	if len(f.batches) != len(want) {
		t.Fatalf("%d batches, want %d", len(f.batches), len(want))
	}
	for b, w := range want {
		for i, v := range w {
			g := float64(f.batches[b][i])
			if math.IsNaN(v) != math.IsNaN(g) || !math.IsNaN(v) && g != v {
				t.Errorf("batch %d value %d = %g, want %g", b, i, g, v)
			}
		}
	}
}

func TestForecastQuantileMapping(t *testing.T) {
	m, _ := newFake(t, 0)
	// Native values for last point 0, step 0: 0.1 → 0, 0.5 → 10, 0.9 → 20.
	req := forecast.Request{Histories: [][]float64{{0}}, Horizon: 1,
		Quantiles: []float64{0.01, 0.1, 0.3, 0.5, 0.75, 0.9, 0.99}}
	got, err := m.Forecast(context.Background(), req)
	if err != nil || got[0].Err != nil {
		t.Fatal(err, got[0].Err)
	}
	// Inside: linear between neighbours; outside: the line through the two
	// outermost levels (slope 10/0.4 = 25 per unit of level).
	want := []float64{-2.25, 0, 5, 10, 16.25, 20, 22.25}
	for k, w := range want {
		if g := got[0].Values[k][0]; math.Abs(g-w) > 1e-9 {
			t.Errorf("q=%g: %g, want %g", req.Quantiles[k], g, w)
		}
	}
}

func TestForecastSortsCrossingQuantiles(t *testing.T) {
	m, f := newFake(t, 0)
	f.out = func(_ []float32, k, _ int) float32 { return float32([]int{5, 1, 3}[k]) }
	got, err := m.Forecast(context.Background(), forecast.Request{Histories: [][]float64{{0}}, Horizon: 1, Quantiles: []float64{0.1, 0.5, 0.9}})
	if err != nil {
		t.Fatal(err)
	}
	if g := []float64{got[0].Values[0][0], got[0].Values[1][0], got[0].Values[2][0]}; !slices.Equal(g, []float64{1, 3, 5}) {
		t.Errorf("got %v, want [1 3 5]", g)
	}
}

func TestForecastErrors(t *testing.T) {
	m, f := newFake(t, 0)
	req := forecast.Request{Histories: [][]float64{{1}, {2}}, Horizon: 4, Quantiles: []float64{0.5}}
	if _, err := m.Forecast(context.Background(), req); err == nil || !strings.Contains(err.Error(), "horizon 4 is longer than the file's 3 steps") {
		t.Errorf("long horizon: %v", err)
	}
	req.Horizon = 1
	f.out = func(row []float32, _, _ int) float32 {
		if row[3] == 2 {
			return float32(math.Inf(1))
		}
		return 1
	}
	got, err := m.Forecast(context.Background(), req)
	if err != nil || got[0].Err != nil || got[1].Err == nil || !strings.Contains(got[1].Err.Error(), "non-finite") {
		t.Errorf("non-finite row: err %v, series %v / %v", err, got[0].Err, got[1].Err)
	}
	f.err = errors.New("boom")
	if _, err := m.Forecast(context.Background(), req); err == nil || !strings.Contains(err.Error(), "forward of 2 series: boom") {
		t.Errorf("failing forward: %v", err)
	}
	m.Close()
	f.err = nil
	if _, err := m.Forecast(context.Background(), req); err == nil || !strings.Contains(err.Error(), "model closed") {
		t.Errorf("after Close: %v", err)
	}
}

func TestProbeRefusesWrongShapes(t *testing.T) {
	for _, tc := range []struct {
		shape [][]int64
		want  string
	}{
		{[][]int64{{2, 3, 3}, {2, 3}}, "graph returned 2 outputs, metadata declares 1"},
		{[][]int64{{2, 3, 4}}, "output 0 (quantiles) has shape [2 3 4], metadata says [2 3 3]"},
		{[][]int64{{1, 3, 3}}, "output 0 (quantiles) has shape [1 3 3]"},
	} {
		_, err := newModel(testMD, &fakeModule{shape: tc.shape}, "x.pt", "cpu", 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "probe forward") || !strings.Contains(err.Error(), reexport) {
			t.Errorf("shape %v: %v, want %q", tc.shape, err, tc.want)
		}
	}
}

func TestParseMetadata(t *testing.T) {
	good := `{"contract":"tsfm/v1","family":"f","name":"n","context_length":8,"horizon":2,
		"quantiles":[0.1,0.5,0.9],"inputs":["context"],"outputs":["quantiles","mean"],
		"nan_policy":"missing","torch_version":"2.11.0","device":"cuda"}`
	md, err := parseMetadata(good, "m.pt", "2.11.0")
	if err != nil {
		t.Fatal(err)
	}
	if md.ContextLength != 8 || md.Horizon != 2 || len(md.Quantiles) != 3 || md.Device != "cuda" {
		t.Errorf("parsed %+v", md)
	}
	for _, tc := range []struct {
		raw, runtime, want string
	}{
		{"", "2.11.0", `model file m.pt has no tsfm/v1 metadata (extra file "tsfm.json" in the archive)`},
		{"{", "2.11.0", "is not valid JSON"},
		{`{"contract":"tsfm/v2"}`, "2.11.0", `contract "tsfm/v2", this build reads "tsfm/v1"`},
		{strings.Replace(good, `"context_length":8`, `"context_length":0`, 1), "2.11.0", "context_length 0 must be at least 1"},
		{strings.Replace(good, `[0.1,0.5,0.9]`, `[0.5,0.1,1]`, 1), "2.11.0", "quantiles must be strictly ascending, 0.1 follows 0.5; quantiles[2] = 1 is not in (0, 1)"},
		{strings.Replace(good, `["context"]`, `["context","group_ids"]`, 1), "2.11.0", `inputs ["context" "group_ids"]: this build supports ["context"] or ["context" "group_ids" "future_covariates"]`},
		{strings.Replace(good, `"quantiles","mean"`, `"mean"`, 1), "2.11.0", `outputs ["mean"]`},
		{strings.Replace(good, `"missing"`, `"zero"`, 1), "2.11.0", `nan_policy "zero"`},
		{good, "2.10.1", "exported with torch 2.11.0, newer than this binary's libtorch 2.10.1"},
	} {
		_, err := parseMetadata(tc.raw, "m.pt", tc.runtime)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), reexport) {
			t.Errorf("%.40q: %v\nwant it to contain %q", tc.raw, err, tc.want)
		}
	}
	if _, err := parseMetadata(good, "m.pt", "2.12.0+cpu"); err != nil {
		t.Errorf("older file on newer libtorch: %v", err)
	}
}
