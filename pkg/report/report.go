// Package report holds the results of a backtest in the form both outputs
// use: the JSON file for machines and the single-file HTML report for
// people. The backtest fills a Report; Write* render it.
package report

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"time"
)

// Report is one backtest run.
type Report struct {
	// Title heads the HTML page, e.g. "Backtest of nab.yml".
	Title string `json:"title"`
	// Generated is when the report was made; Command the command line that
	// made it, so that anyone can rerun it.
	Generated time.Time `json:"generated"`
	Command   string    `json:"command"`
	// Start and End are the replayed range.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Summary is the table at the top: one row per group of numbers (a
	// rule, a NAB profile, a model), columns in Columns order.
	Summary []Table `json:"summary"`
	// Series holds one chart per replayed series.
	Series []Series `json:"series"`
}

// Table is a titled table of numbers (and text) for the summary.
type Table struct {
	Title   string   `json:"title"`
	Columns []string `json:"columns"`
	Rows    []Row    `json:"rows"`
	// Note is shown under the table (what the numbers mean, how a
	// threshold was chosen).
	Note string `json:"note,omitempty"`
}

// Row is one row of a Table: a name and one value per column after the
// first (NaN shows as "–" and is null in JSON).
type Row struct {
	Name   string `json:"name"`
	Values Floats `json:"values"`
}

// Series is one replayed series and what the pipeline made of it, on the
// evaluation timestamps.
type Series struct {
	// Rule is the pipeline (record name); Labels the input series' labels
	// (for CSV input: __name__ and file).
	Rule   string            `json:"rule"`
	Labels map[string]string `json:"labels"`
	// Timestamps are the evaluation times in milliseconds since the epoch;
	// the other slices have one value per timestamp, NaN (null in JSON)
	// where the pipeline emitted nothing.
	Timestamps []int64 `json:"timestamps"`
	Actual     Floats  `json:"actual"`
	Median     Floats  `json:"median"`
	Lower      Floats  `json:"lower"`
	Upper      Floats  `json:"upper"`
	Score      Floats  `json:"score"`
	// LowerLevel and UpperLevel are the band's quantile levels, e.g. 0.05
	// and 0.95.
	LowerLevel float64 `json:"lower_level"`
	UpperLevel float64 `json:"upper_level"`
	// Threshold is the score above which a point counts as a detection.
	Threshold float64 `json:"threshold"`
	// Windows are labelled anomaly windows (NAB), shaded on the chart.
	Windows []Window `json:"windows,omitempty"`
	// Detections are the timestamps (ms) where the detector fired.
	Detections []int64 `json:"detections,omitempty"`
	// Metrics are this series' numbers (MASE, WQL, coverage, NAB), shown
	// next to its chart.
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// Window is a closed time range in milliseconds since the epoch.
type Window struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// Floats is a []float64 whose NaN and ±Inf are null in JSON (encoding/json
// refuses them), and read back as NaN.
type Floats []float64

// MarshalJSON implements json.Marshaler.
func (f Floats) MarshalJSON() ([]byte, error) {
	if f == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	b.Grow(len(f) * 8)
	b.WriteByte('[')
	for i, v := range f {
		if i > 0 {
			b.WriteByte(',')
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b.WriteString("null")
			continue
		}
		b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (f *Floats) UnmarshalJSON(data []byte) error {
	var raw []*float64
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if raw == nil {
		*f = nil
		return nil
	}
	out := make(Floats, len(raw))
	for i, p := range raw {
		out[i] = math.NaN()
		if p != nil {
			out[i] = *p
		}
	}
	*f = out
	return nil
}
