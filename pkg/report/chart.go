package report

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The chart's geometry in SVG user units; the SVG scales to the page width
// through its viewBox, so these are pixels at a 1000 px wide chart.
const (
	chartW     = 1000
	padL       = 56
	padR       = 24
	plotW      = chartW - padL - padR
	mainTop    = 8
	mainH      = 230
	mainBottom = mainTop + mainH
	scoreTop   = mainBottom + 14
	scoreH     = 80
	scoreBot   = scoreTop + scoreH
	chartH     = scoreBot + 34
	// buckets is the number of columns a series is reduced to: one per
	// pixel of the plot at its design width.
	buckets = plotW
	// minTickPx keeps two-line time labels ("15:00" over "Dec 4") apart.
	minTickPx = 92
)

// chartSVG draws s as an inline SVG: the value panel (band, median,
// actual, detections) over the score panel (score, threshold), windows
// shaded on both. It contains no user data (titles and labels are in the
// surrounding HTML), so it needs no escaping; numbers only. The bool says
// whether the band was clipped to keep the actual values readable.
func chartSVG(s *Series, id string) (string, bool) {
	ts, cols := sortedColumns(s)
	t0, t1 := ts[0], ts[len(ts)-1]
	if t0 == t1 {
		// One timestamp: show an hour around it rather than divide by 0.
		t0, t1 = t0-1800e3, t1+1800e3
	}
	xs := func(t float64) float64 { return padL + (t-float64(t0))/float64(t1-t0)*plotW }

	actual, median, lower, upper, score := cols[0], cols[1], cols[2], cols[3], cols[4]
	lo, hi, clipped := valueRange(actual, median, lower, upper)
	yTicks, ylo, yhi := niceTicks(lo, hi, 5)
	yv := func(v float64) float64 { return mainBottom - (v-ylo)/(yhi-ylo)*mainH }

	smax := finiteMax(score)
	th := s.Threshold
	if !math.IsNaN(th) && !math.IsInf(th, 0) && th > 0 {
		// A score of 50 would flatten a threshold of 1 into the axis; cap
		// the panel at 4× the threshold, clipping the tallest peaks.
		smax = math.Min(math.Max(smax, th*1.25), th*4)
		if math.IsNaN(smax) {
			smax = th * 1.25
		}
	}
	smin := nanMin(0, finiteMin(score))
	if math.IsNaN(smin) {
		smin = 0
	}
	if math.IsNaN(smax) || smax <= smin {
		smax = smin + 1
	}
	smax += (smax - smin) * 0.05
	sTicks, slo, shi := niceTicks(smin, smax, 3)
	ys := func(v float64) float64 { return scoreBot - (v-slo)/(shi-slo)*scoreH }

	var b strings.Builder
	b.Grow(64 << 10)
	b.WriteString(`<svg class="chart" viewBox="0 0 ` + itoa(chartW) + ` ` + itoa(chartH) + `" role="img">`)
	// Each chart's clip paths need ids unique in the page.
	b.WriteString(`<defs><clipPath id="` + id + `m"><rect x="` + itoa(padL) + `" y="` + itoa(mainTop) + `" width="` + itoa(plotW) + `" height="` + itoa(mainH) + `"/></clipPath>`)
	b.WriteString(`<clipPath id="` + id + `s"><rect x="` + itoa(padL) + `" y="` + itoa(scoreTop) + `" width="` + itoa(plotW) + `" height="` + itoa(scoreH) + `"/></clipPath></defs>`)

	// Labelled windows, behind everything.
	for _, w := range s.Windows {
		x0, x1 := math.Max(xs(float64(w.Start)), padL), math.Min(xs(float64(w.End)), padL+plotW)
		if x1 < padL || x0 > padL+plotW {
			continue
		}
		if x1-x0 < 2 {
			// Keep a window narrower than a pixel visible.
			x0, x1 = (x0+x1)/2-1, (x0+x1)/2+1
		}
		// The tooltip gives the window's exact range (dates only, no
		// user data).
		tip := `<title>labelled window ` + utcMinute(w.Start) + ` – ` + utcMinute(w.End) + ` UTC</title>`
		for _, p := range [][2]float64{{mainTop, mainH}, {scoreTop, scoreH}} {
			b.WriteString(`<rect class="win" x="` + fmt1(x0) + `" y="` + fmt1(p[0]) + `" width="` + fmt1(x1-x0) + `" height="` + fmt1(p[1]) + `">` + tip + `</rect>`)
		}
	}

	// Grid and axes.
	tTicks := timeTicks(t0, t1, plotW, minTickPx)
	var grid path
	for _, tk := range yTicks {
		grid.moveTo(padL, yv(tk.v))
		grid.raw("h" + itoa(plotW))
	}
	for _, tk := range sTicks {
		grid.moveTo(padL, ys(tk.v))
		grid.raw("h" + itoa(plotW))
	}
	for _, tk := range tTicks {
		x := xs(tk.v)
		grid.moveTo(x, mainTop)
		grid.raw("v" + itoa(mainH))
		grid.moveTo(x, scoreTop)
		grid.raw("v" + itoa(scoreH))
	}
	b.WriteString(`<path class="grid" d="` + grid.String() + `"/>`)
	b.WriteString(`<rect class="frame" x="` + itoa(padL) + `" y="` + itoa(mainTop) + `" width="` + itoa(plotW) + `" height="` + itoa(mainH) + `"/>`)
	b.WriteString(`<rect class="frame" x="` + itoa(padL) + `" y="` + itoa(scoreTop) + `" width="` + itoa(plotW) + `" height="` + itoa(scoreH) + `"/>`)

	b.WriteString(`<g class="ylab">`)
	for _, tk := range yTicks {
		b.WriteString(`<text x="` + itoa(padL-6) + `" y="` + fmt1(yv(tk.v)+3.5) + `">` + tk.label + `</text>`)
	}
	for _, tk := range sTicks {
		b.WriteString(`<text x="` + itoa(padL-6) + `" y="` + fmt1(ys(tk.v)+3.5) + `">` + tk.label + `</text>`)
	}
	b.WriteString(`</g><g class="xlab">`)
	for _, tk := range tTicks {
		x := xs(tk.v)
		if x < 28 || x > chartW-28 {
			continue
		}
		b.WriteString(`<text x="` + fmt1(x) + `" y="` + itoa(scoreBot+14) + `">` + tk.label)
		if tk.label2 != "" {
			b.WriteString(`<tspan class="date" x="` + fmt1(x) + `" dy="14">` + tk.label2 + `</tspan>`)
		}
		b.WriteString(`</text>`)
	}
	b.WriteString(`</g>`)

	// Value panel.
	b.WriteString(`<g clip-path="url(#` + id + `m)">`)
	if d := bandPath(ts, lower, upper, xs, yv); d != "" {
		b.WriteString(`<path class="band" d="` + d + `"/>`)
	}
	if l, d := linePath(ts, median, xs, yv, false); l != "" {
		writeLine(&b, "med", l, d)
	}
	if l, d := linePath(ts, actual, xs, yv, false); l != "" {
		writeLine(&b, "act", l, d)
	}
	dots, rug := detectionPaths(ts, actual, s.Detections, xs, yv, t0, t1)
	if dots != "" {
		b.WriteString(`<path class="det" d="` + dots + `"/>`)
	}
	b.WriteString(`</g>`)

	// Score panel.
	b.WriteString(`<g clip-path="url(#` + id + `s)">`)
	if l, d := linePath(ts, score, xs, ys, true); l != "" {
		writeLine(&b, "score", l, d)
	}
	if !math.IsNaN(th) && !math.IsInf(th, 0) {
		b.WriteString(`<path class="thr" d="M` + itoa(padL) + ` ` + fmt1(ys(th)) + `h` + itoa(plotW) + `"/>`)
	}
	if rug != "" {
		b.WriteString(`<path class="rug" d="` + rug + `"/>`)
	}
	b.WriteString(`</g>`)

	if !anyFinite(actual) && !anyFinite(median) && !anyFinite(lower) {
		b.WriteString(`<text class="empty" x="` + itoa(padL+plotW/2) + `" y="` + itoa(mainTop+mainH/2) + `">no values in this range</text>`)
	}
	b.WriteString(`</svg>`)
	return b.String(), clipped
}

