// Package series holds pure functions on sample slices: aligning raw samples
// to a step grid, gap handling, and dropping values a model must not see.
package series

import (
	"math"

	"github.com/prometheus/prometheus/model/value"

	"github.com/openanomaly/openanomaly/pkg/datasource"
)

// Dropped counts the samples Align left out, by reason.
type Dropped struct {
	// Stale counts Prometheus stale markers.
	Stale int
	// NaN counts NaN values that are not stale markers.
	NaN int
	// Inf counts +Inf and -Inf values.
	Inf int
}

// Total is the number of samples dropped for any reason.
func (d Dropped) Total() int { return d.Stale + d.NaN + d.Inf }

// Align puts samples on the grid start, start+step, ..., start+(n-1)*step
// (milliseconds). Grid point i takes the newest sample with a timestamp in
// (start+(i-1)*step, start+i*step]: the newest sample at or before it and
// after the previous grid point. Results of query_range are already on the
// grid; raw remote-read samples are not, and are down-sampled this way.
// Grid points without a sample are NaN.
//
// Stale markers, NaN and ±Inf are dropped and counted in Dropped; only
// samples inside the grid's range are looked at and counted. A stale marker
// says the series ended, so it also makes its grid point NaN even when an
// older sample falls in the same interval; a newer sample after the marker
// in that interval brings the series back. NaN and ±Inf samples are simply
// skipped, so an older finite sample of the same interval still counts.
//
// samples must be in ascending timestamp order, as the datasource returns
// them. Align panics if step is not positive and n is.
func Align(samples []datasource.Sample, start, step int64, n int) (values []float64, dropped Dropped) {
	if n <= 0 {
		return nil, Dropped{}
	}
	if step <= 0 {
		panic("series: Align with non-positive step")
	}
	values = make([]float64, n)
	for i := range values {
		values[i] = math.NaN()
	}
	// lo is exclusive, hi inclusive: the range of timestamps any grid
	// point can take.
	lo := start - step
	hi := start + int64(n-1)*step
	for _, s := range samples {
		if s.T <= lo || s.T > hi {
			continue
		}
		// Index of the first grid point at or after s.T (ceiling division;
		// s.T > start-step keeps the numerator above -step).
		d := s.T - start
		i := 0
		if d > 0 {
			i = int((d + step - 1) / step)
		}
		switch {
		case value.IsStaleNaN(s.V):
			dropped.Stale++
			values[i] = math.NaN()
		case math.IsNaN(s.V):
			dropped.NaN++
		case math.IsInf(s.V, 0):
			dropped.Inf++
		default:
			// Samples are ascending, so the last write per interval is the
			// newest sample in it.
			values[i] = s.V
		}
	}
	return values, dropped
}

// FillGaps linearly interpolates, in place, every run of missing values (NaN,
// and ±Inf, which no model can use either) that has a finite value on both
// sides and is at most maxGap long. Leading and
// trailing runs are left alone: there is nothing to interpolate towards.
// It returns how many values it filled.
func FillGaps(v []float64, maxGap int) (filled int) {
	if maxGap <= 0 {
		return 0
	}
	prev := -1 // index of the last finite value seen
	for i := 0; i < len(v); i++ {
		if !isFinite(v[i]) {
			continue
		}
		gap := i - prev - 1
		if prev >= 0 && gap > 0 && gap <= maxGap {
			a, b := v[prev], v[i]
			for k := 1; k <= gap; k++ {
				// Interpolate as a weighted mean rather than a+k*(b-a)/n, so
				// that b-a cannot overflow for values near ±MaxFloat64.
				w := float64(k) / float64(gap+1)
				v[prev+k] = a*(1-w) + b*w
			}
			filled += gap
		}
		prev = i
	}
	return filled
}

// Finite counts the values that are neither NaN nor ±Inf.
func Finite(v []float64) int {
	n := 0
	for _, x := range v {
		if isFinite(x) {
			n++
		}
	}
	return n
}

// TrimLeadingNaN returns v without its leading NaN values (stale markers
// included). The result shares v's backing array; it is empty when v holds
// only NaN.
func TrimLeadingNaN(v []float64) []float64 {
	for i, x := range v {
		if !math.IsNaN(x) {
			return v[i:]
		}
	}
	return v[len(v):]
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
