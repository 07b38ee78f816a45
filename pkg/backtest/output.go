package backtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/pipeline"
	"github.com/openanomaly/openanomaly/pkg/report"
)

// Threshold is the product's detection threshold: an alert on
// openanomaly_anomaly_score > 1.
const Threshold = 1.0

// Output layout under the output directory.
const (
	// SeriesFile is every emitted series as OpenMetrics text, for
	// `promtool tsdb create-blocks-from openmetrics`.
	SeriesFile = "series.om"
	// seriesDir holds one OpenMetrics file per unit, merged into
	// SeriesFile.
	seriesDir = "series"
	// ScoresDir holds ScoresDir/<pipeline>/<file>: timestamp,anomaly_score
	// for every row of a CSV file, for the NAB scorer.
	ScoresDir = "scores"
	// doneDir holds one marker per finished unit: what --resume skips.
	doneDir    = "done"
	ReportJSON = "report.json"
	ReportHTML = "report.html"
)

// marker is a finished unit: written last, so that its presence means every
// output of the unit is complete. It carries the unit's report data, so a
// resumed run rebuilds the report without replaying.
type marker struct {
	Fingerprint string           `json:"fingerprint"`
	Unit        string           `json:"unit"`
	OMFile      string           `json:"om_file"`
	Families    []familyRange    `json:"families"`
	Rules       []ruleSummary    `json:"rules"`
	Series      []report.Series  `json:"series"`
	Stats       [][]HorizonStats `json:"stats"` // one list per Series
}

// familyRange is where one metric family's samples are in a unit's
// OpenMetrics file.
type familyRange struct {
	Name string `json:"name"`
	Off  int64  `json:"off"`
	Len  int64  `json:"len"`
}

// ruleSummary is what one pipeline did over one unit.
type ruleSummary struct {
	Rule        string `json:"rule"`
	Evaluations int    `json:"evaluations"`
	Failed      int64  `json:"failed"`
	FirstError  string `json:"first_error,omitempty"`
}

func markerPath(dir, id string) string {
	return filepath.Join(dir, doneDir, safeName(id)+".json")
}

func readMarker(dir, id string) (*marker, error) {
	b, err := os.ReadFile(markerPath(dir, id))
	if err != nil {
		return nil, err
	}
	var m marker
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m.Unit != id {
		return nil, fmt.Errorf("marker of %q names %q", id, m.Unit)
	}
	return &m, nil
}

