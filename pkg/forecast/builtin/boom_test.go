package builtin

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"sort"
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

// TestBOOMExplore runs the full protocol on every series when
// OA_BOOM_FULL is set (about a minute); it is for measuring, not CI.
func TestBOOMExplore(t *testing.T) {
	if os.Getenv("OA_BOOM_FULL") == "" {
		return
	}
	k, _ := strconv.Atoi(os.Getenv("OA_BOOM_K"))
	if k == 0 {
		k = 20
	}
	dir := shareddata.Path(t, "boom", "series")
	files, _ := filepath.Glob(filepath.Join(dir, "*.csv"))
	snaiveByFreq := map[string]forecast.Model{}
	for f, p := range boomProtocols {
		m, err := New(config.BuiltinConfig{Algorithm: config.AlgoSeasonalNaive, Season: modelDuration(time.Duration(p.m) * p.step)})
		if err != nil {
			t.Fatal(err)
		}
		snaiveByFreq[f] = m
	}
	def := Default()
	type row struct {
		name         string
		rMASE, rWQL  float64
		dMASE, sMASE float64
	}
	var rows []row
	for _, f := range files {
		if strings.HasSuffix(f, "manifest.csv") {
			continue
		}
		freq := boomFreq(f)
		p := boomProtocols[freq]
		_, vs, err := shareddata.LoadBOOM(f)
		if err != nil {
			t.Fatal(err)
		}
		d := evalBOOM(t, def, vs, p, k)
		s := evalBOOM(t, snaiveByFreq[freq], vs, p, k)
		// A reference error within rounding of 0 (sparse series that are
		// constant in every window) makes the ratio meaningless.
		if s.mase < 1e-9 {
			t.Logf("%s: reference error 0, left out", filepath.Base(f))
			continue
		}
		rows = append(rows, row{filepath.Base(f), d.mase / s.mase, d.wql / s.wql, d.mase, s.mase})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].name < rows[j].name })
	byFreq := map[string][]float64{}
	byFreqW := map[string][]float64{}
	for _, r := range rows {
		t.Logf("%-24s MASE %.3f / %.3f = %.3f  WQL ratio %.3f", r.name, r.dMASE, r.sMASE, r.rMASE, r.rWQL)
		fr := boomFreq(r.name)
		byFreq[fr] = append(byFreq[fr], r.rMASE)
		byFreq["all"] = append(byFreq["all"], r.rMASE)
		if !strings.HasPrefix(r.name, "ds-4-5T") {
			byFreq["all w/o ds-4"] = append(byFreq["all w/o ds-4"], r.rMASE)
			if !math.IsNaN(r.rWQL) {
				byFreqW["all w/o ds-4"] = append(byFreqW["all w/o ds-4"], r.rWQL)
			}
		}
		if !math.IsNaN(r.rWQL) { // all actuals 0: WQL undefined
			byFreqW[fr] = append(byFreqW[fr], r.rWQL)
			byFreqW["all"] = append(byFreqW["all"], r.rWQL)
		}
	}
	for _, fr := range []string{"10S", "T", "5T", "all", "all w/o ds-4"} {
		t.Logf("%-12s n=%2d geomean MASE ratio %.3f  WQL ratio %.3f", fr, len(byFreq[fr]), geoMean(byFreq[fr]), geoMean(byFreqW[fr]))
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
