package series

import (
	"math"
	"testing"

	"github.com/prometheus/prometheus/model/value"

	"github.com/openanomaly/openanomaly/pkg/datasource"
)

var (
	nan   = math.NaN()
	stale = math.Float64frombits(value.StaleNaN)
)

// sameFloats compares exactly, NaN by bits-class: a NaN expectation matches
// any NaN (Align never returns stale markers, FillGaps leaves NaN as given).
func sameFloats(t *testing.T, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("len = %d, want %d (got %v)", len(got), len(want), got)
	}
	for i := range want {
		if math.IsNaN(want[i]) {
			if !math.IsNaN(got[i]) {
				t.Fatalf("[%d] = %v, want NaN (got %v)", i, got[i], got)
			}
			continue
		}
		// Interpolated values may differ in the last bit; 1e-12 relative.
		if d := math.Abs(got[i] - want[i]); d > 1e-12*math.Max(1, math.Abs(want[i])) {
			t.Fatalf("[%d] = %v, want %v (got %v)", i, got[i], want[i], got)
		}
	}
}

func TestAlign(t *testing.T) {
	s := func(ts int64, v float64) datasource.Sample { return datasource.Sample{T: ts, V: v} }
	cases := []struct {
		name    string
		samples []datasource.Sample
		start   int64
		step    int64
		n       int
		want    []float64
		dropped Dropped
	}{
		{
			name:    "on grid",
			samples: []datasource.Sample{s(1000, 1), s(2000, 2), s(3000, 3)},
			start:   1000, step: 1000, n: 3,
			want: []float64{1, 2, 3},
		},
		{
			name:    "missing points are NaN",
			samples: []datasource.Sample{s(1000, 1), s(3000, 3)},
			start:   1000, step: 1000, n: 4,
			want: []float64{1, nan, 3, nan},
		},
		{
			name: "raw samples take the newest at or before each point",
			// 15s scrapes on a 60s grid: grid point 60000 takes 60000,
			// 120000 takes 105000 (120000 missing), 180000 takes 165000.
			samples: []datasource.Sample{
				s(15000, 1), s(30000, 2), s(45000, 3), s(60000, 4),
				s(75000, 5), s(90000, 6), s(105000, 7),
				s(135000, 8), s(150000, 9), s(165000, 10),
			},
			start: 60000, step: 60000, n: 3,
			want: []float64{4, 7, 10},
		},
		{
			name: "first point looks back one step only",
			// 0 is exactly start-step: belongs to the previous grid point.
			samples: []datasource.Sample{s(0, 1), s(1, 2)},
			start:   1000, step: 1000, n: 1,
			want: []float64{2},
		},
		{
			name:    "samples after the grid are ignored",
			samples: []datasource.Sample{s(1000, 1), s(2001, 2)},
			start:   1000, step: 1000, n: 2,
			want: []float64{1, nan},
		},
		{
			name:    "NaN and Inf are dropped, older sample stands",
			samples: []datasource.Sample{s(1500, 1), s(2000, nan), s(2500, 2), s(3000, math.Inf(1)), s(4000, math.Inf(-1))},
			start:   2000, step: 1000, n: 3,
			want:    []float64{1, 2, nan},
			dropped: Dropped{NaN: 1, Inf: 2},
		},
		{
			name:    "stale marker ends the series at its point",
			samples: []datasource.Sample{s(1000, 1), s(1500, 2), s(2000, stale), s(3000, 3)},
			start:   1000, step: 1000, n: 3,
			want:    []float64{1, nan, 3},
			dropped: Dropped{Stale: 1},
		},
		{
			name:    "sample after a stale marker in the same interval brings it back",
			samples: []datasource.Sample{s(1500, stale), s(1800, 5)},
			start:   1000, step: 1000, n: 2,
			want:    []float64{nan, 5},
			dropped: Dropped{Stale: 1},
		},
		{
			name:    "invalid samples outside the grid are not counted",
			samples: []datasource.Sample{s(0, stale), s(500, nan), s(9000, math.Inf(1))},
			start:   1000, step: 1000, n: 2,
			want:    []float64{nan, nan},
			dropped: Dropped{NaN: 1},
		},
		{
			name:    "negative timestamps",
			samples: []datasource.Sample{s(-2500, 1), s(-1000, 2)},
			start:   -2000, step: 1000, n: 2,
			want: []float64{1, 2},
		},
		{
			name:  "empty",
			start: 0, step: 1000, n: 2,
			want: []float64{nan, nan},
		},
		{
			name:    "zero points",
			samples: []datasource.Sample{s(0, 1)},
			start:   0, step: 1000, n: 0,
			want: []float64{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, dropped := Align(tc.samples, tc.start, tc.step, tc.n)
			sameFloats(t, got, tc.want)
			if dropped != tc.dropped {
				t.Errorf("dropped = %+v, want %+v", dropped, tc.dropped)
			}
			for i, v := range got {
				if value.IsStaleNaN(v) {
					t.Errorf("[%d] is a stale marker; Align must not pass them on", i)
				}
			}
		})
	}
}

