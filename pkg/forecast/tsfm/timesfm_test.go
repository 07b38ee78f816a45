package tsfm

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openanomaly/openanomaly/pkg/forecast/torch"
)

var tfmLevels = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}

func tfmMeta(l, h int) torch.Metadata {
	return torch.Metadata{Contract: torch.Contract, Family: TimesFM25Family, Name: "timesfm-test",
		ContextLength: l, Horizon: h, Quantiles: tfmLevels, Inputs: []string{"context"},
		Outputs: []string{"quantiles"}, NaNPolicy: "missing", TorchVersion: "2.11.0", Device: "cpu"}
}

// fakeTimesFM is a Forward whose quantile k at step s is last + d[k] + s*slope,
// last the row's newest finite value. It records every call's rows.
type fakeTimesFM struct {
	h     int
	d     []float32
	slope float32
	mu    sync.Mutex
	calls [][][]float32
}

func lastFinite(row []float32) float32 {
	for i := len(row) - 1; i >= 0; i-- {
		if !math.IsNaN(float64(row[i])) {
			return row[i]
		}
	}
	return 0
}

func (f *fakeTimesFM) forward(_ context.Context, rows [][]float32) ([][]float32, error) {
	f.mu.Lock()
	cp := make([][]float32, len(rows))
	for i, r := range rows {
		cp[i] = slices.Clone(r)
	}
	f.calls = append(f.calls, cp)
	f.mu.Unlock()
	out := make([][]float32, len(rows))
	for i, r := range rows {
		v := lastFinite(r)
		flat := make([]float32, len(f.d)*f.h)
		for k, dk := range f.d {
			for s := range f.h {
				flat[k*f.h+s] = v + dk + float32(s)*f.slope
			}
		}
		out[i] = flat
	}
	return out, nil
}

func nanRow(l int, tail ...float32) []float32 {
	row := make([]float32, l)
	for i := range row {
		row[i] = float32(math.NaN())
	}
	copy(row[l-len(tail):], tail)
	return row
}

func TestTimesFMRegistered(t *testing.T) {
	if !slices.Contains(torch.Families(), TimesFM25Family) {
		t.Fatalf("families %v lack %q", torch.Families(), TimesFM25Family)
	}
}

