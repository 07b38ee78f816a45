package backtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/openanomaly/openanomaly/internal/testenv"
	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/builtin"
	"github.com/openanomaly/openanomaly/pkg/nab"
	"github.com/openanomaly/openanomaly/pkg/pipeline"
	"github.com/openanomaly/openanomaly/pkg/report"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

const prefix = "openanomaly_"

// models returns a fresh registry: the built-in model keeps fitted
// parameters per series, so two runs that are compared must not share one.
func models(t *testing.T) *forecast.Registry {
	t.Helper()
	reg := forecast.NewRegistry()
	if err := reg.Register("default", builtin.Default()); err != nil {
		t.Fatal(err)
	}
	return reg
}

// groups parses a pipeline file's groups (defaults applied, as the command
// does without a config).
func groups(t *testing.T, yaml string) []Group {
	t.Helper()
	rg, errs := rulefmt.Parse([]byte(yaml), "test.yml")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var out []Group
	for _, g := range rg.Groups {
		iv := time.Minute
		if g.Interval > 0 {
			iv = time.Duration(g.Interval)
		}
		out = append(out, Group{File: "test.yml", Name: g.Name, Interval: iv, Limit: g.Limit, Rules: g.Rules})
	}
	return out
}

const fiveMinutePipelines = `
groups:
  - name: g
    interval: 5m
    rules:
      - forecast: test:value
        expr: value
        step: 5m
        context: 6h
        horizons: [30m]
        anomaly: {}
`

// synthetic writes n 5-minute rows of a daily sinusoid with a spike.
func synthetic(t *testing.T, dir, name string, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	t0 := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		v := 10 + 3*math.Sin(2*math.Pi*float64(i)/288) + float64((i*7919)%13)/13
		if i == n*3/4 {
			v += 20
		}
		fmt.Fprintf(&b, "%s,%g\n", t0.Add(time.Duration(i)*5*time.Minute).Format(NABTimeLayout), v)
	}
	return writeCSV(t, dir, name, b.String())
}

// omSamples reads an OpenMetrics file written by the backtest into
// "name{labels}" → timestamp (ms) → value.
func omSamples(t *testing.T, path string) map[string]map[int64]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]map[int64]float64{}
	sc := bufio.NewScanner(f)
	sawEOF := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			sawEOF = sawEOF || line == "# EOF"
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		j := strings.LastIndexByte(line[:i], ' ')
		v, err := strconv.ParseFloat(line[j+1:i], 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		sec, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		key := line[:j]
		if out[key] == nil {
			out[key] = map[int64]float64{}
		}
		out[key][int64(math.Round(sec*1000))] = v
	}
	if !sawEOF {
		t.Fatalf("%s: no # EOF", path)
	}
	return out
}

// seriesKey formats labels as omLabels does, with the name in front.
func seriesKey(lset labels.Labels) string {
	return lset.Get(labels.MetricName) + omLabels(lset)
}

func count(m map[string]map[int64]float64) int {
	n := 0
	for _, s := range m {
		n += len(s)
	}
	return n
}

