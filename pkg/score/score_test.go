package score

import (
	"math"
	"testing"
)

func TestScore(t *testing.T) {
	nan := math.NaN()
	inf := math.Inf(1)
	big := math.MaxFloat64
	cases := []struct {
		name                 string
		y, m, lo, hi, minDev float64
		dir                  string
		want                 float64
	}{
		{"at median", 10, 10, 8, 14, 0, Both, 0},
		{"upper edge", 14, 10, 8, 14, 0, Both, 1},
		{"lower edge", 8, 10, 8, 14, 0, Both, 1},
		{"halfway up", 12, 10, 8, 14, 0, Both, 0.5},
		{"halfway down", 9, 10, 8, 14, 0, Both, 0.5},
		{"twice above", 18, 10, 8, 14, 0, Both, 2},
		{"twice below", 6, 10, 8, 14, 0, Both, 2},
		{"empty direction is both", 6, 10, 8, 14, 0, "", 2},
		{"above ignores below", 6, 10, 8, 14, 0, Above, 0},
		{"above scores above", 18, 10, 8, 14, 0, Above, 2},
		{"below ignores above", 18, 10, 8, 14, 0, Below, 0},
		{"below scores below", 6, 10, 8, 14, 0, Below, 2},
		{"min deviation floors the half-width", 13, 10, 9, 11, 3, Both, 1},
		{"min deviation below the half-width has no effect", 14, 10, 8, 14, 1, Both, 1},
		// Zero-width band: d = 1e-9·max(1,|m|) = 1e-8 for m = 10.
		{"zero-width band", 10 + 1e-8, 10, 10, 10, 0, Both, 1},
		{"zero-width band, small median", 1e-9, 0, 0, 0, 0, Both, 1},
		{"zero-width band capped", 11, 10, 10, 10, 0, Both, MaxScore},
		{"cap", 1e12, 0, -1, 1, 0, Both, MaxScore},
		{"overflowing deviation capped", big, -big, -big, -big / 2, 0, Both, MaxScore},
		{"huge deviation, tiny band", big, -big, -big, -big, 0, Both, MaxScore},
		{"band edge on the wrong side falls back to d", 10 + 2e-8, 10, 8, 9, 0, Both, 2},
		{"NaN y", nan, 10, 8, 14, 0, Both, 0},
		{"NaN median", 10, nan, 8, 14, 0, Both, 0},
		{"Inf y", inf, 10, 8, 14, 0, Both, 0},
		{"NaN upper edge falls back to d", 10 + 3e-8, 10, 8, nan, 0, Both, 3},
		{"NaN lower edge, y above", 12, 10, nan, 14, 0, Both, 0.5},
		{"infinite upper edge", 1e300, 10, 8, inf, 0, Both, 0},
		{"NaN min deviation", 14, 10, 8, 14, nan, Both, 1},
		{"negative min deviation", 14, 10, 8, 14, -5, Both, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Score(tc.y, tc.m, tc.lo, tc.hi, tc.minDev, tc.dir)
			if math.IsNaN(got) || math.IsInf(got, 0) || got < 0 {
				t.Fatalf("Score = %v, want finite and >= 0", got)
			}
			want := tc.want
			// Scores are ratios of exact decimal inputs: 1e-6 relative.
			if math.Abs(got-want) > 1e-6*math.Max(1, want) {
				t.Errorf("Score = %v, want %v", got, want)
			}
		})
	}
}