// writeLine writes a line and its lone points, if any.
func writeLine(b *strings.Builder, class, line, dots string) {
	if line != "" {
		b.WriteString(`<path class="` + class + `" d="` + line + `"/>`)
	}
	if dots != "" {
		b.WriteString(`<path class="` + class + ` pt" d="` + dots + `"/>`)
	}
}

// sortedColumns returns the timestamps in increasing order and the value
// columns (actual, median, lower, upper, score) in the same order, each
// padded with NaN to the timestamps' length. The backtest already writes
// them sorted; sorting here only keeps a hand-made report from drawing
// zig-zags.
func sortedColumns(s *Series) ([]int64, [5][]float64) {
	n := len(s.Timestamps)
	src := [5]Floats{s.Actual, s.Median, s.Lower, s.Upper, s.Score}
	var cols [5][]float64
	for c := range cols {
		cols[c] = make([]float64, n)
		for i := range n {
			cols[c][i] = math.NaN()
			if i < len(src[c]) {
				cols[c][i] = src[c][i]
			}
		}
	}
	if sort.SliceIsSorted(s.Timestamps, func(i, j int) bool { return s.Timestamps[i] < s.Timestamps[j] }) {
		return s.Timestamps, cols
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(i, j int) bool { return s.Timestamps[idx[i]] < s.Timestamps[idx[j]] })
	ts := make([]int64, n)
	var out [5][]float64
	for c := range out {
		out[c] = make([]float64, n)
	}
	for k, i := range idx {
		ts[k] = s.Timestamps[i]
		for c := range out {
			out[c][k] = cols[c][i]
		}
	}
	return ts, out
}