func run(t *testing.T, o Options) *Result {
	t.Helper()
	if o.Models == nil {
		o.Models = models(t)
		o.NewModels = func() (*forecast.Registry, error) { return models(t), nil }
	}
	if o.MetricPrefix == "" {
		o.MetricPrefix = prefix
	}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRunBadInputs(t *testing.T) {
	dir := t.TempDir()
	good := synthetic(t, dir, "good.csv", 50)
	empty := writeCSV(t, dir, "empty.csv", "timestamp,value\n")
	g := groups(t, fiveMinutePipelines)
	base := Options{Groups: g, Models: models(t), MetricPrefix: prefix, OutputDir: filepath.Join(dir, "out")}

	for _, tc := range []struct {
		name   string
		modify func(o *Options)
		want   []string
	}{
		{"empty file", func(o *Options) { o.CSV = []string{good, empty} }, []string{empty + ": no data rows"}},
		{"range after the data", func(o *Options) {
			o.CSV = []string{good}
			o.Start = time.Date(2016, 1, 1, 0, 0, 0, 0, time.UTC)
		}, []string{good + ": the start 2016-01-01T00:00:00Z is after the file's last row (2015-01-01T00:00:00Z to 2015-01-01T04:05:00Z)"}},
		{"range before the data", func(o *Options) {
			o.CSV = []string{good}
			o.Start = time.Date(2014, 1, 1, 0, 0, 0, 0, time.UTC)
			o.End = time.Date(2014, 2, 1, 0, 0, 0, 0, time.UTC)
		}, []string{good + ": the range 2014-01-01T00:00:00Z to 2014-02-01T00:00:00Z is outside the file's data"}},
		{"range between rows", func(o *Options) {
			o.CSV = []string{good}
			o.Start = time.Date(2015, 1, 1, 0, 1, 0, 0, time.UTC)
			o.End = time.Date(2015, 1, 1, 0, 2, 0, 0, time.UTC)
		}, []string{good + ": no row in the range"}},
		{"end before start", func(o *Options) {
			o.CSV = []string{good}
			o.Start = time.Date(2015, 1, 2, 0, 0, 0, 0, time.UTC)
			o.End = time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC)
		}, []string{"end 2015-01-01T00:00:00Z is before start 2015-01-02T00:00:00Z"}},
		{"missing file", func(o *Options) { o.CSV = []string{filepath.Join(dir, "nope.csv")} }, []string{"nope.csv: no such file"}},
		{"store without range", func(o *Options) {
			o.Querier = datasource.QuerierFunc(nil)
		}, []string{"needs --start and --end"}},
		{"store and an expr that looks ahead", func(o *Options) {
			o.Querier = datasource.QuerierFunc(nil)
			o.Start, o.End = time.Unix(0, 0), time.Unix(3600, 0)
			o.Groups = groups(t, strings.ReplaceAll(fiveMinutePipelines, "expr: value", "expr: rate(value[5m] offset -5m)"))
		}, []string{"test.yml: group g: pipeline test:value: value offset -5m reads data after the evaluation time"}},
		{"store and @", func(o *Options) {
			o.Querier = datasource.QuerierFunc(nil)
			o.Start, o.End = time.Unix(0, 0), time.Unix(3600, 0)
			o.Groups = groups(t, strings.ReplaceAll(fiveMinutePipelines, "expr: value", "expr: value @ end()"))
		}, []string{"value @ end() reads data after"}},
		{"both sources", func(o *Options) {
			o.CSV = []string{good}
			o.Querier = datasource.QuerierFunc(nil)
		}, []string{"not both or neither"}},
		{"no pipelines", func(o *Options) { o.CSV = []string{good}; o.Groups = nil }, []string{"no pipelines"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.modify(&o)
			_, err := Run(context.Background(), o)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestCSVRowsAndScores: every row is an evaluation, stamped at the row; the
// score CSV has every row with the score of its evaluation; duplicated and
// backwards timestamps are fixed and reported.
func TestCSVRowsAndScores(t *testing.T) {
	dir := t.TempDir()
	p := synthetic(t, filepath.Join(dir, "in", "sub"), "a.csv", 200)
	// Append a duplicate of the last row and a row that goes back.
	b, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	last := lines[len(lines)-1]
	b = append(b, []byte(strings.Split(last, ",")[0]+",11\n"+lines[5]+"\n")...)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	res := run(t, Options{Groups: groups(t, fiveMinutePipelines), CSV: []string{filepath.Join(dir, "in")}, OutputDir: out, Parallelism: 1})
	if res.Evaluations != 200 || res.FailedEvaluations != 0 || res.Units != 1 {
		t.Errorf("result %+v, want 200 evaluations in 1 unit", res)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0], "a.csv:202: 2 duplicated timestamps") || !strings.Contains(res.Warnings[1], "a.csv:203: timestamps go backwards (1 rows)") {
		t.Errorf("warnings %q", res.Warnings)
	}

	om := omSamples(t, filepath.Join(out, SeriesFile))
	ylset := labels.FromStrings(labels.MetricName, prefix+"y", "file", "sub/a.csv", "pipeline", "test:value")
	y := om[seriesKey(ylset)]
	if len(y) < 150 {
		t.Fatalf("%d y samples of %s; series: %v", len(y), seriesKey(ylset), slices.Collect(mapsKeys(om)))
	}
	// The duplicated last row: its later value, 11, is the one replayed.
	lastT, _ := ParseTimestamp(strings.Split(last, ",")[0])
	if v := y[lastT.UnixMilli()]; v != 11 {
		t.Errorf("y at the duplicated last row = %v, want 11 (the later row)", v)
	}

	// The scores: one line per data row in file order (NAB's scorer
	// matches them row by row), each the score emitted at its stamp.
	sb, err := os.ReadFile(filepath.Join(out, ScoresDir, "test:value", "sub", "a.csv"))
	if err != nil {
		t.Fatal(err)
	}
	sl := strings.Split(strings.TrimSpace(string(sb)), "\n")
	if sl[0] != "timestamp,anomaly_score" || len(sl) != 203 {
		t.Fatalf("score file: header %q, %d lines, want 203", sl[0], len(sl))
	}
	in := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := 1; i < len(in); i++ {
		if got, want := strings.Split(sl[i], ",")[0], strings.Split(in[i], ",")[0]; got != want {
			t.Fatalf("score row %d at %s, the data row at %s", i, got, want)
		}
	}
	scores := om[seriesKey(labels.FromStrings(labels.MetricName, prefix+"anomaly_score", "file", "sub/a.csv", "pipeline", "test:value"))]
	high := map[int64]bool{} // rows that repeat a timestamp count once
	for _, l := range sl[1:] {
		ts, v, _ := strings.Cut(l, ",")
		tt, err := time.Parse(NABTimeLayout, ts)
		if err != nil {
			t.Fatal(err)
		}
		want := scores[tt.UnixMilli()] // 0 where none was emitted
		got, _ := strconv.ParseFloat(v, 64)
		if got != want {
			t.Errorf("score at %s = %v, want %v", ts, got, want)
		}
		if got > Threshold {
			high[tt.UnixMilli()] = true
		}
	}
	// The spike at row 150 is detected.
	spike := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).Add(150 * 5 * time.Minute).UnixMilli()
	if scores[spike] <= Threshold {
		t.Errorf("score at the spike = %v, want > 1", scores[spike])
	}

	var rep report.Report
	rb, _ := os.ReadFile(filepath.Join(out, ReportJSON))
	if err := json.Unmarshal(rb, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Series) != 1 || len(rep.Series[0].Timestamps) != 200 || rep.Series[0].Labels["file"] != "sub/a.csv" {
		t.Fatalf("report series: %d, labels %v", len(rep.Series), rep.Series[0].Labels)
	}
	if !slices.Contains(rep.Series[0].Detections, spike) || len(rep.Series[0].Detections) != len(high) {
		t.Errorf("detections %v, want the spike among %d", rep.Series[0].Detections, len(high))
	}
	for _, k := range []string{"mase_next", "wql_next", "coverage_0.9_next", "mase_30m", "wql_30m", "coverage_0.9_30m"} {
		if v, ok := rep.Series[0].Metrics[k]; !ok || !(v >= 0) {
			t.Errorf("metric %s = %v (present %v)", k, v, ok)
		}
	}
	if len(rep.Summary) != 2 || rep.Summary[1].Title != "Forecast accuracy: test:value" || len(rep.Summary[1].Rows) != 2 {
		t.Errorf("summary %+v", rep.Summary)
	}
	if _, err := os.Stat(filepath.Join(out, ReportHTML)); err != nil {
		t.Error(err)
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestNoLookAhead: a replay over a file cut at some row emits exactly what
// the replay over the whole file emits up to that row, even for an expr
// that asks for the future (a negative offset).
func TestNoLookAhead(t *testing.T) {
	dir := t.TempDir()
	full := synthetic(t, filepath.Join(dir, "full"), "a.csv", 200)
	b, _ := os.ReadFile(full)
	lines := strings.SplitAfter(string(b), "\n")
	cut := writeCSV(t, filepath.Join(dir, "cut"), "a.csv", strings.Join(lines[:1+120], ""))
	pipelines := fiveMinutePipelines + `
      - forecast: test:future
        expr: value offset -1h
        step: 5m
        context: 6h
`
	g := groups(t, pipelines)
	run(t, Options{Groups: g, CSV: []string{full}, OutputDir: filepath.Join(dir, "out-full")})
	run(t, Options{Groups: g, CSV: []string{cut}, OutputDir: filepath.Join(dir, "out-cut")})
	a := omSamples(t, filepath.Join(dir, "out-full", SeriesFile))
	c := omSamples(t, filepath.Join(dir, "out-cut", SeriesFile))
	cutT := time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).Add(119 * 5 * time.Minute).UnixMilli()
	n := 0
	for k, s := range a {
		if strings.Contains(k, "test:future") {
			t.Errorf("%s: %d samples; an expr looking ahead must see nothing", k, len(s))
			continue
		}
		for ts, v := range s {
			if ts > cutT {
				continue
			}
			n++
			if cv, ok := c[k][ts]; !ok || math.Float64bits(cv) != math.Float64bits(v) {
				t.Errorf("%s at %d: full replay %v, cut replay %v (present %v)", k, ts, v, cv, ok)
			}
		}
	}
	if n < 500 || n != count(c) {
		t.Errorf("%d samples up to the cut in the full replay, %d in the cut replay", n, count(c))
	}
}

// TestResume: a rerun with Resume skips the finished files and rebuilds the
// same outputs; a changed file or a lost marker runs again.
func TestResume(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	synthetic(t, in, "a.csv", 120)
	pb := synthetic(t, in, "b.csv", 100)
	out := filepath.Join(dir, "out")
	o := Options{Groups: groups(t, fiveMinutePipelines), CSV: []string{in}, OutputDir: out}
	first := run(t, o)
	if first.Units != 2 || first.Resumed != 0 || first.Evaluations != 220 {
		t.Fatalf("first run %+v", first)
	}
	om1, _ := os.ReadFile(filepath.Join(out, SeriesFile))
	st, _ := os.Stat(filepath.Join(out, seriesDir, "a.csv.om"))

	o.Resume = true
	second := run(t, o)
	if second.Units != 0 || second.Resumed != 2 || second.Evaluations != 0 {
		t.Errorf("resumed run %+v, want everything skipped", second)
	}
	om2, _ := os.ReadFile(filepath.Join(out, SeriesFile))
	if string(om1) != string(om2) || len(om1) == 0 {
		t.Errorf("series.om differs after resuming (%d and %d bytes)", len(om1), len(om2))
	}
	if len(second.Report.Series) != 2 {
		t.Errorf("resumed report has %d series, want 2", len(second.Report.Series))
	}

	// b.csv changes; a.csv's marker is lost as in a crash before it.
	if err := os.WriteFile(pb, append(mustRead(t, pb), []byte("2015-01-01 08:20:00,12\n")...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(markerPath(out, "a.csv")); err != nil {
		t.Fatal(err)
	}
	third := run(t, o)
	if third.Units != 2 || third.Resumed != 0 {
		t.Errorf("after a change and a lost marker: %+v, want both rerun", third)
	}
	synthetic(t, in, "b.csv", 100)
	fourth := run(t, o)
	if fourth.Units != 1 || fourth.Resumed != 1 || fourth.Evaluations != 100 {
		t.Errorf("after restoring b.csv: %+v, want b rerun alone", fourth)
	}
	if st2, _ := os.Stat(filepath.Join(out, seriesDir, "a.csv.om")); !st2.ModTime().After(st.ModTime()) && third.Units != 2 {
		t.Error("a.csv was not rewritten")
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOpenMetricsLoadsWithPromtool: promtool turns series.om into blocks
// that hold exactly the samples the backtest emitted.
func TestOpenMetricsLoadsWithPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool is not in PATH: install Debian's prometheus package")
	}
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	synthetic(t, in, "a.csv", 150)
	synthetic(t, in, "b.csv", 100)
	out := filepath.Join(dir, "out")
	run(t, Options{Groups: groups(t, fiveMinutePipelines), CSV: []string{in}, OutputDir: out})
	want := omSamples(t, filepath.Join(out, SeriesFile))

	blocks := filepath.Join(dir, "blocks")
	// OpenDBReadOnly wants a WAL directory, even an empty one.
	if err := os.MkdirAll(filepath.Join(blocks, "wal"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", filepath.Join(out, SeriesFile), blocks)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool: %v\n%s", err, b)
	}
	db, err := tsdb.OpenDBReadOnly(blocks, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got := map[string]map[int64]float64{}
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	for ss.Next() {
		s := ss.At()
		m := map[int64]float64{}
		it := s.Iterator(nil)
		for it.Next() != 0 {
			ts, v := it.At()
			m[ts] = v
		}
		got[seriesKey(s.Labels())] = m
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || count(got) != count(want) || count(want) < 1000 {
		t.Fatalf("blocks have %d series and %d samples, the file %d and %d", len(got), count(got), len(want), count(want))
	}
	for k, s := range want {
		for ts, v := range s {
			if gv, ok := got[k][ts]; !ok || math.Float64bits(gv) != math.Float64bits(v) {
				t.Fatalf("%s at %d: blocks %v (present %v), file %v", k, ts, gv, ok, v)
			}
		}
	}
}

// recording collects what a daemon-side evaluation emitted.
type recording map[string]map[int64]float64

func (r recording) Append(lset labels.Labels, t int64, v float64) {
	if value.IsStaleNaN(v) {
		return
	}
	k := seriesKey(lset)
	if r[k] == nil {
		r[k] = map[int64]float64{}
	}
	r[k][t] = v
}

// TestSameAsDaemonOverPrometheus: the backtest of two days of a NAB file
// gives exactly the samples the daemon's evaluation gives when the same data
// is in a real Prometheus, read through the daemon's query_range client at
// the same times. Prometheus keeps only recent data (and its receiver takes
// old samples only inside the out-of-order window), so the data is moved by
// whole days to end an hour ago, in the CSV and the store alike.
func TestSameAsDaemonOverPrometheus(t *testing.T) {
	const rel = "realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv"
	ts, vs := testenv.LoadNAB(t, rel)
	ts, vs = ts[:577], vs[:577] // two days of 5-minute rows, no gaps
	days := time.Now().Add(-time.Hour).Sub(ts[len(ts)-1]) / (24 * time.Hour)
	ts = testenv.Shift(ts, ts[0], ts[0].Add(days*24*time.Hour))
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	for i := range ts {
		fmt.Fprintf(&b, "%s,%s\n", ts[i].UTC().Format(NABTimeLayout), strconv.FormatFloat(vs[i], 'g', -1, 64))
	}
	path := writeCSV(t, t.TempDir(), filepath.Base(rel), b.String())
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{
		RemoteWriteReceiver: true,
		ExtraConfig:         "storage:\n  tsdb:\n    out_of_order_time_window: 10d\n",
	})
	prom.Write(t, "value", map[string]string{"file": filepath.Base(rel)}, ts, vs)

	start, end := ts[0], ts[len(ts)-1]
	g := groups(t, fiveMinutePipelines)
	out := t.TempDir()
	res := run(t, Options{Groups: g, CSV: []string{path}, Start: start, End: end, OutputDir: out})
	backtest := omSamples(t, filepath.Join(out, SeriesFile))
	if res.Evaluations != 577 || count(backtest) < 5*500 {
		t.Fatalf("%d evaluations, %d samples", res.Evaluations, count(backtest))
	}

	// The daemon's path: its HTTP querier against the store.
	q := httpQuerier(t, prom.URL)
	rule := pipeline.NewRule(g[0].Rules[0], prefix)
	daemon := recording{}
	reg := models(t)
	for _, at := range ts {
		if at.Before(start) || at.After(end) {
			continue
		}
		if err := rule.Eval(context.Background(), at, pipeline.EvalOptions{Querier: q, Models: reg, Appender: daemon}); err != nil {
			t.Fatalf("daemon evaluation at %v: %v", at, err)
		}
	}
	if len(daemon) != len(backtest) || count(daemon) != count(backtest) {
		t.Errorf("daemon: %d series, %d samples; backtest: %d series, %d samples", len(daemon), count(daemon), len(backtest), count(backtest))
	}
	diffs := 0
	for k, s := range daemon {
		for at, v := range s {
			if bv, ok := backtest[k][at]; !ok || math.Float64bits(bv) != math.Float64bits(v) {
				if diffs++; diffs <= 10 {
					t.Errorf("%s at %s: daemon %v, backtest %v (present %v)", k, time.UnixMilli(at).UTC().Format(time.RFC3339), v, bv, ok)
				}
			}
		}
	}
	if diffs > 0 {
		t.Errorf("%d samples differ", diffs)
	}

	// The backtest over the store (the group's 5m interval, the rows'
	// times), through query_range and through remote-read, gives the
	// same again.
	rr := config.DefaultDatasourceConfig
	rr.ReadMethod = config.ReadRemoteRead
	rru, _ := url.Parse(prom.URL + "/api/v1/read")
	rr.RemoteReadURL = &commoncfg.URL{URL: rru}
	rq, err := datasource.FromConfig(rr, "test")
	if err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]datasource.Querier{"query_range": q, "remote_read": rq} {
		storeOut := t.TempDir()
		res = run(t, Options{Groups: g, Querier: q, Start: start, End: end, OutputDir: storeOut})
		store := omSamples(t, filepath.Join(storeOut, SeriesFile))
		if res.Evaluations != 577 || count(store) != count(backtest) {
			t.Errorf("%s store backtest: %d evaluations, %d samples; want 577, %d", name, res.Evaluations, count(store), count(backtest))
		}
		diffs = 0
		for k, s := range backtest {
			for at, v := range s {
				if sv, ok := store[k][at]; !ok || math.Float64bits(sv) != math.Float64bits(v) {
					if diffs++; diffs <= 10 {
						t.Errorf("%s: %s at %s: store backtest %v, CSV backtest %v (present %v)", name, k, time.UnixMilli(at).UTC().Format(time.RFC3339), sv, v, ok)
					}
				}
			}
		}
	}
}

// httpQuerier is the daemon's query_range client for base.
func httpQuerier(t *testing.T, base string) datasource.Querier {
	t.Helper()
	u, _ := url.Parse(base)
	dc := config.DefaultDatasourceConfig
	dc.URL = &commoncfg.URL{URL: u}
	q, err := datasource.FromConfig(dc, "test")
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestRemoteWriteToVictoriaMetrics: every emitted sample reaches a real
// VictoriaMetrics, which takes history of any age.
func TestRemoteWriteToVictoriaMetrics(t *testing.T) {
	vm := testenv.StartVictoriaMetrics(t)
	dir := t.TempDir()
	p := synthetic(t, dir, "a.csv", 200)
	rw, err := NewRemoteWriter(vm.RemoteWriteURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	run(t, Options{Groups: groups(t, fiveMinutePipelines), CSV: []string{p}, OutputDir: out, Appender: rw})
	sent, err := rw.Close(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := omSamples(t, filepath.Join(out, SeriesFile))
	if int(sent) != count(want) || count(want) < 500 {
		t.Errorf("remote-write sent %v samples, the backtest emitted %d", sent, count(want))
	}
	vm.Flush(t)
	end := time.Date(2015, 1, 2, 0, 0, 0, 0, time.UTC)
	var got []testenv.Series
	for _, fam := range families {
		for _, s := range vm.QueryAt(t, "count_over_time("+prefix+fam+"[2d])", end) {
			b := labels.NewBuilder(s.Labels)
			b.Set(labels.MetricName, prefix+fam)
			got = append(got, testenv.Series{Labels: b.Labels(), Points: s.Points})
		}
	}
	n := 0
	for _, s := range got {
		k := seriesKey(s.Labels)
		if len(s.Points) != 1 || int(s.Points[0].V) != len(want[k]) {
			t.Errorf("%s: VictoriaMetrics has %+v samples, the backtest emitted %d", k, s.Points, len(want[k]))
		}
		n += int(s.Points[0].V)
	}
	if len(got) != len(want) || n != count(want) {
		t.Errorf("VictoriaMetrics holds %d series and %d samples, want %d and %d", len(got), n, len(want), count(want))
	}
}

// TestNAB: a replay of NAB files named by their corpus keys is scored with
// NAB in the report (both thresholds, every profile) and its charts get the
// labelled windows.
func TestNAB(t *testing.T) {
	data := filepath.Join(testenv.DataDir(t), "nab")
	c, err := nab.LoadCorpus(data)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"artificialWithAnomaly/art_daily_jumpsup.csv", "artificialNoAnomaly/art_daily_small_noise.csv"}
	var files [][2]string
	for _, k := range keys {
		files = append(files, [2]string{filepath.Join(data, k), k})
	}
	out := t.TempDir()
	res := run(t, Options{Groups: groups(t, fiveMinutePipelines), Files: files, NAB: c, OutputDir: out})
	tab := res.Report.Summary[len(res.Report.Summary)-1]
	if tab.Title != "NAB: test:value" || len(tab.Rows) != 3 || !strings.Contains(tab.Note, "2 files with 1 windows (a subset") {
		t.Fatalf("NAB table %+v", tab)
	}
	// The same numbers as the scorer gives on the score files.
	sub, _ := c.Subset(keys...)
	d, err := nab.ReadResults(filepath.Join(out, ScoresDir, "test:value"), sub)
	if err != nil || len(d) != 2 {
		t.Fatalf("score files: %v, %d", err, len(d))
	}
	for i, p := range sub.Profiles {
		opt, _ := sub.Optimize(d, p.Name)
		fixed, _ := sub.Score(d, p.Name, 1)
		if r := tab.Rows[i]; r.Name != p.Name || r.Values[0] != opt.Score || r.Values[1] != opt.Threshold || r.Values[5] != fixed.Score {
			t.Errorf("row %+v; scorer: optimised %v at %v, fixed %v", r, opt.Score, opt.Threshold, fixed.Score)
		}
	}
	for _, s := range res.Report.Series {
		want := 0
		if s.Labels["file"] == keys[0] {
			want = 1
		}
		if len(s.Windows) != want {
			t.Errorf("%s: windows %v, want %d", s.Labels["file"], s.Windows, want)
		}
	}
	w := res.Report.Series[slices.IndexFunc(res.Report.Series, func(s report.Series) bool { return s.Labels["file"] == keys[0] })].Windows[0]
	if got := time.UnixMilli(w.Start).UTC().Format(NABTimeLayout); got != "2014-04-10 16:15:00" {
		t.Errorf("window starts at %s, want 2014-04-10 16:15:00", got)
	}
}

// panicky forecasts a flat band around the last value, and panics on a
// value over 1000.
type panicky struct{}

func (panicky) Forecast(_ context.Context, req forecast.Request) ([]forecast.Forecast, error) {
	out := make([]forecast.Forecast, len(req.Histories))
	for i, h := range req.Histories {
		last := math.NaN()
		for _, v := range h {
			if v > 1000 {
				panic("a value over 1000")
			}
			if !math.IsNaN(v) {
				last = v
			}
		}
		if math.IsNaN(last) {
			out[i].Err = forecast.ErrInsufficientData
			continue
		}
		for _, q := range req.Quantiles {
			row := make([]float64, req.Horizon)
			for j := range row {
				row[j] = last + (q - 0.5)
			}
			out[i].Values = append(out[i].Values, row)
		}
	}
	return out, nil
}

// TestFailedUnit: a unit that fails does not stop the others; the report
// and series.om cover the finished ones, and the error names the failed
// one.
func TestFailedUnit(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	synthetic(t, in, "a.csv", 60)
	writeCSV(t, in, "b.csv", "timestamp,value\n2015-01-01 00:00:00,1\n2015-01-01 00:05:00,5000\n2015-01-01 00:10:00,1\n")
	reg := forecast.NewRegistry()
	if err := reg.Register("default", panicky{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	res, err := Run(context.Background(), Options{Groups: groups(t, fiveMinutePipelines), Models: reg, MetricPrefix: prefix,
		CSV: []string{in}, OutputDir: out, Parallelism: 1})
	if err == nil || !strings.Contains(err.Error(), "1 of 2 units failed") || !strings.Contains(err.Error(), "b.csv: panic: a value over 1000") {
		t.Fatalf("err = %v", err)
	}
	if res == nil || res.Units != 1 || len(res.Report.Series) != 1 || res.Report.Series[0].Labels["file"] != "a.csv" {
		t.Fatalf("result %+v", res)
	}
	om := omSamples(t, filepath.Join(out, SeriesFile))
	for k := range om {
		if strings.Contains(k, "b.csv") {
			t.Errorf("series.om has %s of the failed unit", k)
		}
	}
	if len(om) == 0 {
		t.Error("series.om is empty")
	}
}

// TestCSVInterval: with an interval, evaluations are at its multiples and a
// row gets the score of the first evaluation at or after it.
func TestCSVInterval(t *testing.T) {
	dir := t.TempDir()
	p := synthetic(t, dir, "a.csv", 200)
	out := filepath.Join(dir, "out")
	res := run(t, Options{Groups: groups(t, fiveMinutePipelines), CSV: []string{p}, OutputDir: out, Interval: 15 * time.Minute})
	// 200 rows over 995 minutes: evaluations at 0, 15, ..., 1005 minutes
	// (the last one after the last row, so that it is scored too).
	if res.Evaluations != 68 {
		t.Errorf("%d evaluations, want 68", res.Evaluations)
	}
	om := omSamples(t, filepath.Join(out, SeriesFile))
	scores := om[seriesKey(labels.FromStrings(labels.MetricName, prefix+"anomaly_score", "file", "a.csv", "pipeline", "test:value"))]
	for ts := range scores {
		if ts%(15*60*1000) != 0 {
			t.Fatalf("a score stamped at %d, not a multiple of 15m", ts)
		}
	}
	sl := strings.Split(strings.TrimSpace(string(mustRead(t, filepath.Join(out, ScoresDir, "test:value", "a.csv")))), "\n")[1:]
	if len(sl) != 200 {
		t.Fatalf("%d score rows, want 200", len(sl))
	}
	checked := 0
	for _, l := range sl {
		ts, v, _ := strings.Cut(l, ",")
		tt, _ := time.Parse(NABTimeLayout, ts)
		at := tt.UnixMilli()
		next := (at + 15*60*1000 - 1) / (15 * 60 * 1000) * (15 * 60 * 1000)
		got, _ := strconv.ParseFloat(v, 64)
		if want, ok := scores[next]; ok {
			checked++
			if got != want {
				t.Errorf("row %s: score %v, want %v of the evaluation at %s", ts, got, want, time.UnixMilli(next).UTC().Format(NABTimeLayout))
			}
		}
	}
	if checked < 150 {
		t.Errorf("only %d rows had an evaluation score to check", checked)
	}
}

// TestNABAllPipelines: pipelines that split the files between them are
// also scored as one detector, each row taking the highest score any of
// them gave it, with its score files under scores/all-pipelines.
func TestNABAllPipelines(t *testing.T) {
	data := filepath.Join(testenv.DataDir(t), "nab")
	c, err := nab.LoadCorpus(data)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"artificialWithAnomaly/art_daily_jumpsup.csv", "artificialWithAnomaly/art_daily_jumpsdown.csv"}
	var files [][2]string
	for _, k := range keys {
		files = append(files, [2]string{filepath.Join(data, k), k})
	}
	const split = `
groups:
  - name: g
    interval: 5m
    rules:
      - forecast: up
        expr: value{file=~".*jumpsup.*"}
        step: 5m
        context: 6h
        anomaly: {}
      - forecast: down
        expr: value{file=~".*jumpsdown.*"}
        step: 5m
        context: 6h
        anomaly: {}
      - forecast: none
        expr: value{file="not-there.csv"}
        step: 5m
        context: 6h
        anomaly: {}
`
	out := t.TempDir()
	res := run(t, Options{Groups: groups(t, split), Files: files, NAB: c, OutputDir: out})
	var titles []string
	for _, tab := range res.Report.Summary {
		titles = append(titles, tab.Title)
	}
	tab := res.Report.Summary[len(res.Report.Summary)-1]
	if tab.Title != "NAB: all pipelines" || !strings.Contains(tab.Note, "2 files with 2 windows") {
		t.Fatalf("tables %q; last %+v", titles, tab)
	}
	// A pipeline that matched nothing is no detector.
	if slices.Contains(titles, "NAB: none") {
		t.Errorf("tables %q include the pipeline that matched no series", titles)
	}
	sub, _ := c.Subset(keys...)
	read := func(rule string) nab.Detections {
		d, err := nab.ReadResults(filepath.Join(out, ScoresDir, rule), sub)
		if err != nil || len(d) != 2 {
			t.Fatalf("%s score files: %v, %d", rule, err, len(d))
		}
		return d
	}
	up, down, all := read("up"), read("down"), read(AllPipelines)
	for _, k := range keys {
		for i := range all[k] {
			if want := max(up[k][i], down[k][i]); all[k][i] != want {
				t.Fatalf("%s row %d: %v, want max(%v, %v)", k, i, all[k][i], up[k][i], down[k][i])
			}
		}
	}
	opt, _ := sub.Optimize(all, nab.Standard)
	if tab.Rows[0].Values[0] != opt.Score {
		t.Errorf("table %v, scorer %v", tab.Rows[0].Values[0], opt.Score)
	}
}
