package report

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// render runs WriteHTML and checks what every report must be: parseable,
// with balanced SVG elements, and free of anything that fetches from the
// network.
func render(t *testing.T, r *Report) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatalf("WriteHTML: %v", err)
	}
	out := b.String()
	checkWellFormed(t, out)
	checkOffline(t, out)
	return out
}

// checkWellFormed parses the page as HTML5 and walks its tokens, requiring
// every non-void element to be closed in order (html.Parse alone repairs
// anything, so it would not catch an unclosed <g>).
func checkWellFormed(t *testing.T, page string) {
	t.Helper()
	if _, err := html.Parse(strings.NewReader(page)); err != nil {
		t.Fatalf("html.Parse: %v", err)
	}
	void := map[string]bool{"meta": true, "br": true, "img": true, "link": true, "input": true, "hr": true}
	var stack []string
	z := html.NewTokenizer(strings.NewReader(page))
	for {
		switch z.Next() {
		case html.ErrorToken:
			if len(stack) != 0 {
				t.Fatalf("unclosed elements at the end: %v", stack)
			}
			return
		case html.StartTagToken:
			name, _ := z.TagName()
			if !void[string(name)] {
				stack = append(stack, string(name))
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if len(stack) == 0 || stack[len(stack)-1] != string(name) {
				t.Fatalf("</%s> closes %v", name, stack)
			}
			stack = stack[:len(stack)-1]
		}
	}
}

var urlRE = regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|<script|<link|<img|<iframe|url\((['"]?)[^#'")]`)

// checkOffline fails on anything a browser would fetch: external URLs,
// scripts, stylesheets, images, CSS url() other than a local #fragment.
func checkOffline(t *testing.T, page string) {
	t.Helper()
	for _, m := range urlRE.FindAllString(page, -1) {
		if strings.Contains(m, "www.w3.org/2000/svg") {
			continue
		}
		t.Errorf("page reaches outside itself: %q", m)
	}
}

func TestHTMLEscapesUserData(t *testing.T) {
	hostile := `<script>alert("x")</script>`
	r := &Report{
		Title:   hostile,
		Command: hostile,
		Summary: []Table{{Title: hostile, Columns: []string{hostile, "v"}, Rows: []Row{{Name: hostile, Values: Floats{1}}}, Note: hostile}},
		Series: []Series{{
			Rule: hostile, Labels: map[string]string{"job": hostile, hostile: "v"},
			Timestamps: []int64{0, 60e3}, Actual: Floats{1, 2},
			Metrics: map[string]float64{hostile: 1},
		}},
	}
	out := render(t, r)
	if strings.Contains(out, "<script") {
		t.Fatal("a label value came out as a <script> element")
	}
	if !strings.Contains(out, "&lt;script&gt;") {
		t.Fatal("the hostile value is not on the page at all (escaped)")
	}
}

func TestHTMLEdgeCases(t *testing.T) {
	nan := math.NaN()
	cases := []struct {
		name   string
		s      Series
		want   []string // substrings of the page
		nowant []string
	}{
		{
			name: "empty",
			s:    Series{Rule: "r"},
			want: []string{"No evaluations in this range."}, nowant: []string{"<svg"},
		},
		{
			name: "all NaN",
			s:    Series{Rule: "r", Timestamps: []int64{0, 60e3, 120e3}, Actual: Floats{nan, nan, nan}, Score: Floats{nan, nan, nan}, Threshold: 1},
			want: []string{"<svg", "no values in this range", "threshold 1"}, nowant: []string{`class="act"`, `class="band"`, `class="k-med"`, `class="k-band"`},
		},
		{
			name: "single point",
			s: Series{Rule: "r", Timestamps: []int64{1.7e12}, Actual: Floats{3}, Median: Floats{2}, Lower: Floats{1}, Upper: Floats{4}, Score: Floats{0.5},
				Threshold: 1, Detections: []int64{1.7e12}},
			// A one-point line is a dot: a move and a zero-length segment.
			want: []string{`class="act" d="M`, `h0"`, `class="act pt"`, `class="band"`, `class="det"`, `class="k-band"`, "1 point ·"},
		},
		{
			name: "short slices",
			s:    Series{Rule: "r", Timestamps: []int64{0, 60e3, 120e3}, Actual: Floats{1}},
			want: []string{`class="act"`},
		},
		{
			name: "unsorted with infinities",
			s:    Series{Rule: "r", Timestamps: []int64{120e3, 0, 60e3}, Actual: Floats{1, math.Inf(1), 3}, Threshold: nan},
			want: []string{`class="act"`}, nowant: []string{`class="thr"`, "NaN", "Inf"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := render(t, &Report{Series: []Series{c.s}})
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range c.nowant {
				if strings.Contains(out, w) {
					t.Errorf("page has %q", w)
				}
			}
		})
	}
}

// TestHTMLGaps checks that NaN breaks the line into two subpaths instead
// of being drawn as zero.
func TestHTMLGaps(t *testing.T) {
	s := Series{Timestamps: make([]int64, 9), Actual: Floats{5, 6, 5, math.NaN(), math.NaN(), math.NaN(), 6, 5, 6}}
	for i := range s.Timestamps {
		s.Timestamps[i] = int64(i) * 60e3
	}
	svg, _ := chartSVG(&s, "t")
	d := regexp.MustCompile(`class="act" d="([^"]*)"`).FindStringSubmatch(svg)
	if d == nil {
		t.Fatal("no actual line")
	}
	if n := strings.Count(d[1], "M"); n != 2 {
		t.Errorf("actual line has %d subpaths, want 2 (one gap): %s", n, d[1])
	}
}

// TestDownsampleKeepsSpikes draws 20,000 points with one spike and checks
// the path reaches the spike's height and stays one point pair per column.
func TestDownsampleKeepsSpikes(t *testing.T) {
	n := 20000
	s := Series{Timestamps: make([]int64, n), Actual: make(Floats, n)}
	for i := range n {
		s.Timestamps[i] = int64(i) * 300e3
		s.Actual[i] = 10 + math.Sin(float64(i)/50)
	}
	s.Actual[12345] = 100
	svg, _ := chartSVG(&s, "t")
	d := regexp.MustCompile(`class="act" d="M([-0-9.]+) ([-0-9.]+)l([^"]*)"`).FindStringSubmatch(svg)
	if d == nil {
		t.Fatalf("no actual line in %.300s", svg)
	}
	// Follow the relative path to find its highest point (smallest y).
	var y, top float64
	fmt.Sscan(d[2], &y)
	top = y
	nums := regexp.MustCompile(`-?[0-9.]+`).FindAllString(d[3], -1)
	if len(nums) > 2*2*buckets {
		t.Errorf("path has %d points for %d columns", len(nums)/2, buckets)
	}
	for i := 1; i < len(nums); i += 2 {
		var dy float64
		fmt.Sscan(nums[i], &dy)
		y += dy
		top = math.Min(top, y)
	}
	// The spike is the maximum, so the value range ends just above it.
	if top > mainTop+0.2*mainH {
		t.Errorf("highest point at y=%.1f, the spike (y≈%d) was lost", top, mainTop)
	}
}

func TestHTMLSizeBound(t *testing.T) {
	if testing.Short() {
		t.Skip("large report")
	}
	const series, points = 58, 20000
	r := &Report{Title: "size"}
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for k := range series {
		s := Series{Rule: "r", Labels: map[string]string{"file": fmt.Sprint("f", k)}, LowerLevel: 0.05, UpperLevel: 0.95, Threshold: 1}
		for i := range points {
			x := float64(i)
			v := 50 + 20*math.Sin(x/40+float64(k)) + 5*math.Sin(x*1.7) // noisy: no column collapses to a point
			s.Timestamps = append(s.Timestamps, base+int64(i)*300e3)
			s.Actual = append(s.Actual, v)
			s.Median = append(s.Median, v+math.Sin(x*0.9))
			s.Lower = append(s.Lower, v-8+math.Sin(x*1.3))
			s.Upper = append(s.Upper, v+8+math.Cos(x*1.1))
			s.Score = append(s.Score, math.Abs(math.Sin(x*2.3)))
			if i%997 == 0 {
				s.Detections = append(s.Detections, s.Timestamps[i])
			}
		}
		s.Windows = []Window{{Start: s.Timestamps[5000], End: s.Timestamps[6000]}}
		r.Series = append(r.Series, s)
	}
	var b bytes.Buffer
	start := time.Now()
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d series × %d points: %d bytes (%.0f KiB per chart) in %v", series, points, b.Len(), float64(b.Len())/1024/series, time.Since(start))
	if b.Len() > 3<<20 {
		t.Errorf("report is %d bytes, want under 3 MiB", b.Len())
	}
	checkWellFormed(t, b.String())
}

// TestNABReport renders the sample report from real NAB data and checks
// the windows and detections made it onto the charts. With
// OPENANOMALY_REPORT_DIR set it also keeps report.html there and, when
// Chromium is installed, a screenshot report.png (testdata/screenshot.sh).
func TestNABReport(t *testing.T) {
	r := sampleReport(t)
	out := render(t, r)
	for i, s := range r.Series[:3] {
		if len(s.Windows) == 0 || len(s.Detections) == 0 {
			t.Errorf("fixture series %d has %d windows, %d detections", i, len(s.Windows), len(s.Detections))
		}
	}
	if got, want := strings.Count(out, `<rect class="win"`), 2*(len(r.Series[0].Windows)+len(r.Series[1].Windows)+len(r.Series[2].Windows)); got != want {
		t.Errorf("%d window rectangles, want %d (each window on both panels)", got, want)
	}
	if !strings.Contains(out, `<a href="#s2">realKnownCause/nyc_taxi.csv</a>`) {
		t.Error("the summary row naming a file does not link to its chart")
	}
	if !strings.Contains(out, `<li class="grp">realKnownCause</li>`) {
		t.Error("the contents do not group the files by folder")
	}
	if !strings.Contains(out, "5–95 % band") {
		t.Error("legend does not name the band's levels")
	}
	dir := os.Getenv("OPENANOMALY_REPORT_DIR")
	if dir == "" {
		return
	}
	htmlPath := filepath.Join(dir, "report.html")
	if err := os.WriteFile(htmlPath, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), js.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("report.html %d bytes, report.json %d bytes", len(out), js.Len())
	var chromium string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
			break
		}
	}
	if chromium == "" {
		t.Skip("no chromium: kept the HTML, no screenshot")
	}
	abs, err := filepath.Abs(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	size := os.Getenv("OPENANOMALY_REPORT_WINDOW")
	if size == "" {
		size = "1400,2000"
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--screenshot="+filepath.Join(dir, "report.png"), "--window-size="+size, "file://"+abs)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, b)
	}
}