func TestAlignPanicsOnBadStep(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic for step 0")
		}
	}()
	Align(nil, 0, 0, 3)
}

func TestFillGaps(t *testing.T) {
	big := math.MaxFloat64
	cases := []struct {
		name   string
		in     []float64
		maxGap int
		want   []float64
		filled int
	}{
		{"no gaps", []float64{1, 2, 3}, 3, []float64{1, 2, 3}, 0},
		{"one", []float64{1, nan, 3}, 1, []float64{1, 2, 3}, 1},
		{"run of two", []float64{0, nan, nan, 3}, 2, []float64{0, 1, 2, 3}, 2},
		{"run too long", []float64{0, nan, nan, 3}, 1, []float64{0, nan, nan, 3}, 0},
		{"leading and trailing kept", []float64{nan, 1, nan, 3, nan}, 5, []float64{nan, 1, 2, 3, nan}, 1},
		{"mixed runs", []float64{0, nan, 2, nan, nan, nan, 6, nan, 8}, 2, []float64{0, 1, 2, nan, nan, nan, 6, 7, 8}, 2},
		{"inf is missing too", []float64{1, math.Inf(1), 3}, 1, []float64{1, 2, 3}, 1},
		{"stale marker", []float64{1, stale, 3}, 1, []float64{1, 2, 3}, 1},
		{"maxGap zero", []float64{1, nan, 3}, 0, []float64{1, nan, 3}, 0},
		{"no overflow", []float64{-big, nan, big}, 1, []float64{-big, 0, big}, 1},
		{"all NaN", []float64{nan, nan}, 5, []float64{nan, nan}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := append([]float64(nil), tc.in...)
			filled := FillGaps(v, tc.maxGap)
			if filled != tc.filled {
				t.Errorf("filled = %d, want %d", filled, tc.filled)
			}
			sameFloats(t, v, tc.want)
		})
	}
}

func TestFiniteAndTrim(t *testing.T) {
	cases := []struct {
		in      []float64
		finite  int
		trimmed int // length after TrimLeadingNaN
	}{
		{nil, 0, 0},
		{[]float64{nan, nan}, 0, 0},
		{[]float64{nan, stale, 1, nan, 2}, 2, 3},
		{[]float64{math.Inf(1), nan, 1}, 1, 3},
		{[]float64{1, 2, 3}, 3, 3},
	}
	for i, tc := range cases {
		if got := Finite(tc.in); got != tc.finite {
			t.Errorf("case %d: Finite = %d, want %d", i, got, tc.finite)
		}
		tr := TrimLeadingNaN(tc.in)
		if len(tr) != tc.trimmed {
			t.Errorf("case %d: len(TrimLeadingNaN) = %d, want %d", i, len(tr), tc.trimmed)
		}
		if len(tr) > 0 && math.IsNaN(tr[0]) {
			t.Errorf("case %d: trimmed slice starts with NaN", i)
		}
	}
}
