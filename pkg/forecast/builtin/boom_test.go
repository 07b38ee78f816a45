package builtin

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openanomaly/openanomaly/internal/shareddata"
	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// boomProtocol is the bench README's per-frequency setting.
type boomProtocol struct {
	step          time.Duration
	horizon, m, c int
}

var boomProtocols = map[string]boomProtocol{
	"10S": {10 * time.Second, 60, 360, 2048},
	"T":   {time.Minute, 48, 1440, 2048},
	"5T":  {5 * time.Minute, 48, 288, 2048},
}

var boomLevels = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}

// boomResult is one model's accuracy on one series.
type boomResult struct {
	mase, wql float64
	windows   int
}

// evalBOOM runs the BOOM protocol with k origins on one series.
func evalBOOM(t testing.TB, model forecast.Model, values []float64, p boomProtocol, k int) boomResult {
	t.Helper()
	n := len(values)
	req := forecast.Request{Step: p.step, Horizon: p.horizon, Quantiles: boomLevels}
	var origins []int
	for i := range k {
		o := n - (i+1)*p.horizon
		if o-p.c < 0 {
			break
		}
		origins = append(origins, o)
		req.Histories = append(req.Histories, values[o-p.c:o])
	}
	fc, err := model.Forecast(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var res boomResult
	var maseSum, qlSum, absSum float64
	for wi, o := range origins {
		if fc[wi].Err != nil {
			t.Fatalf("origin %d: %v", o, fc[wi].Err)
		}
		ctx := values[o-p.c : o]
		scale := meanAbsDiff(ctx, p.m)
		if scale == 0 {
			scale = meanAbsDiff(ctx, 1)
		}
		if scale == 0 {
			continue // constant context: window left out
		}
		var mae float64
		for h := range p.horizon {
			y := values[o+h]
			mae += math.Abs(y - fc[wi].Values[4][h])
			absSum += math.Abs(y)
			for qi, q := range boomLevels {
				f := fc[wi].Values[qi][h]
				qlSum += 2 * ((q * math.Max(y-f, 0)) + (1-q)*math.Max(f-y, 0)) / float64(len(boomLevels))
			}
		}
		maseSum += mae / float64(p.horizon) / scale
		res.windows++
	}
	if res.windows > 0 {
		res.mase = maseSum / float64(res.windows)
	}
	res.wql = math.NaN() // undefined when every actual is 0
	if absSum > 0 {
		res.wql = qlSum / absSum
	}
	return res
}

func meanAbsDiff(x []float64, lag int) float64 {
	if lag >= len(x) {
		return 0
	}
	var s float64
	for i := lag; i < len(x); i++ {
		s += math.Abs(x[i] - x[i-lag])
	}
	return s / float64(len(x)-lag)
}

func boomFreq(file string) string {
	base := strings.TrimSuffix(filepath.Base(file), ".csv")
	base, _, _ = strings.Cut(base, "_var")
	return base[strings.LastIndex(base, "-")+1:]
}

// boomRow is the default model's accuracy on one series relative to
// seasonal naive with the protocol's season.
type boomRow struct {
	name         string
	rMASE, rWQL  float64 // ratios default / seasonal naive; rWQL NaN when undefined
	dMASE, sMASE float64
}

// runBOOM evaluates the default model and seasonal naive on the named series
// (files under boom/series) with k origins each, logs one line per series,
// and returns the rows; series whose reference error is 0 are left out.
func runBOOM(t *testing.T, names []string, k int) []boomRow {
	t.Helper()
	snaive := map[string]forecast.Model{}
	for f, p := range boomProtocols {
		snaive[f] = newModel(t, config.BuiltinConfig{Algorithm: config.AlgoSeasonalNaive, Season: modelDuration(time.Duration(p.m) * p.step)})
	}
	def := Default()
	var rows []boomRow
	for _, name := range names {
		freq := boomFreq(name)
		p, ok := boomProtocols[freq]
		if !ok {
			t.Fatalf("%s: no protocol for frequency %q", name, freq)
		}
		_, vs := shareddata.MustLoadBOOM(t, "boom", "series", name)
		d := evalBOOM(t, def, vs, p, k)
		s := evalBOOM(t, snaive[freq], vs, p, k)
		// A reference error within rounding of 0 (sparse series that are
		// constant in every window) makes the ratio meaningless.
		if s.mase < 1e-9 {
			t.Logf("%s: reference error 0, left out", name)
			continue
		}
		r := boomRow{name, d.mase / s.mase, d.wql / s.wql, d.mase, s.mase}
		t.Logf("%-24s MASE %.3f / %.3f = %.3f  WQL ratio %.3f", r.name, r.dMASE, r.sMASE, r.rMASE, r.rWQL)
		rows = append(rows, r)
	}
	return rows
}

// boomSummary returns the geometric-mean MASE and WQL ratios of rows whose
// name passes keep, and how many there were.
func boomSummary(rows []boomRow, keep func(name string) bool) (mase, wql float64, n int) {
	var ms, ws []float64
	for _, r := range rows {
		if !keep(r.name) {
			continue
		}
		ms = append(ms, r.rMASE)
		if !math.IsNaN(r.rWQL) { // all actuals 0: WQL undefined
			ws = append(ws, r.rWQL)
		}
	}
	return geoMean(ms), geoMean(ws), len(ms)
}

// boomSubset is a fixed sample of BOOM for CI: every dataset and frequency,
// the plain and the sparse, and the series where the default model loses
// to seasonal naive (ds-8-5T_var010, var016), so that the threshold is not
// met by easy series alone.
var boomSubset = []string{
	"ds-0-T.csv", "ds-100-T_var000.csv", "ds-1001-T_var000.csv", "ds-1001-T_var008.csv", "ds-1001-T_var015.csv",
	"ds-1002-5T.csv", "ds-4-5T_var001.csv", "ds-4-5T_var010.csv", "ds-8-5T_var001.csv", "ds-8-5T_var010.csv",
	"ds-8-5T_var016.csv", "ds-81-5T.csv",
	"ds-1003-10S.csv", "ds-54-10S_var000.csv", "ds-54-10S_var002.csv",
}

// TestBOOMSubset checks the default model's accuracy on boomSubset with the
// bench README's protocol (20 origins per series): the geometric mean of
// its MASE over seasonal naive's must stay below boomSubsetMax. Measured
// 0.736 (WQL ratio 0.802) when written; the margin allows small tuning
// changes, not a model that is no better than the baseline.
func TestBOOMSubset(t *testing.T) {
	const boomSubsetMax = 0.80
	rows := runBOOM(t, boomSubset, 20)
	if len(rows) != len(boomSubset) {
		t.Fatalf("%d of %d series evaluated", len(rows), len(boomSubset))
	}
	mase, wql, n := boomSummary(rows, func(string) bool { return true })
	t.Logf("subset, %d series: geomean MASE ratio %.3f, WQL ratio %.3f", n, mase, wql)
	if !(mase < boomSubsetMax) {
		t.Errorf("geomean MASE ratio to seasonal naive %.3f, want < %v", mase, boomSubsetMax)
	}
}

// TestBOOMFull runs the protocol on all 77 series when OA_BOOM_FULL is set
// (OA_BOOM_K origins per series, default 20; a few seconds), reports every
// series and the means by frequency, and checks the overall means. When
// written: all 70 with a reference error, 0.450 (WQL 0.532); without the
// sparse ds-4-5T series, 45 series, 0.638 (WQL 0.697).
func TestBOOMFull(t *testing.T) {
	if os.Getenv("OA_BOOM_FULL") == "" {
		t.Skip("set OA_BOOM_FULL=1 to run the whole BOOM protocol")
	}
	k := 20
	if v := os.Getenv("OA_BOOM_K"); v != "" {
		var err error
		if k, err = strconv.Atoi(v); err != nil || k < 1 {
			t.Fatalf("OA_BOOM_K=%q: want a positive integer", v)
		}
	}
	files, err := filepath.Glob(filepath.Join(shareddata.Path(t, "boom", "series"), "*.csv"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no BOOM series found (%v)", err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	slices.Sort(names)
	rows := runBOOM(t, names, k)
	for _, c := range []struct {
		name string
		keep func(string) bool
		max  float64
	}{
		{"10S", func(n string) bool { return boomFreq(n) == "10S" }, 0},
		{"T", func(n string) bool { return boomFreq(n) == "T" }, 0},
		{"5T", func(n string) bool { return boomFreq(n) == "5T" }, 0},
		{"all", func(string) bool { return true }, 0.52},
		{"all w/o ds-4", func(n string) bool { return !strings.HasPrefix(n, "ds-4-5T") }, 0.72},
	} {
		mase, wql, n := boomSummary(rows, c.keep)
		t.Logf("%-12s n=%2d geomean MASE ratio %.3f  WQL ratio %.3f", c.name, n, mase, wql)
		if c.max > 0 && !(mase < c.max) {
			t.Errorf("%s: geomean MASE ratio %.3f, want < %v", c.name, mase, c.max)
		}
	}
}

func geoMean(x []float64) float64 {
	var s float64
	for _, v := range x {
		// A model can be exact on a sparse series where the reference is
		// not; floor the ratio so one such series cannot zero the mean.
		s += math.Log(math.Max(v, 0.01))
	}
	return math.Exp(s / float64(len(x)))
}
