package report

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// tick is one axis tick: its value (a number or milliseconds) and its
// label; a time tick may have a second label line (the date or year when it
// changes).
type tick struct {
	v      float64
	label  string
	label2 string
}

// niceTicks returns about n ticks at 1, 2 or 5 times a power of ten
// inside [lo, hi], and the range itself (widened when empty). The range is
// not rounded out to whole ticks: that can waste half the panel.
func niceTicks(lo, hi float64, n int) (ticks []tick, first, last float64) {
	if !(hi > lo) {
		d := math.Max(math.Abs(lo)*0.1, 1)
		lo, hi = lo-d, hi+d
	}
	// step ≤ 1.43·(hi−lo)/n, so at least n/1.43−1 ticks fall inside.
	step := niceStep((hi - lo) / float64(n))
	// Ticks are k·step for integer k, not an accumulated sum, so that 0.1
	// steps do not drift into 0.30000000000000004.
	k0, k1 := math.Ceil(lo/step-1e-9), math.Floor(hi/step+1e-9)
	unit, suffix := compactUnit(math.Max(math.Abs(k0*step), math.Abs(k1*step)))
	for k := k0; k <= k1; k++ {
		ticks = append(ticks, tick{v: k * step, label: compactTick(k*step, step, unit, suffix)})
	}
	return ticks, lo, hi
}

// niceStep rounds raw to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if !(raw > 0) || math.IsInf(raw, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	// Round to the nearest of 1, 2, 5 and 10 on a log scale, so the
	// count of ticks stays within about n·⅔ and n·1.5.
	switch norm := raw / mag; {
	case norm < 1.5:
		return mag
	case norm < 3:
		return 2 * mag
	case norm < 7:
		return 5 * mag
	default:
		return 10 * mag
	}
}

// compactUnit picks the SI-style suffix under which max reads as a short
// number.
func compactUnit(max float64) (float64, string) {
	switch {
	case max >= 1e12:
		return 1e12, "T"
	case max >= 1e9:
		return 1e9, "G"
	case max >= 1e6:
		return 1e6, "M"
	case max >= 1e3:
		return 1e3, "k"
	}
	return 1, ""
}

// compactTick formats an axis value with as many decimals as its step
// needs: 1.5k, 250, 0.05.
func compactTick(v, step, unit float64, suffix string) string {
	if math.Abs(v) < step/2 {
		return "0"
	}
	dec := int(math.Ceil(-math.Log10(step/unit) - 1e-9))
	dec = min(max(dec, 0), 9)
	return strconv.FormatFloat(v/unit, 'f', dec, 64) + suffix
}

// compactNumber formats a number for a metrics line or a table cell: three
// significant digits, k/M/G/T above a thousand, "–" for NaN.
func compactNumber(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.IsInf(v, 1):
		return "∞"
	case math.IsInf(v, -1):
		return "−∞"
	}
	unit, suffix := compactUnit(math.Abs(v))
	if unit == 1 && v == math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	s := strconv.FormatFloat(v/unit, 'g', 3, 64)
	if strings.ContainsRune(s, 'e') && unit > 1 {
		// 'g' switches to an exponent at 1000 of a unit (999.7k rounds up).
		s = strconv.FormatFloat(v/unit, 'f', 0, 64)
	}
	return s + suffix
}

// tableNumber formats a summary cell: integers as integers, other values
// with four significant digits (a NAB score of 54.62, a MASE of 0.8312).
func tableNumber(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return compactNumber(v)
	}
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	if math.Abs(v) >= 1000 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// timeSteps are the candidate spacings of time ticks below a month.
var timeSteps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour,
}

// timeTicks returns UTC ticks for [t0, t1] (milliseconds) at the smallest
// round spacing that leaves minPx of width pixels between labels.
func timeTicks(t0, t1 int64, width, minPx float64) []tick {
	span := float64(t1 - t0)
	if span <= 0 {
		return nil
	}
	minStep := span * minPx / width
	for _, d := range timeSteps {
		if float64(d.Milliseconds()) >= minStep {
			return fixedTimeTicks(t0, t1, d)
		}
	}
	months := 1
	for _, m := range []int{1, 2, 3, 6, 12, 24, 60, 120} {
		months = m
		if float64(m)*30.44*24*3600e3 >= minStep {
			break
		}
	}
	return monthTicks(t0, t1, months)
}

// fixedTimeTicks places ticks at multiples of d since the epoch (weeks
// start on Monday), labelled with the time of day and, where the day
// changes, the date.
func fixedTimeTicks(t0, t1 int64, d time.Duration) []tick {
	step := d.Milliseconds()
	var offset int64
	if d%(7*24*time.Hour) == 0 {
		offset = 4 * 24 * 3600e3 // 1970-01-05 was a Monday.
	}
	// Floor division (Go's / truncates toward zero, wrong before 1970).
	q := (t0 - offset) / step
	if (t0-offset)%step < 0 {
		q--
	}
	first := q*step + offset
	if first < t0 {
		first += step
	}
	var ticks []tick
	prevDay, prevYear := "", -1
	for t := first; t <= t1; t += step {
		tm := time.UnixMilli(t).UTC()
		var tk tick
		tk.v = float64(t)
		day := tm.Format("Jan 2")
		switch {
		case d < time.Minute:
			tk.label = tm.Format("15:04:05")
		case d < 24*time.Hour:
			tk.label = tm.Format("15:04")
		default:
			tk.label = day
		}
		if d < 24*time.Hour {
			if day != prevDay {
				tk.label2 = day
			}
		} else if tm.Year() != prevYear {
			tk.label2 = strconv.Itoa(tm.Year())
		}
		prevDay, prevYear = day, tm.Year()
		ticks = append(ticks, tk)
	}
	return ticks
}

// monthTicks places ticks on the first of every months-th month (UTC).
func monthTicks(t0, t1 int64, months int) []tick {
	start := time.UnixMilli(t0).UTC()
	m := time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, time.UTC)
	if m.UnixMilli() < t0 {
		m = m.AddDate(0, 1, 0)
	}
	for (int(m.Month())-1)%months != 0 {
		m = m.AddDate(0, 1, 0)
	}
	var ticks []tick
	prevYear := -1
	for ; m.UnixMilli() <= t1; m = m.AddDate(0, months, 0) {
		tk := tick{v: float64(m.UnixMilli()), label: m.Format("Jan")}
		if months >= 12 {
			tk.label = strconv.Itoa(m.Year())
		} else if m.Year() != prevYear {
			tk.label2 = strconv.Itoa(m.Year())
		}
		prevYear = m.Year()
		ticks = append(ticks, tk)
	}
	return ticks
}