// valueRange is the value panel's range: everything the actual and median
// values reach, and the band as far as half that span again beyond them,
// so that a forecast band that explodes early on does not squash the
// series into a flat line. clipped says whether the band was cut.
func valueRange(actual, median, lower, upper []float64) (lo, hi float64, clipped bool) {
	lo = nanMin(finiteMin(actual), finiteMin(median))
	hi = nanMax(finiteMax(actual), finiteMax(median))
	blo, bhi := finiteMin(lower), finiteMax(upper)
	if math.IsNaN(lo) {
		lo, hi = blo, bhi
	}
	if math.IsNaN(lo) {
		return 0, 1, false
	}
	span := hi - lo
	if span == 0 {
		span = math.Max(math.Abs(hi)*0.1, 1)
	}
	if !math.IsNaN(blo) {
		lo2 := math.Min(lo, math.Max(blo, lo-span/2))
		clipped = clipped || blo < lo2
		lo = lo2
	}
	if !math.IsNaN(bhi) {
		hi2 := math.Max(hi, math.Min(bhi, hi+span/2))
		clipped = clipped || bhi > hi2
		hi = hi2
	}
	pad := (hi - lo) * 0.04
	return lo - pad, hi + pad, clipped
}

// linePath draws vs against ts reduced to one column per pixel: each
// column contributes its minimum and maximum in the order they occur, so
// that a one-sample spike among 20,000 survives. A column whose samples are
// all NaN breaks the line; columns without samples do not (sparse series
// stay connected). With maxOnly a column gives its maximum alone: the
// score's upper envelope, which is all a reader needs of it and half the
// bytes.
func linePath(ts []int64, vs []float64, xs, ys func(float64) float64, maxOnly bool) (line, dots string) {
	var p, d path
	p.dots = &d
	t0, t1 := ts[0], ts[len(ts)-1]
	col := func(t int64) int {
		if t1 == t0 {
			return 0
		}
		return min(int(float64(t-t0)/float64(t1-t0)*buckets), buckets-1)
	}
	cur, imin, imax, n := -1, -1, -1, 0
	flush := func() {
		switch {
		case imin >= 0:
			a, c := imin, imax
			if c < a {
				a, c = c, a
			}
			// A column of many samples is drawn at its centre, which
			// makes every step one unit wide and the path short; a lone
			// sample stays at its exact time.
			x := colX(cur)
			if n == 1 {
				x = xs(float64(ts[a]))
			}
			if maxOnly {
				p.lineTo(x, clampY(ys(vs[imax])))
				break
			}
			p.lineTo(x, clampY(ys(vs[a])))
			if c != a {
				p.lineTo(x, clampY(ys(vs[c])))
			}
		case n > 0:
			p.penUp()
		}
		imin, imax, n = -1, -1, 0
	}
	for i, t := range ts {
		if c := col(t); c != cur {
			flush()
			cur = c
		}
		n++
		v := vs[i]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if imin < 0 || v < vs[imin] {
			imin = i
		}
		if imax < 0 || v > vs[imax] {
			imax = i
		}
	}
	flush()
	p.penUp()
	return p.String(), d.String()
}

