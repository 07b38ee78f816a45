package pipeline

import "math"

// noveltyBuckets is how many buckets a novelty window is cut into: the
// window's maximum is kept per bucket, so a series costs at most
// noveltyBuckets+1 entries whatever its step, and the window's edge is
// exact to 1/noveltyBuckets of its length (an old score counts for up to
// one bucket longer, never shorter).
const noveltyBuckets = 32

// scoreMax remembers one series' highest scores over a sliding window, as
// the maxima of time buckets.
type scoreMax struct {
	start []int64 // bucket start times (ms), ascending
	max   []float64
}

// before returns the highest score recorded in the window before t (ms).
func (m *scoreMax) before(t, window int64) float64 {
	width := max(1, window/noveltyBuckets)
	best := 0.0
	for i, s := range m.start {
		if s+width > t-window && s < t {
			best = math.Max(best, m.max[i])
		}
	}
	return best
}

// add records score v at t and drops buckets that left the window.
func (m *scoreMax) add(t, window int64, v float64) {
	width := max(1, window/noveltyBuckets)
	b := t - ((t%width)+width)%width
	n := len(m.start)
	switch {
	case n > 0 && m.start[n-1] == b:
		m.max[n-1] = math.Max(m.max[n-1], v)
	case n == 0 || m.start[n-1] < b:
		m.start = append(m.start, b)
		m.max = append(m.max, v)
	default:
		// Out of order (a replay of older points): fold into the newest
		// bucket, which keeps the maximum conservative.
		m.max[n-1] = math.Max(m.max[n-1], v)
	}
	drop := 0
	for drop < len(m.start) && m.start[drop]+width <= t-window {
		drop++
	}
	if drop > 0 {
		m.start = append(m.start[:0], m.start[drop:]...)
		m.max = append(m.max[:0], m.max[drop:]...)
	}
}

// newest returns the start of the newest bucket, or MinInt64.
func (m *scoreMax) newest() int64 {
	if len(m.start) == 0 {
		return math.MinInt64
	}
	return m.start[len(m.start)-1]
}

// novelty is a point's score relative to the series' past scores: raw
// divided by the window's highest earlier score, or by floor if higher.
// The raw score is then recorded.
func (m *scoreMax) novelty(t, window int64, raw, floor float64) float64 {
	d := math.Max(floor, m.before(t, window))
	m.add(t, window, raw)
	return raw / d
}
