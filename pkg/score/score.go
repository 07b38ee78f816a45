// Package score computes anomaly scores from an observation and its
// predictive quantiles.
package score

import "math"

// MaxScore caps every score, so that a zero-width band or a huge deviation
// still gives a finite value that remote-write and /metrics can carry.
const MaxScore = 1e6

// Directions a pipeline can score in.
const (
	Both  = "both"
	Above = "above"
	Below = "below"
)

// Score is the anomaly score of an observation y against a forecast with
// median m and band edges lo ≤ m ≤ hi:
//
//	(y − m) / max(hi − m, d)   when y ≥ m
//	(m − y) / max(m − lo, d)   when y < m
//	d = max(minDeviation, 1e-9·max(1, |m|))
//
// It is 0 at the median, 1 on the band edge, linear on each side, and capped
// at MaxScore. With direction Above, points below the median score 0; with
// Below, points above it do; any other direction (Both, "") scores both
// sides.
//
// Score never returns NaN or ±Inf. When y or m is NaN or ±Inf there is
// nothing meaningful to compare, and it returns 0. A NaN band edge, or one
// on the wrong side of the median, falls back to d as that side's
// half-width; an infinite band edge makes every finite y on that side score
// 0. A NaN or negative minDeviation counts as 0.
func Score(y, median, lo, hi, minDeviation float64, direction string) float64 {
	if !finite(y) || !finite(median) {
		return 0
	}
	d := 1e-9 * math.Max(1, math.Abs(median))
	// math.Max would propagate a NaN minDeviation; the comparison ignores it.
	if minDeviation > d {
		d = minDeviation
	}
	var dev, width float64
	if y >= median {
		if direction == Below {
			return 0
		}
		dev, width = y-median, hi-median
	} else {
		if direction == Above {
			return 0
		}
		dev, width = median-y, median-lo
	}
	// !(width > d) also catches a NaN width.
	if !(width > d) {
		width = d
	}
	// dev can overflow to +Inf for y and m of opposite signs near
	// MaxFloat64; the cap below turns that into MaxScore.
	s := dev / width
	if math.IsNaN(s) {
		// Inf/Inf: an infinite deviation against an infinite band.
		return 0
	}
	return math.Min(s, MaxScore)
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