// bandPath draws the band as filled areas, one per run of columns where
// both bounds are known: per column the lowest lower and the highest upper
// bound, so the band never looks narrower than it was.
func bandPath(ts []int64, lower, upper []float64, xs, ys func(float64) float64) string {
	type colBand struct{ x0, x1, lo, hi float64 }
	var runs [][]colBand
	var run []colBand
	t0, t1 := ts[0], ts[len(ts)-1]
	cur, n := -1, 0
	var c colBand
	valid := false
	flush := func() {
		switch {
		case valid:
			if n > 1 {
				// As in linePath: many samples, one point at the centre.
				c.x0, c.x1 = colX(cur), colX(cur)
			}
			run = append(run, c)
		case n > 0 && len(run) > 0:
			runs, run = append(runs, run), nil
		}
		valid, n = false, 0
	}
	for i, t := range ts {
		col := 0
		if t1 > t0 {
			col = min(int(float64(t-t0)/float64(t1-t0)*buckets), buckets-1)
		}
		if col != cur {
			flush()
			cur = col
		}
		n++
		lo, hi := lower[i], upper[i]
		if math.IsNaN(lo) || math.IsNaN(hi) || math.IsInf(lo, 0) || math.IsInf(hi, 0) {
			continue
		}
		x := xs(float64(t))
		if !valid {
			c = colBand{x, x, lo, hi}
			valid = true
			continue
		}
		c.x1, c.lo, c.hi = x, math.Min(c.lo, lo), math.Max(c.hi, hi)
	}
	flush()
	if len(run) > 0 {
		runs = append(runs, run)
	}
	var p path
	for _, r := range runs {
		if len(r) == 1 && r[0].x1-r[0].x0 < 1 {
			// A lone column would be an area without width.
			r[0].x0, r[0].x1 = r[0].x0-0.75, r[0].x1+0.75
		}
		for _, c := range r {
			p.lineTo(c.x0, clampY(ys(c.hi)))
			if c.x1-c.x0 >= 0.1 {
				p.lineTo(c.x1, clampY(ys(c.hi)))
			}
		}
		for i := len(r) - 1; i >= 0; i-- {
			c := r[i]
			if c.x1-c.x0 >= 0.1 {
				p.lineTo(c.x1, clampY(ys(c.lo)))
			}
			p.lineTo(c.x0, clampY(ys(c.lo)))
		}
		p.close()
	}
	return p.String()
}

