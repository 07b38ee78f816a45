package backtest

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/openanomaly/openanomaly/pkg/nab"
	"github.com/openanomaly/openanomaly/pkg/report"
)

// nabTables scores each anomaly pipeline's score CSVs with NAB (pkg/nab):
// under every profile with the threshold optimised over the corpus and with
// the product's threshold, 1 (a row with a score ≥ 1 is a detection), plus
// NAB's precision, recall and F1 over windows. When the replay covered only
// some of the corpus' files, the scores are over those files' windows (a
// subset, not comparable with NAB's scoreboard) and the note says so. It
// also shades each file's labelled windows on its charts.
func nabTables(dir string, c *nab.Corpus, rep *report.Report, rules []string) ([]report.Table, error) {
	for i := range rep.Series {
		s := &rep.Series[i]
		f := c.File(s.Labels["file"])
		if f == nil {
			continue
		}
		for _, w := range f.Windows {
			s.Windows = append(s.Windows, report.Window{Start: f.Times[w.First].UnixMilli(), End: f.Times[w.Last].UnixMilli()})
		}
	}
	var tables []report.Table
	var all nab.Detections
	for _, rule := range rules {
		d, err := nab.ReadResults(filepath.Join(dir, ScoresDir, rule), c)
		if err != nil {
			return nil, fmt.Errorf("nab: pipeline %s: %w", rule, err)
		}
		if len(d) == 0 {
			continue
		}
		t, err := nabTable(c, "NAB: "+rule, d)
		if err != nil {
			return nil, fmt.Errorf("nab: pipeline %s: %w", rule, err)
		}
		tables = append(tables, t)
		all = maxDetections(all, d)
	}
	if len(tables) > 1 {
		// Pipelines that split the corpus between them (one per sampling
		// interval, say) are one detector: each row gets the highest score
		// any pipeline gave it.
		if err := writeDetections(filepath.Join(dir, ScoresDir, AllPipelines), c, all); err != nil {
			return nil, err
		}
		t, err := nabTable(c, "NAB: all pipelines", all)
		if err != nil {
			return nil, err
		}
		t.Note = "Each row scored by the highest score any pipeline gave it (" + ScoresDir + "/" + AllPipelines + "/). " + t.Note
		tables = append(tables, t)
	}
	return tables, nil
}

// AllPipelines names the scores folder of every anomaly pipeline together
// (the row-wise maximum), written when a NAB replay has more than one.
const AllPipelines = "all-pipelines"

// maxDetections returns a with b folded in row by row (max); a may be nil.
func maxDetections(a, b nab.Detections) nab.Detections {
	if a == nil {
		a = nab.Detections{}
	}
	for k, sb := range b {
		sa, ok := a[k]
		if !ok {
			a[k] = slices.Clone(sb)
			continue
		}
		for i := range min(len(sa), len(sb)) {
			sa[i] = max(sa[i], sb[i])
		}
	}
	return a
}

// writeDetections writes d as timestamp,anomaly_score CSVs, one per corpus
// file, as writeScores does.
func writeDetections(dir string, c *nab.Corpus, d nab.Detections) error {
	for k, scores := range d {
		f := c.File(k)
		if f == nil {
			continue
		}
		times := make([]int64, len(f.Times))
		for i, t := range f.Times {
			times[i] = t.UnixMilli()
		}
		err := writeScoreCSV(filepath.Join(dir, filepath.FromSlash(k)), times, scores)
		if err != nil {
			return err
		}
	}
	return nil
}

// nabTable scores d on c, or on the subset of c's files d covers.
func nabTable(c *nab.Corpus, title string, d nab.Detections) (report.Table, error) {
	corpus, scope := c, "the full corpus"
	if len(d) < len(c.Files) {
		keys := make([]string, 0, len(d))
		for k := range d {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var err error
		if corpus, err = c.Subset(keys...); err != nil {
			return report.Table{}, err
		}
		scope = "a subset, normalised over its own windows, not comparable with NAB's scoreboard"
	}
	t := report.Table{
		Title: title,
		Columns: []string{"profile", "score (optimised threshold)", "threshold", "precision", "recall", "F1",
			"score (threshold 1)", "precision", "recall", "F1", "false positives (threshold 1)"},
		Note: fmt.Sprintf("NAB score of %d files with %d windows (%s): 100 is perfect, 0 a detector that never fires. "+
			"The optimised threshold is the best over the corpus per profile, as NAB's published numbers are; threshold 1 is the product's alert threshold. "+
			"Precision, recall and F1 are over windows (a window with a detection is a true positive; every detection outside a window a false positive).",
			len(corpus.Files), corpus.Windows(), scope),
	}
	for _, p := range corpus.Profiles {
		opt, err := corpus.Optimize(d, p.Name)
		if err != nil {
			return report.Table{}, err
		}
		fixed, err := corpus.Score(d, p.Name, Threshold)
		if err != nil {
			return report.Table{}, err
		}
		t.Rows = append(t.Rows, report.Row{Name: p.Name, Values: report.Floats{
			opt.Score, opt.Threshold, opt.Precision, opt.Recall, opt.F1,
			fixed.Score, fixed.Precision, fixed.Recall, fixed.F1, float64(fixed.FalsePositives)}})
	}
	return t, nil
}
