package report

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestNiceTicks(t *testing.T) {
	cases := []struct {
		lo, hi float64
		want   string // the labels, space-separated
	}{
		{0, 100, "0 20 40 60 80 100"},
		{-47, 212, "0 50 100 150 200"},
		{0.1, 0.35, "0.10 0.15 0.20 0.25 0.30 0.35"},
		{0, 25000, "0 5k 10k 15k 20k 25k"},
		{1.2e6, 3.5e6, "1.5M 2.0M 2.5M 3.0M 3.5M"},
		{-0.003, 0.004, "-0.003 -0.002 -0.001 0 0.001 0.002 0.003 0.004"},
		{7, 7, "6.0 6.5 7.0 7.5 8.0"}, // an empty range widens around the value
		{0, 1.3, "0 0.2 0.4 0.6 0.8 1.0 1.2"},
	}
	for _, c := range cases {
		ticks, lo, hi := niceTicks(c.lo, c.hi, 5)
		var labels []string
		for _, tk := range ticks {
			labels = append(labels, tk.label)
			if tk.v < lo-1e-12 || tk.v > hi+1e-12 {
				t.Errorf("niceTicks(%v, %v): tick %v outside [%v, %v]", c.lo, c.hi, tk.v, lo, hi)
			}
		}
		if got := strings.Join(labels, " "); got != c.want {
			t.Errorf("niceTicks(%v, %v) = %q, want %q", c.lo, c.hi, got, c.want)
		}
	}
}

func TestCompactNumber(t *testing.T) {
	cases := []struct {
		v    float64
		want string
	}{
		{0, "0"}, {5, "5"}, {-12, "-12"}, {0.8312, "0.831"}, {54.62, "54.6"},
		{1234, "1.23k"}, {3.4e6, "3.4M"}, {999.7e3, "1000k"}, {2.5e9, "2.5G"}, {7e12, "7T"},
		{1.5e-5, "1.5e-05"}, {math.NaN(), "–"}, {math.Inf(1), "∞"},
	}
	for _, c := range cases {
		if got := compactNumber(c.v); got != c.want {
			t.Errorf("compactNumber(%v) = %q, want %q", c.v, got, c.want)
		}
	}
	if got := tableNumber(54.6231); got != "54.62" {
		t.Errorf("tableNumber(54.6231) = %q", got)
	}
	if got := tableNumber(22695); got != "22695" {
		t.Errorf("tableNumber(22695) = %q", got)
	}
}

// TestTimeTicks checks, over spans from a minute to a decade, that labels
// never crowd (each gap at least the minimum, months allowed their
// shorter Februaries), sit inside the range on round UTC times, and that
// no two neighbours read the same.
func TestTimeTicks(t *testing.T) {
	starts := []time.Time{
		time.Date(2014, 2, 14, 14, 27, 13, 0, time.UTC),
		time.Date(1969, 12, 25, 3, 0, 0, 0, time.UTC), // before the epoch: floor division
	}
	spans := []time.Duration{
		time.Minute, 10 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour, 3 * 24 * time.Hour,
		14 * 24 * time.Hour, 79 * 24 * time.Hour, 200 * 24 * time.Hour, 3 * 365 * 24 * time.Hour, 10 * 365 * 24 * time.Hour,
	}
	for _, start := range starts {
		for _, span := range spans {
			t0, t1 := start.UnixMilli(), start.Add(span).UnixMilli()
			ticks := timeTicks(t0, t1, plotW, minTickPx)
			if len(ticks) < 2 {
				t.Errorf("%v from %v: %d ticks", span, start, len(ticks))
				continue
			}
			pxPerMs := plotW / float64(t1-t0)
			for i, tk := range ticks {
				if tk.v < float64(t0) || tk.v > float64(t1) {
					t.Errorf("%v: tick %v outside the range", span, tk.v)
				}
				tm := time.UnixMilli(int64(tk.v)).UTC()
				if tm.Second() != 0 && span > 10*time.Minute {
					t.Errorf("%v: tick at %v is not on a round time", span, tm)
				}
				if tk.label == "" {
					t.Errorf("%v: empty label at %v", span, tm)
				}
				if i == 0 {
					if tk.label2 == "" && span >= 24*time.Hour && len(tk.label) != 4 { // a year labels itself
						t.Errorf("%v: first tick %q lacks its date or year line", span, tk.label)
					}
					continue
				}
				prev := ticks[i-1]
				if gap := (tk.v - prev.v) * pxPerMs; gap < 0.9*minTickPx {
					t.Errorf("%v: ticks %q and %q only %.0f px apart", span, prev.label, tk.label, gap)
				}
				if tk.label == prev.label && tk.label2 == prev.label2 {
					t.Errorf("%v: two neighbouring ticks read %q", span, tk.label)
				}
			}
		}
	}
}
