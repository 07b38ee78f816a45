// Package boom runs the BOOM forecasting-accuracy benchmark of
// ../shared/bench/README.md ("BOOM forecasting accuracy") on the series in
// ../shared/data/boom: rolling windows per series, MASE and WQL per series,
// each model's ratio to the protocol's seasonal naive reference, aggregated
// by geometric and arithmetic means over series. The driver is
// internal/cmd/boom (make bench-boom); BENCHMARKS.md has the results.
package boom

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openanomaly/openanomaly/internal/shareddata"
	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// Protocol is the setting for one frequency: horizon H, season M, context
// C and origins K, all in steps.
type Protocol struct {
	Freq       string        `json:"freq"`
	Step       time.Duration `json:"step"`
	H, M, C, K int
}

// Protocols are the bench README's settings, by BOOM frequency string.
var Protocols = map[string]Protocol{
	"10S": {Freq: "10S", Step: 10 * time.Second, H: 60, M: 360, C: 2048, K: 20},
	"T":   {Freq: "T", Step: time.Minute, H: 48, M: 1440, C: 2048, K: 20},
	"5T":  {Freq: "5T", Step: 5 * time.Minute, H: 48, M: 288, C: 2048, K: 20},
}

// Freqs lists the frequencies in the order reports show them.
var Freqs = []string{"10S", "T", "5T"}

// Levels are the protocol's quantile levels; Levels[MedianIndex] is 0.5.
var Levels = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}

// MedianIndex is the index of 0.5 in Levels.
const MedianIndex = 4

// ExcludedDataset is the dataset BOOM leaves out of its main pool (low
// variance); reports show every aggregate with and without it.
const ExcludedDataset = "ds-4-5T"

// Series is one BOOM variate.
type Series struct {
	Name    string // file name without .csv, e.g. ds-100-T_var001
	Dataset string // e.g. ds-100-T
	Freq    string
	Step    time.Duration
	Values  []float64
}

// LoadDir reads every series/*.csv under dir (the BOOM folder of the shared
// data), with the frequency and step of each from dir/manifest.csv. It
// checks that the manifest and the folder list the same files, that the
// timestamps are spaced by the manifest's step, that the lengths agree and
// that every frequency has a protocol. Series come back sorted by name.
func LoadDir(dir string) ([]Series, error) {
	man, err := readManifest(filepath.Join(dir, "manifest.csv"))
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "series", "*.csv"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no series in %s", filepath.Join(dir, "series"))
	}
	slices.Sort(files)
	var out []Series
	seen := map[string]bool{}
	for _, f := range files {
		rel := "series/" + filepath.Base(f)
		e, ok := man[rel]
		if !ok {
			return nil, fmt.Errorf("%s: not in manifest.csv", f)
		}
		seen[rel] = true
		p, ok := Protocols[e.freq]
		if !ok {
			return nil, fmt.Errorf("%s: frequency %q has no protocol", f, e.freq)
		}
		if p.Step != e.step {
			return nil, fmt.Errorf("%s: step %v in the manifest, the protocol's %s is %v", f, e.step, e.freq, p.Step)
		}
		ts, vs, err := shareddata.LoadBOOM(f)
		if err != nil {
			return nil, err
		}
		if len(vs) != e.length {
			return nil, fmt.Errorf("%s: %d points, the manifest says %d", f, len(vs), e.length)
		}
		for i := 1; i < len(ts); i++ {
			if d := ts[i].Sub(ts[i-1]); d != e.step {
				return nil, fmt.Errorf("%s: row %d is %v after the previous one, want %v", f, i+2, d, e.step)
			}
		}
		for i, v := range vs {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%s: row %d: value %v (the protocol has no missing values)", f, i+2, v)
			}
		}
		name := strings.TrimSuffix(filepath.Base(f), ".csv")
		out = append(out, Series{Name: name, Dataset: e.dataset, Freq: e.freq, Step: e.step, Values: vs})
	}
	for rel := range man {
		if !seen[rel] {
			return nil, fmt.Errorf("manifest.csv lists %s, which is missing", rel)
		}
	}
	return out, nil
}

type manifestEntry struct {
	dataset, freq string
	step          time.Duration
	length        int
}