// writeFile writes a file through a temporary one and a rename, so a crash
// never leaves a half-written file under the final name.
func writeFile(path string, write func(w io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(tmp, 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// families are the emitted metric families, in the order they are written.
var families = []string{pipeline.SuffixY, pipeline.SuffixYhat, pipeline.SuffixLower, pipeline.SuffixUpper, pipeline.SuffixScore, pipeline.SuffixForecast}

// writeUnit writes a finished unit's OpenMetrics file, score CSVs and
// marker, and returns the marker.
func writeUnit(dir string, u *unit, outs []*ruleOut, season time.Duration, fp string) (*marker, error) {
	m := &marker{Fingerprint: fp, Unit: u.id, OMFile: filepath.ToSlash(filepath.Join(seriesDir, safeName(u.id)+".om"))}
	prefix := ""
	if len(outs) > 0 {
		prefix = outs[0].prefix
	}
	// Every column of every pipeline, by family, in label order.
	type col struct {
		c      *column
		stamps []int64
	}
	byFamily := map[string][]col{}
	for _, o := range outs {
		for _, c := range o.cols {
			name := strings.TrimPrefix(c.lset.Get(labels.MetricName), prefix)
			byFamily[name] = append(byFamily[name], col{c, o.stamps})
		}
	}
	err := writeFile(filepath.Join(dir, m.OMFile), func(w io.Writer) error {
		cw := &countingWriter{w: w}
		for _, fam := range families {
			cols := byFamily[fam]
			if len(cols) == 0 {
				continue
			}
			slices.SortFunc(cols, func(a, b col) int { return labels.Compare(a.c.lset, b.c.lset) })
			fmt.Fprintf(cw, "# TYPE %s%s gauge\n", prefix, fam)
			start := cw.n
			var line []byte
			for _, c := range cols {
				name := c.c.lset.Get(labels.MetricName)
				lbl := omLabels(c.c.lset)
				for i, v := range c.c.v {
					if !finite(v) {
						continue
					}
					line = append(line[:0], name...)
					line = append(line, lbl...)
					line = append(line, ' ')
					line = strconv.AppendFloat(line, v, 'g', -1, 64)
					line = append(line, ' ')
					line = appendSeconds(line, c.stamps[i])
					line = append(line, '\n')
					if _, err := cw.Write(line); err != nil {
						return err
					}
				}
			}
			m.Families = append(m.Families, familyRange{Name: prefix + fam, Off: start, Len: cw.n - start})
		}
		_, err := io.WriteString(cw, "# EOF\n")
		return err
	})
	if err != nil {
		return nil, err
	}

	for _, o := range outs {
		rsum := ruleSummary{Rule: o.rule.spec.Forecast, Evaluations: len(o.stamps), Failed: o.failed, FirstError: o.firstErr}
		if u.shard > 0 { // the pipeline's evaluations are counted once, by shard 0
			rsum.Evaluations, rsum.Failed = 0, 0
		}
		m.Rules = append(m.Rules, rsum)
		for _, s := range o.sortedSeries() {
			rs, stats := seriesReport(o, s, season)
			m.Series = append(m.Series, rs)
			m.Stats = append(m.Stats, stats)
		}
		if u.file != nil && o.rule.spec.Anomaly != nil {
			if err := writeScores(dir, u, o); err != nil {
				return nil, err
			}
		}
	}
	err = writeFile(markerPath(dir, u.id), func(w io.Writer) error {
		return json.NewEncoder(w).Encode(m)
	})
	return m, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// omLabels formats {name="value",...} without __name__, escaped as
// OpenMetrics wants.
func omLabels(lset labels.Labels) string {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	lset.Range(func(l labels.Label) {
		if l.Name == labels.MetricName {
			return
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		b.WriteString(l.Name)
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(l.Value))
		b.WriteByte('"')
	})
	b.WriteByte('}')
	return b.String()
}

// appendSeconds writes ms as seconds with three decimals, OpenMetrics'
// timestamp unit.
func appendSeconds(b []byte, ms int64) []byte {
	sec, frac := ms/1000, ms%1000
	if frac < 0 {
		sec--
		frac += 1000
	}
	b = strconv.AppendInt(b, sec, 10)
	if frac == 0 {
		return b
	}
	b = append(b, '.')
	s := strconv.FormatInt(1000+frac, 10)[1:]
	return append(b, strings.TrimRight(s, "0")...)
}

// scoreTimeLayout is the timestamp format of the score CSVs: NAB's, with
// milliseconds where there are any.
const scoreTimeLayout = "2006-01-02 15:04:05.999"

// writeScores writes timestamp,anomaly_score for every row of the unit's
// file in the range, in file order (duplicated timestamps and rows that go
// back included, as NAB's scorer wants one line per data row). With
// evaluations at every row's timestamp (the default) a row gets the score
// of the evaluation at its timestamp; with an interval, of the first
// evaluation stamped at or after it (the one that first saw it). Rows
// without a score (too little history yet, a skipped series) get 0.
func writeScores(dir string, u *unit, o *ruleOut) error {
	var s *seriesOut
	for _, cand := range o.sortedSeries() {
		if s == nil || cand.base.Get("file") == u.file.Name {
			s = cand
		}
	}
	scores := o.values(nil)
	if s != nil {
		scores = o.values(s.scor)
	}
	path := filepath.Join(dir, ScoresDir, o.rule.spec.Forecast, filepath.FromSlash(u.file.Name))
	if !strings.EqualFold(filepath.Ext(path), ".csv") {
		path += ".csv"
	}
	vals := make([]float64, len(u.rows))
	for i, t := range u.rows {
		j, _ := slices.BinarySearch(o.stamps, t)
		if j < len(o.stamps) && finite(scores[j]) {
			vals[i] = scores[j]
		}
	}
	return writeScoreCSV(path, u.rows, vals)
}

// writeScoreCSV writes timestamp,anomaly_score lines, the format
// `openanomaly nab score` reads: times in ms, one score each.
func writeScoreCSV(path string, times []int64, scores []float64) error {
	return writeFile(path, func(w io.Writer) error {
		if _, err := io.WriteString(w, "timestamp,anomaly_score\n"); err != nil {
			return err
		}
		for i, t := range times {
			if _, err := fmt.Fprintf(w, "%s,%s\n", time.UnixMilli(t).UTC().Format(scoreTimeLayout), strconv.FormatFloat(scores[i], 'g', -1, 64)); err != nil {
				return err
			}
		}
		return nil
	})
}

// seriesReport turns one input series' outputs into its chart and numbers.
func seriesReport(o *ruleOut, s *seriesOut, season time.Duration) (report.Series, []HorizonStats) {
	spec := o.rule.spec
	b := labels.NewBuilder(s.base)
	b.Del(pipeline.LabelPipeline)
	rs := report.Series{
		Rule: spec.Forecast, Labels: b.Labels().Map(),
		Timestamps: slices.Clone(o.stamps),
		Actual:     o.values(s.y), Median: o.values(s.yhat),
		Lower: o.values(s.lo), Upper: o.values(s.hi), Score: o.values(s.scor),
		Threshold: Threshold, Metrics: map[string]float64{},
	}
	if spec.Anomaly != nil && len(spec.Anomaly.Band) == 2 {
		rs.LowerLevel, rs.UpperLevel = spec.Anomaly.Band[0], spec.Anomaly.Band[1]
	}
	for i, v := range rs.Score {
		if v > Threshold {
			rs.Detections = append(rs.Detections, rs.Timestamps[i])
		}
	}
	scale, lag := SeasonalScale(rs.Timestamps, rs.Actual, season)
	rs.Metrics["mase_scale"] = scale
	rs.Metrics["mase_scale_lag_seconds"] = lag.Seconds()
	rs.Metrics["points"] = float64(countFinite(rs.Actual))
	rs.Metrics["detections"] = float64(len(rs.Detections))

	var stats []HorizonStats
	// The newest point, judged by the forecast made before it.
	levels := []float64{0.5}
	fc := [][]float64{rs.Median}
	if spec.Anomaly != nil {
		levels = []float64{rs.LowerLevel, 0.5, rs.UpperLevel}
		fc = [][]float64{rs.Lower, rs.Median, rs.Upper}
	}
	stats = append(stats, Evaluate(HorizonNext, rs.Timestamps, rs.Actual, 0, levels, fc, scale))
	for _, h := range s.horizonLabels() {
		lead, err := parseDuration(h)
		if err != nil {
			continue
		}
		keys, qs := quantileLabels(s.fc[h])
		fcs := make([][]float64, len(keys))
		for i, k := range keys {
			fcs[i] = o.values(s.fc[h][k])
		}
		stats = append(stats, Evaluate(h, rs.Timestamps, rs.Actual, lead, qs, fcs, scale))
	}
	for i := range stats {
		// JSON has no NaN: a scale that cannot be computed is 0, which
		// MASE reads as "none".
		if !finite(stats[i].Scale) {
			stats[i].Scale = 0
		}
	}
	for _, hs := range stats {
		rs.Metrics["mase_"+hs.Horizon] = hs.MASE()
		rs.Metrics["wql_"+hs.Horizon] = hs.WQL()
		for _, b := range hs.Bands {
			rs.Metrics[fmt.Sprintf("coverage_%s_%s", formatLevel(b.Nominal()), hs.Horizon)] = b.Coverage()
		}
	}
	// Numbers that cannot be computed (MASE of a constant series, WQL of
	// an all-zero one, coverage without points) are left out: JSON has no
	// NaN.
	for k, v := range rs.Metrics {
		if !finite(v) {
			delete(rs.Metrics, k)
		}
	}
	return rs, stats
}

func countFinite(vs []float64) int {
	n := 0
	for _, v := range vs {
		if finite(v) {
			n++
		}
	}
	return n
}

func formatLevel(q float64) string {
	return strconv.FormatFloat(math.Round(q*1e6)/1e6, 'f', -1, 64)
}

// writeOutputs merges the units' OpenMetrics files into SeriesFile and
// writes the report.
func writeOutputs(dir string, rep *report.Report, units []*unit, done []*marker, prefix string) error {
	err := writeFile(filepath.Join(dir, SeriesFile), func(w io.Writer) error {
		files := make([]*os.File, len(done))
		defer func() {
			for _, f := range files {
				if f != nil {
					f.Close()
				}
			}
		}()
		for i, m := range done {
			f, err := os.Open(filepath.Join(dir, filepath.FromSlash(m.OMFile)))
			if err != nil {
				return fmt.Errorf("unit %s: %w", units[i].id, err)
			}
			files[i] = f
		}
		for _, fam := range families {
			name := prefix + fam
			wrote := false
			for i, m := range done {
				for _, fr := range m.Families {
					if fr.Name != name {
						continue
					}
					if !wrote {
						fmt.Fprintf(w, "# TYPE %s gauge\n", name)
						wrote = true
					}
					if _, err := io.Copy(w, io.NewSectionReader(files[i], fr.Off, fr.Len)); err != nil {
						return err
					}
				}
			}
		}
		_, err := io.WriteString(w, "# EOF\n")
		return err
	})
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, ReportJSON), func(w io.Writer) error { return report.WriteJSON(w, rep) }); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, ReportHTML), func(w io.Writer) error { return report.WriteHTML(w, rep) })
}