// detectionPaths returns red dots on the actual value at each detection
// (one per pixel column) and ticks along the foot of the score panel.
func detectionPaths(ts []int64, actual []float64, det []int64, xs, ys func(float64) float64, t0, t1 int64) (dots, rug string) {
	var d, r path
	lastCol := math.MinInt
	sorted := append([]int64(nil), det...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	for _, t := range sorted {
		if t < t0 || t > t1 {
			continue
		}
		x := xs(float64(t))
		if c := int(math.Round(x)); c == lastCol {
			continue
		} else {
			lastCol = c
		}
		r.moveTo(x, scoreBot-10)
		r.raw("v10")
		// The actual value at (or just before) the detection.
		i := sort.Search(len(ts), func(i int) bool { return ts[i] > t }) - 1
		if i >= 0 && !math.IsNaN(actual[i]) && !math.IsInf(actual[i], 0) {
			d.moveTo(x, clampY(ys(actual[i])))
			d.raw("h0")
		}
	}
	return d.String(), r.String()
}

// utcMinute formats milliseconds as a UTC time to the minute.
func utcMinute(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04") }

// colX is the centre of pixel column c.
func colX(c int) float64 { return padL + (float64(c)+0.5)*plotW/buckets }

// clampY keeps far-off values near the plot, so that a value of 1e300
// does not make a coordinate the browser cannot draw; clip paths hide
// what lies outside anyway.
func clampY(y float64) float64 {
	return math.Max(-100, math.Min(chartH+100, y))
}

// path writes SVG path data compactly: absolute moves, relative line
// segments in tenths of a unit, no separators before a minus sign. Sizes
// matter: 58 charts of 20,000 points must stay a few megabytes.
type path struct {
	b       strings.Builder
	x, y    int // the pen, in tenths
	down    bool
	inLine  bool // the last command was l, so more pairs need no letter
	segment int  // points in the current subpath
	// dots, when set, receives each one-point subpath as a dot, since a
	// lone sample between gaps is invisible at the line's width.
	dots *path
}

func (p *path) moveTo(x, y float64) {
	p.penUp()
	p.x, p.y = tenths(x), tenths(y)
	p.b.WriteByte('M')
	p.num(p.x, false)
	p.num(p.y, true)
	p.down, p.inLine, p.segment = true, false, 1
}

func (p *path) lineTo(x, y float64) {
	if !p.down {
		p.moveTo(x, y)
		return
	}
	xi, yi := tenths(x), tenths(y)
	if xi == p.x && yi == p.y {
		return
	}
	if !p.inLine {
		p.b.WriteByte('l')
		p.num(xi-p.x, false)
	} else {
		p.num(xi-p.x, true)
	}
	p.num(yi-p.y, true)
	p.x, p.y, p.inLine = xi, yi, true
	p.segment++
}

// penUp ends the current subpath; a subpath of one point becomes a dot
// (the line's round caps draw a zero-length segment as one).
func (p *path) penUp() {
	if p.down && p.segment == 1 && !p.inLine {
		p.b.WriteString("h0")
		if p.dots != nil {
			p.dots.moveTo(float64(p.x)/10, float64(p.y)/10)
			p.dots.raw("h0")
		}
	}
	p.down, p.inLine, p.segment = false, false, 0
}

// raw appends a command that does not move the pen's end by tracked
// amounts (h/v from a moveTo); the next point starts a new subpath.
func (p *path) raw(cmd string) {
	p.b.WriteString(cmd)
	p.down, p.inLine, p.segment = false, false, 0
}

func (p *path) close() {
	p.b.WriteByte('Z')
	p.down, p.inLine, p.segment = false, false, 0
}

func (p *path) String() string { return p.b.String() }

// num writes n tenths as a decimal, with a space before it when sep is set
// and n is not negative (a minus sign separates by itself).
func (p *path) num(n int, sep bool) {
	if sep && n >= 0 {
		p.b.WriteByte(' ')
	}
	if n < 0 {
		p.b.WriteByte('-')
		n = -n
	}
	p.b.WriteString(strconv.Itoa(n / 10))
	if r := n % 10; r != 0 {
		p.b.WriteByte('.')
		p.b.WriteByte(byte('0' + r))
	}
}

func tenths(v float64) int { return int(math.Round(v * 10)) }

func fmt1(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }

func itoa(n int) string { return strconv.Itoa(n) }

func finiteMin(vs []float64) float64 {
	m := math.NaN()
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) && (math.IsNaN(m) || v < m) {
			m = v
		}
	}
	return m
}

func finiteMax(vs []float64) float64 {
	m := math.NaN()
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) && (math.IsNaN(m) || v > m) {
			m = v
		}
	}
	return m
}

// nanMin is math.Min ignoring a NaN argument.
func nanMin(a, b float64) float64 {
	if math.IsNaN(a) || b < a {
		return b
	}
	return a
}

// nanMax is math.Max ignoring a NaN argument.
func nanMax(a, b float64) float64 {
	if math.IsNaN(a) || b > a {
		return b
	}
	return a
}

func anyFinite(vs []float64) bool { return !math.IsNaN(finiteMax(vs)) }
