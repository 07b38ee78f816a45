package report

import (
	"encoding/json"
	"math"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/openanomaly/openanomaly/internal/shareddata"
)

// nabSeries builds a rendering fixture from a real NAB file: the actual
// values, NAB's labelled windows, and a fake forecast that is only there
// to be drawn: a trailing rolling median ± 2 rolling standard deviations,
// its score |x − median| / (2·std), and detections where the score first
// rises over the threshold. None of it measures a model.
func nabSeries(t testing.TB, file string, window int, threshold float64) Series {
	t.Helper()
	times, values := shareddata.MustLoadNAB(t, "nab", file)
	s := Series{
		Rule:       "fixture:rolling_median",
		Labels:     map[string]string{"__name__": "nab", "file": file},
		LowerLevel: 0.05,
		UpperLevel: 0.95,
		Threshold:  threshold,
	}
	buf := make([]float64, 0, window)
	above := false
	for i, tm := range times {
		ts := tm.UnixMilli()
		s.Timestamps = append(s.Timestamps, ts)
		s.Actual = append(s.Actual, values[i])
		if i < window/4 {
			// The fake model needs some history, like a real one: NaN
			// (no output) until then, drawn as a gap.
			for _, col := range []*Floats{&s.Median, &s.Lower, &s.Upper, &s.Score} {
				*col = append(*col, math.NaN())
			}
			continue
		}
		buf = append(buf[:0], values[max(0, i-window):i]...)
		sort.Float64s(buf)
		med := buf[len(buf)/2]
		var mean, sq float64
		for _, v := range buf {
			mean += v
		}
		mean /= float64(len(buf))
		for _, v := range buf {
			sq += (v - mean) * (v - mean)
		}
		sd := math.Max(math.Sqrt(sq/float64(len(buf))), 1e-9)
		score := math.Abs(values[i]-med) / (2 * sd)
		s.Median = append(s.Median, med)
		s.Lower = append(s.Lower, med-2*sd)
		s.Upper = append(s.Upper, med+2*sd)
		s.Score = append(s.Score, score)
		if score > s.Threshold && !above {
			s.Detections = append(s.Detections, ts)
		}
		above = score > s.Threshold
	}
	s.Windows = nabWindows(t, file)
	s.Metrics = map[string]float64{
		"points":       float64(len(times)),
		"detections":   float64(len(s.Detections)),
		"nab_standard": math.NaN(), // not scored: a fixture
	}
	return s
}

// nabWindows reads file's labelled windows from NAB's combined_windows.json.
func nabWindows(t testing.TB, file string) []Window {
	t.Helper()
	b, err := os.ReadFile(shareddata.Path(t, "nab", "labels", "combined_windows.json"))
	if err != nil {
		t.Fatal(err)
	}
	var all map[string][][2]string
	if err := json.Unmarshal(b, &all); err != nil {
		t.Fatal(err)
	}
	var ws []Window
	for _, w := range all[file] {
		var ms [2]int64
		for k, s := range w {
			tm, err := time.ParseInLocation("2006-01-02 15:04:05.000000", s, time.UTC)
			if err != nil {
				t.Fatalf("window of %s: %v", file, err)
			}
			ms[k] = tm.UnixMilli()
		}
		ws = append(ws, Window{Start: ms[0], End: ms[1]})
	}
	return ws
}

// sampleReport is the report the screenshot shows: three real NAB series
// and the edge cases (no evaluations, all NaN, one point).
func sampleReport(t testing.TB) *Report {
	t.Helper()
	r := &Report{
		Title:     "Backtest of fixture.yml (rendering fixture)",
		Generated: time.Date(2026, 12, 4, 3, 0, 0, 0, time.UTC),
		Command:   "go test ./pkg/report -run TestScreenshot",
		Start:     time.Date(2013, 12, 2, 21, 15, 0, 0, time.UTC),
		End:       time.Date(2014, 2, 19, 15, 25, 0, 0, time.UTC),
		Summary: []Table{
			{
				Title:   "NAB score (fixture numbers)",
				Columns: []string{"detector", "standard", "reward low FP", "reward low FN", "threshold"},
				Rows: []Row{
					{Name: "fixture:rolling_median", Values: Floats{54.6231, 47.6, math.NaN(), 1.5}},
					{Name: "null", Values: Floats{0, 0, 0, math.NaN()}},
				},
				Note: "Numbers made up for the rendering fixture; the backtest fills the real ones.",
			},
			{
				Title:   "Per file (fixture numbers)",
				Columns: []string{"file", "windows", "detections"},
				Rows: []Row{
					{Name: "realKnownCause/machine_temperature_system_failure.csv", Values: Floats{4, 208}},
					{Name: "realKnownCause/nyc_taxi.csv", Values: Floats{5, 169}},
				},
			},
			{
				Title:   "Forecast quality",
				Columns: []string{"model", "MASE", "WQL", "coverage 90 %"},
				Rows:    []Row{{Name: "seasonal_naive", Values: Floats{1, 0.1234, 0.87}}},
			},
		},
	}
	r.Series = append(r.Series,
		nabSeries(t, "realKnownCause/machine_temperature_system_failure.csv", 288, 1.5),
		nabSeries(t, "realKnownCause/nyc_taxi.csv", 336, 1),
		nabSeries(t, "artificialWithAnomaly/art_daily_jumpsup.csv", 288, 1.5),
	)
	base := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	allNaN := Series{Rule: "edge:all_nan", Labels: map[string]string{"__name__": "up", "job": "x"}, Threshold: 1}
	for i := range 100 {
		allNaN.Timestamps = append(allNaN.Timestamps, base+int64(i)*60e3)
		allNaN.Actual = append(allNaN.Actual, math.NaN())
	}
	one := Series{
		Rule: "edge:one_point", Labels: map[string]string{"__name__": "up"}, Threshold: 1,
		Timestamps: []int64{base}, Actual: Floats{3}, Median: Floats{2.5}, Lower: Floats{2}, Upper: Floats{3.2}, Score: Floats{0.4},
	}
	r.Series = append(r.Series,
		Series{Rule: "edge:empty", Labels: map[string]string{"__name__": "up", "instance": "<script>alert(1)</script>"}},
		allNaN, one)
	return r
}