// buildReport fills the report from the finished units: one chart per
// pipeline and series, a table of what each pipeline did, and one of
// forecast accuracy per pipeline and horizon.
func (o Options) buildReport(done []*marker) *report.Report {
	rep := &report.Report{Title: o.Title, Generated: time.Now().UTC(), Command: o.Command, Start: o.Start, End: o.End}
	if rep.Title == "" {
		rep.Title = "Backtest"
	}
	type ruleAgg struct {
		evals, failed, series, points, detections int64
		mase                                      map[string][]float64
		pooled                                    map[string]*HorizonStats
		horizons                                  []string
	}
	aggs := map[string]*ruleAgg{}
	var order []string
	get := func(rule string) *ruleAgg {
		a, ok := aggs[rule]
		if !ok {
			a = &ruleAgg{mase: map[string][]float64{}, pooled: map[string]*HorizonStats{}}
			aggs[rule] = a
			order = append(order, rule)
		}
		return a
	}
	var minT, maxT int64 = math.MaxInt64, math.MinInt64
	for _, m := range done {
		for _, r := range m.Rules {
			a := get(r.Rule)
			a.evals += int64(r.Evaluations)
			a.failed += r.Failed
		}
		for i, s := range m.Series {
			rep.Series = append(rep.Series, s)
			if n := len(s.Timestamps); n > 0 {
				minT, maxT = min(minT, s.Timestamps[0]), max(maxT, s.Timestamps[n-1])
			}
			a := get(s.Rule)
			a.series++
			a.points += int64(s.Metrics["points"])
			a.detections += int64(len(s.Detections))
			for _, hs := range m.Stats[i] {
				p, ok := a.pooled[hs.Horizon]
				if !ok {
					p = &HorizonStats{Horizon: hs.Horizon, Levels: hs.Levels, Bands: slices.Clone(hs.Bands)}
					for bi := range p.Bands {
						p.Bands[bi].In, p.Bands[bi].N = 0, 0
					}
					a.pooled[hs.Horizon] = p
					a.horizons = append(a.horizons, hs.Horizon)
				}
				if v := hs.MASE(); finite(v) {
					a.mase[hs.Horizon] = append(a.mase[hs.Horizon], v)
				}
				p.N += hs.N
				p.NQ += hs.NQ
				p.QLoss += hs.QLoss
				p.AbsY += hs.AbsY
				for bi := range p.Bands {
					for _, b := range hs.Bands {
						if b.Lo == p.Bands[bi].Lo && b.Hi == p.Bands[bi].Hi {
							p.Bands[bi].In += b.In
							p.Bands[bi].N += b.N
						}
					}
				}
			}
		}
	}
	if rep.Start.IsZero() && minT != math.MaxInt64 {
		rep.Start = time.UnixMilli(minT).UTC()
	}
	if rep.End.IsZero() && maxT != math.MinInt64 {
		rep.End = time.UnixMilli(maxT).UTC()
	}
	pipelines := report.Table{
		Title:   "Pipelines",
		Columns: []string{"pipeline", "evaluations", "failed evaluations", "series", "points", "detections (score > 1)"},
		Note:    "Points are the observed values emitted (openanomaly_y), one per evaluation and series; a detection is an evaluation whose openanomaly_anomaly_score exceeds 1, the product's alert threshold.",
	}
	for _, name := range order {
		a := aggs[name]
		pipelines.Rows = append(pipelines.Rows, report.Row{Name: name, Values: report.Floats{
			float64(a.evals), float64(a.failed), float64(a.series), float64(a.points), float64(a.detections)}})
	}
	rep.Summary = append(rep.Summary, pipelines)
	for _, name := range order {
		a := aggs[name]
		if len(a.horizons) == 0 {
			continue
		}
		t := report.Table{
			Title:   "Forecast accuracy: " + name,
			Columns: []string{"horizon", "points", "MASE (mean)", "MASE (geometric mean)", "WQL"},
			Note: fmt.Sprintf("MASE: mean absolute error of the median over the series' mean absolute seasonal difference (lag %s, else one evaluation) over the replayed range; "+
				"WQL: pinball loss averaged over the quantile levels, over Σ|y|, pooled over series; coverage: fraction of points inside each band, against its nominal level. "+
				"Horizon %q is the forecast of the newest point from the data before it.", o.Season, HorizonNext),
		}
		var bands []Band
		for _, h := range a.horizons {
			for _, b := range a.pooled[h].Bands {
				if !slices.ContainsFunc(bands, func(x Band) bool { return x.Lo == b.Lo && x.Hi == b.Hi }) {
					bands = append(bands, b)
				}
			}
		}
		for _, b := range bands {
			t.Columns = append(t.Columns, fmt.Sprintf("coverage %s–%s (nominal %s)", formatLevel(b.Lo), formatLevel(b.Hi), formatLevel(b.Nominal())))
		}
		for _, h := range a.horizons {
			p := a.pooled[h]
			vals := report.Floats{float64(p.N), mean(a.mase[h]), geoMean(a.mase[h]), p.WQL()}
			for _, b := range bands {
				v := math.NaN()
				for _, pb := range p.Bands {
					if pb.Lo == b.Lo && pb.Hi == b.Hi {
						v = pb.Coverage()
					}
				}
				vals = append(vals, v)
			}
			t.Rows = append(t.Rows, report.Row{Name: h, Values: vals})
		}
		rep.Summary = append(rep.Summary, t)
	}
	return rep
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// geoMean is the geometric mean of the positive values (NaN without any).
func geoMean(xs []float64) float64 {
	var s float64
	n := 0
	for _, x := range xs {
		if x > 0 {
			s += math.Log(x)
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return math.Exp(s / float64(n))
}

// parseDuration reads a horizon label (Prometheus duration syntax).
func parseDuration(s string) (time.Duration, error) {
	d, err := model.ParseDuration(s)
	return time.Duration(d), err
}