func readManifest(path string) (map[string]manifestEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, c := range []string{"file", "dataset", "freq", "step_seconds", "length"} {
		if _, ok := col[c]; !ok {
			return nil, fmt.Errorf("%s: no column %q", path, c)
		}
	}
	out := map[string]manifestEntry{}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		secs, err := strconv.Atoi(rec[col["step_seconds"]])
		if err != nil {
			return nil, fmt.Errorf("%s: step_seconds %q: %w", path, rec[col["step_seconds"]], err)
		}
		n, err := strconv.Atoi(rec[col["length"]])
		if err != nil {
			return nil, fmt.Errorf("%s: length %q: %w", path, rec[col["length"]], err)
		}
		out[rec[col["file"]]] = manifestEntry{
			dataset: rec[col["dataset"]], freq: rec[col["freq"]],
			step: time.Duration(secs) * time.Second, length: n,
		}
	}
	return out, nil
}

// Origins returns the forecast origins of a series of n points, ascending:
// up to p.K contiguous windows of p.H points, the last ending at the
// series' end, each origin with at least p.C points before it. The window
// of origin o is values[o:o+H], its context values[o-C:o].
func Origins(n int, p Protocol) []int {
	var out []int
	for i := range p.K {
		o := n - (i+1)*p.H
		if o-p.C < 0 {
			break
		}
		out = append(out, o)
	}
	slices.Reverse(out)
	return out
}

// Request is the forecast request for the windows at origins: one history
// per window, its C context points, and the protocol's step, horizon and
// levels. Keys is nil, so no model keeps state between windows.
func Request(values []float64, p Protocol, origins []int) forecast.Request {
	req := forecast.Request{Step: p.Step, Horizon: p.H, Quantiles: Levels}
	for _, o := range origins {
		req.Histories = append(req.Histories, values[o-p.C:o])
	}
	return req
}

// Score holds one model's accuracy on one series.
type Score struct {
	// MASE is the mean over windows of each window's MASE; NaN when every
	// window was left out (constant context).
	MASE float64 `json:"mase"`
	// WQL is the weighted quantile loss over all windows; NaN when every
	// actual is 0.
	WQL float64 `json:"wql"`
	// Windows is how many windows were forecast; MASEWindows how many of
	// them count in MASE.
	Windows     int `json:"windows"`
	MASEWindows int `json:"mase_windows"`
	// Points is how many actuals were forecast; Below and Above how many
	// of them fell under level 0.1 and over level 0.9 (not part of the
	// protocol: the 80 % band's coverage, which explains WQL).
	Points, Below, Above int
}

// QuantileLoss is GluonTS' quantile loss of forecast f at level q for
// actual y: 2·ρ_q(y−f), twice the pinball loss, so that the WQL over many
// levels approximates the CRPS (GluonTS, GIFT-Eval and BOOM use this; the
// factor cancels in every ratio).
func QuantileLoss(y, f, q float64) float64 {
	if y >= f {
		return 2 * q * (y - f)
	}
	return 2 * (1 - q) * (f - y)
}

// MASEScale is the protocol's MASE denominator for a context: the mean
// absolute difference at lag m, or at lag 1 if that is 0. It is 0 for a
// constant context (the window is then left out of MASE).
func MASEScale(ctx []float64, m int) float64 {
	if s := meanAbsDiff(ctx, m); s > 0 {
		return s
	}
	return meanAbsDiff(ctx, 1)
}

func meanAbsDiff(x []float64, lag int) float64 {
	if lag < 1 || lag >= len(x) {
		return 0
	}
	var s float64
	for i := lag; i < len(x); i++ {
		s += math.Abs(x[i] - x[i-lag])
	}
	return s / float64(len(x)-lag)
}