// Flip invariance: (q_k(x) - q_{8-k}(-x)) / 2; with the fake that is
// last + (d[k] - d[8-k]) / 2 for every step.
func TestTimesFMFlipInvariance(t *testing.T) {
	d := []float32{-3, -2.5, -1, -0.5, 0, 1, 1.5, 2, 4}
	fk := &fakeTimesFM{h: 16, d: d}
	row := nanRow(64, -5, 2, -7)
	res, err := TimesFM{}.Forecast(context.Background(), tfmMeta(64, 16), fk.forward, [][]float32{row}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(fk.calls) != 1 || len(fk.calls[0]) != 2 {
		t.Fatalf("want one forward of 2 rows (the row and its negation), got %d calls", len(fk.calls))
	}
	neg := fk.calls[0][1]
	for i, v := range row {
		if math.IsNaN(float64(v)) != math.IsNaN(float64(neg[i])) || !math.IsNaN(float64(v)) && neg[i] != -v {
			t.Fatalf("negated row[%d] = %v for %v", i, neg[i], v)
		}
	}
	if len(res) != 1 || len(res[0]) != 9 {
		t.Fatalf("result shape %d×%d", len(res), len(res[0]))
	}
	for k := range 9 {
		want := -7 + (d[k]-d[8-k])/2
		if len(res[0][k]) != 10 {
			t.Fatalf("quantile %d has %d steps, want 10", k, len(res[0][k]))
		}
		for s, got := range res[0][k] {
			if got != want {
				t.Fatalf("q%d step %d = %v, want %v", k, s, got, want)
			}
		}
	}
}

// fix_quantile_crossing from the median outwards, and infer_is_positive.
func TestTimesFMCrossingAndPositivity(t *testing.T) {
	// Symmetric offsets: the flip average is last + d[k] (d odd-symmetric).
	d := []float32{-1, -3, -2, -2.5, 0, 2.5, 2, 3, 1}
	fk := &fakeTimesFM{h: 8, d: d}
	rows := [][]float32{nanRow(32, 1, 2, 10), nanRow(32, 1, -2, 10), nanRow(32, 0, 0.5)}
	res, err := TimesFM{}.Forecast(context.Background(), tfmMeta(32, 8), fk.forward, rows, 8)
	if err != nil {
		t.Fatal(err)
	}
	fixed := []float32{-3, -3, -2.5, -2.5, 0, 2.5, 2.5, 3, 3}
	for r, last := range []float32{10, 10, 0.5} {
		for k := range 9 {
			want := last + fixed[k]
			if r != 1 { // rows 0 and 2 are non-negative: clamp
				want = max(want, 0)
			}
			for s, got := range res[r][k] {
				if got != want {
					t.Fatalf("row %d q%d step %d = %v, want %v", r, k, s, got, want)
				}
			}
		}
	}
}

// Horizons beyond the file's: passes per chain, each fed the previous
// pass's median after the newest L-H points of its own row.
func TestTimesFMPasses(t *testing.T) {
	const l, h = 256, 128
	d := []float32{-4, -3, -2, -1, 0, 1, 2, 3, 4}
	fk := &fakeTimesFM{h: h, d: d, slope: 0.5}
	row := nanRow(l, 3, 4, 5)
	res, err := TimesFM{}.Forecast(context.Background(), tfmMeta(l, h), fk.forward, [][]float32{row}, 300)
	if err != nil {
		t.Fatal(err)
	}
	if len(fk.calls) != 3 {
		t.Fatalf("%d forwards for horizon 300 with passes of 128, want 3", len(fk.calls))
	}
	for c, sign := range []float32{1, -1} {
		prev := fk.calls[0][c]
		for p := 1; p < 3; p++ {
			got := fk.calls[p][c]
			last := lastFinite(prev)
			want := append(slices.Clone(prev[h:]), make([]float32, h)...)
			for s := range h {
				want[l-h+s] = last + float32(s)*0.5 // the fake's median
			}
			if !slices.EqualFunc(got, want, func(a, b float32) bool {
				return a == b || math.IsNaN(float64(a)) && math.IsNaN(float64(b))
			}) {
				t.Fatalf("chain %v pass %d: row is not the previous row's newest %d points and its median", sign, p, l-h)
			}
			prev = got
		}
	}
	for k := range 9 {
		if len(res[0][k]) != 300 {
			t.Fatalf("q%d has %d steps, want 300", k, len(res[0][k]))
		}
	}
	// Both chains drift by the slope and feed back: step 128 + s of the
	// positive chain is 5 + 63.5 + d + 0.5 s, of the negated -5 + 63.5 + d +
	// 0.5 s; the flip average is 5 + d[k] at every step.
	for k := range 9 {
		for s, got := range res[0][k] {
			if want := 5 + d[k]; got != want {
				t.Fatalf("q%d step %d = %v, want %v", k, s, got, want)
			}
		}
	}
}

func TestTimesFMErrors(t *testing.T) {
	fk := &fakeTimesFM{h: 64, d: make([]float32, 9)}
	rows := [][]float32{nanRow(64, 1)}
	_, err := TimesFM{}.Forecast(context.Background(), tfmMeta(64, 64), fk.forward, rows, 65)
	if err == nil || !strings.Contains(err.Error(), "--horizon 128") {
		t.Fatalf("horizon beyond a 64-step file: %v, want advice to export --horizon 128", err)
	}
	md := tfmMeta(64, 64)
	md.Quantiles = []float64{0.1, 0.5, 0.8}
	if _, err := (TimesFM{}).Forecast(context.Background(), md, fk.forward, rows, 10); err == nil || !strings.Contains(err.Error(), "symmetric") {
		t.Fatalf("asymmetric levels: %v", err)
	}
	md.Quantiles = []float64{0.1, 0.9}
	if _, err := (TimesFM{}).Forecast(context.Background(), md, fk.forward, rows, 10); err == nil || !strings.Contains(err.Error(), "odd number") {
		t.Fatalf("even levels: %v", err)
	}
	boom := errors.New("boom")
	fail := func(context.Context, [][]float32) ([][]float32, error) { return nil, boom }
	if _, err := (TimesFM{}).Forecast(context.Background(), tfmMeta(64, 64), fail, rows, 10); !errors.Is(err, boom) {
		t.Fatalf("forward error: %v", err)
	}
}
