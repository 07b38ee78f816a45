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
	for _, rule := range rules {
		d, err := nab.ReadResults(filepath.Join(dir, ScoresDir, rule), c)
		if err != nil {
			return nil, fmt.Errorf("nab: pipeline %s: %w", rule, err)
		}
		if len(d) == 0 {
			continue
		}
		corpus, scope := c, "the full corpus"
		if len(d) < len(c.Files) {
			keys := make([]string, 0, len(d))
			for k := range d {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if corpus, err = c.Subset(keys...); err != nil {
				return nil, err
			}
			scope = "a subset, normalised over its own windows, not comparable with NAB's scoreboard"
		}
		t := report.Table{
			Title: "NAB: " + rule,
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
				return nil, fmt.Errorf("nab: pipeline %s: %w", rule, err)
			}
			fixed, err := corpus.Score(d, p.Name, Threshold)
			if err != nil {
				return nil, fmt.Errorf("nab: pipeline %s: %w", rule, err)
			}
			t.Rows = append(t.Rows, report.Row{Name: p.Name, Values: report.Floats{
				opt.Score, opt.Threshold, opt.Precision, opt.Recall, opt.F1,
				fixed.Score, fixed.Precision, fixed.Recall, fixed.F1, float64(fixed.FalsePositives)}})
		}
		tables = append(tables, t)
	}
	return tables, nil
}