// Evaluate scores forecasts fc (fc[i] for the window at origins[i],
// Values[q][h] for Levels[q]) against values. A forecast with an error or
// the wrong shape fails the series.
func Evaluate(values []float64, p Protocol, origins []int, fc []forecast.Forecast) (Score, error) {
	if len(fc) != len(origins) {
		return Score{}, fmt.Errorf("%d forecasts for %d windows", len(fc), len(origins))
	}
	var (
		sc            Score
		maseSum       float64
		qlSum, absSum float64
	)
	for wi, o := range origins {
		f := fc[wi]
		if f.Err != nil {
			return Score{}, fmt.Errorf("window at %d: %w", o, f.Err)
		}
		if len(f.Values) != len(Levels) {
			return Score{}, fmt.Errorf("window at %d: %d quantile rows, want %d", o, len(f.Values), len(Levels))
		}
		for qi := range Levels {
			if len(f.Values[qi]) != p.H {
				return Score{}, fmt.Errorf("window at %d: level %v has %d steps, want %d", o, Levels[qi], len(f.Values[qi]), p.H)
			}
			for h, v := range f.Values[qi] {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return Score{}, fmt.Errorf("window at %d: level %v step %d: forecast %v", o, Levels[qi], h+1, v)
				}
			}
		}
		sc.Windows++
		var ae, ql float64
		for h := range p.H {
			y := values[o+h]
			sc.Points++
			if y < f.Values[0][h] {
				sc.Below++
			} else if y > f.Values[len(Levels)-1][h] {
				sc.Above++
			}
			ae += math.Abs(y - f.Values[MedianIndex][h])
			absSum += math.Abs(y)
			for qi, q := range Levels {
				ql += QuantileLoss(y, f.Values[qi][h], q)
			}
		}
		qlSum += ql / float64(len(Levels))
		if scale := MASEScale(values[o-p.C:o], p.M); scale > 0 {
			maseSum += ae / float64(p.H) / scale
			sc.MASEWindows++
		}
	}
	sc.MASE, sc.WQL = math.NaN(), math.NaN()
	if sc.MASEWindows > 0 {
		sc.MASE = maseSum / float64(sc.MASEWindows)
	}
	if absSum > 0 {
		sc.WQL = qlSum / absSum
	}
	return sc, nil
}

// SeasonalNaive is the protocol's reference: the median is the value one
// season (M steps) earlier, repeated periodically beyond one season; level
// q ≠ 0.5 is the median plus the empirical quantile at q (Hyndman–Fan type
// 7, linear interpolation) of the context's seasonal errors
// x[t]−x[t−M]. Nothing else: no √k widening, no reordering (so when the
// errors' quantile at 0.4 is above 0, level 0.4 lies above the median, and
// the loss scores it as given). It needs more than M points of history
// and no missing values (BOOM has none).
type SeasonalNaive struct{ M int }

// Forecast implements forecast.Model.
func (s SeasonalNaive) Forecast(ctx context.Context, req forecast.Request) ([]forecast.Forecast, error) {
	if s.M < 1 {
		return nil, fmt.Errorf("seasonal naive: season %d", s.M)
	}
	out := make([]forecast.Forecast, len(req.Histories))
	for i, x := range req.Histories {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out[i] = s.forecast(x, req)
	}
	return out, nil
}

func (s SeasonalNaive) forecast(x []float64, req forecast.Request) forecast.Forecast {
	n := len(x)
	if n <= s.M {
		return forecast.Forecast{Err: fmt.Errorf("%w: %d points, seasonal naive with season %d needs more", forecast.ErrInsufficientData, n, s.M)}
	}
	errs := make([]float64, 0, n-s.M)
	for t := s.M; t < n; t++ {
		d := x[t] - x[t-s.M]
		if math.IsNaN(d) {
			return forecast.Forecast{Err: fmt.Errorf("seasonal naive: missing values in the history")}
		}
		errs = append(errs, d)
	}
	slices.Sort(errs)
	vals := make([][]float64, len(req.Quantiles))
	for qi, q := range req.Quantiles {
		off := 0.0
		if q != 0.5 {
			off = EmpiricalQuantile(errs, q)
		}
		row := make([]float64, req.Horizon)
		for h := range row {
			row[h] = x[n-s.M+h%s.M] + off
		}
		vals[qi] = row
	}
	return forecast.Forecast{Values: vals}
}

// EmpiricalQuantile is the type-7 quantile at q of sorted, non-empty a.
func EmpiricalQuantile(a []float64, q float64) float64 {
	h := q * float64(len(a)-1)
	lo := int(math.Floor(h))
	if lo+1 >= len(a) {
		return a[len(a)-1]
	}
	return a[lo] + (h-float64(lo))*(a[lo+1]-a[lo])
}
