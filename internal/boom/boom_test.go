package boom

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openanomaly/openanomaly/internal/shareddata"
)

// tiny is a protocol small enough to compute by hand: windows of 2, season
// 2, context 4, 2 origins.
var tiny = Protocol{Freq: "tiny", Step: 1, H: 2, M: 2, C: 4, K: 2}

// tinySeries: origins 4 and 6. Window at 4: context [1 3 2 5], actuals
// [4 6]; window at 6: context [2 5 4 6], actuals [3 7].
var tinySeries = []float64{1, 3, 2, 5, 4, 6, 3, 7}

func TestOrigins(t *testing.T) {
	if got := Origins(len(tinySeries), tiny); !slices.Equal(got, []int{4, 6}) {
		t.Errorf("origins %v, want [4 6]", got)
	}
	// Too short for K windows: only those with a full context.
	p := tiny
	p.K = 5
	if got := Origins(len(tinySeries), p); !slices.Equal(got, []int{4, 6}) {
		t.Errorf("origins %v, want [4 6]", got)
	}
	// The real protocols: the last window ends at the end, contiguous.
	p = Protocols["T"]
	got := Origins(16384, p)
	if len(got) != 20 || got[19] != 16384-48 || got[0] != 16384-20*48 {
		t.Errorf("T origins: %d, first %d, last %d", len(got), got[0], got[len(got)-1])
	}
}

func TestReferenceHandComputed(t *testing.T) {
	or := Origins(len(tinySeries), tiny)
	fc, err := SeasonalNaive{M: 2}.Forecast(context.Background(), Request(tinySeries, tiny, or))
	if err != nil {
		t.Fatal(err)
	}
	// Both contexts have seasonal errors {1, 2}: the type-7 quantile at q
	// is 1+q. Medians: one season back, [2 5] and [4 6].
	medians := [][]float64{{2, 5}, {4, 6}}
	for w := range or {
		for qi, q := range Levels {
			for h := range 2 {
				want := medians[w][h]
				if q != 0.5 {
					want += 1 + q
				}
				if got := fc[w].Values[qi][h]; math.Abs(got-want) > 1e-12 {
					t.Errorf("window %d level %v step %d: %v, want %v", w, q, h, got, want)
				}
			}
		}
	}
	sc, err := Evaluate(tinySeries, tiny, or, fc)
	if err != nil {
		t.Fatal(err)
	}
	// MASE: scale 1.5 in both contexts ((1+2)/2, (2+1)/2); mean absolute
	// errors 1.5 and 1, so 1 and 2/3, mean 5/6.
	if want := 5.0 / 6; math.Abs(sc.MASE-want) > 1e-12 {
		t.Errorf("MASE %v, want %v", sc.MASE, want)
	}
	// WQL: window 1 sums 2·q(1−q) over the 8 levels ≠ 0.5 (2.8) at both
	// steps, plus 2 and 1 at 0.5: 8.6. Window 2, step 1: 2(1−q)(2+q) (18.8)
	// plus 1; step 2: 2.8 plus 1: 23.6. (8.6+23.6)/9 over Σ|y| = 20.
	if want := 32.2 / 9 / 20; math.Abs(sc.WQL-want) > 1e-12 {
		t.Errorf("WQL %v, want %v", sc.WQL, want)
	}
	if sc.Windows != 2 || sc.MASEWindows != 2 {
		t.Errorf("windows %d/%d, want 2/2", sc.MASEWindows, sc.Windows)
	}
	// Bands [median+1.1, median+1.9]: 4 is over [3.1, 3.9]; 6, 3 and 7
	// are under [6.1, 6.9], [5.1, 5.9] and [7.1, 7.9].
	if sc.Points != 4 || sc.Below != 3 || sc.Above != 1 {
		t.Errorf("points %d, below %d, above %d; want 4, 3, 1", sc.Points, sc.Below, sc.Above)
	}
}

func TestMetricPieces(t *testing.T) {
	for _, c := range []struct{ y, f, q, want float64 }{
		{3, 1, 0.1, 0.4}, {1, 3, 0.1, 3.6}, {2, 2, 0.7, 0}, {5, 4, 0.5, 1},
	} {
		if got := QuantileLoss(c.y, c.f, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("QuantileLoss(%v, %v, %v) = %v, want %v", c.y, c.f, c.q, got, c.want)
		}
	}
	// Seasonal differences all 0: lag 1; constant: 0.
	if got := MASEScale([]float64{1, 2, 1, 2, 1}, 2); got != 1 {
		t.Errorf("scale %v, want 1 (lag 1)", got)
	}
	if got := MASEScale([]float64{3, 3, 3, 3}, 2); got != 0 {
		t.Errorf("scale of a constant %v, want 0", got)
	}
	a := []float64{1, 2, 4, 8}
	for _, c := range []struct{ q, want float64 }{{0, 1}, {0.5, 3}, {0.9, 6.8}, {1, 8}} {
		if got := EmpiricalQuantile(a, c.q); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("quantile %v: %v, want %v", c.q, got, c.want)
		}
	}
	// A window whose context is constant is left out of MASE, not WQL.
	x := []float64{5, 5, 5, 5, 6, 5}
	p := Protocol{H: 2, M: 2, C: 4, K: 1}
	or := Origins(len(x), p)
	fc, err := SeasonalNaive{M: 2}.Forecast(context.Background(), Request(x, p, or))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := Evaluate(x, p, or, fc)
	if err != nil {
		t.Fatal(err)
	}
	// Forecasts 5 at every level (errors all 0); loss 2·q·1 at step 1.
	if !math.IsNaN(sc.MASE) || sc.MASEWindows != 0 || math.Abs(sc.WQL-2*4.5/9/11) > 1e-12 {
		t.Errorf("constant context: %+v", sc)
	}
}

func TestGeoMean(t *testing.T) {
	if got := GeoMean([]float64{0.5, 2, 1}); math.Abs(got-1) > 1e-12 {
		t.Errorf("GeoMean %v, want 1", got)
	}
	if got := GeoMean([]float64{0, 1}); math.Abs(got-0.1) > 1e-12 {
		t.Errorf("GeoMean with a 0 (floored at 0.01): %v, want 0.1", got)
	}
	if !math.IsNaN(GeoMean(nil)) || !math.IsNaN(Mean(nil)) {
		t.Error("means of nothing should be NaN")
	}
}

func TestLoadDirErrors(t *testing.T) {
	mk := func(manifest string, files map[string]string) string {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "series"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "manifest.csv"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		for n, c := range files {
			if err := os.WriteFile(filepath.Join(dir, "series", n), []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	const head = "file,dataset,freq,step_seconds,length\n"
	const good = "timestamp,value\n2024-01-01T00:00:00Z,1\n2024-01-01T00:01:00Z,2\n"
	for _, c := range []struct {
		name, manifest string
		files          map[string]string
		want           string
	}{
		{"ok", head + "series/a.csv,ds-1-T,T,60,2\n", map[string]string{"a.csv": good}, ""},
		{"not in manifest", head, map[string]string{"a.csv": good}, "not in manifest"},
		{"missing file", head + "series/a.csv,ds-1-T,T,60,2\nseries/b.csv,ds-1-T,T,60,2\n", map[string]string{"a.csv": good}, "missing"},
		{"bad step", head + "series/a.csv,ds-1-5T,5T,300,2\n", map[string]string{"a.csv": good}, "after the previous"},
		{"unknown freq", head + "series/a.csv,ds-1-H,H,3600,2\n", map[string]string{"a.csv": good}, "no protocol"},
		{"length", head + "series/a.csv,ds-1-T,T,60,3\n", map[string]string{"a.csv": good}, "manifest says 3"},
		{"missing value", head + "series/a.csv,ds-1-T,T,60,2\n", map[string]string{"a.csv": "timestamp,value\n2024-01-01T00:00:00Z,\n2024-01-01T00:01:00Z,2\n"}, "no missing values"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ss, err := LoadDir(mk(c.manifest, c.files))
			if c.want == "" {
				if err != nil || len(ss) != 1 || ss[0].Name != "a" || ss[0].Dataset != "ds-1-T" || len(ss[0].Values) != 2 {
					t.Fatalf("%v %+v", err, ss)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func loadShared(t *testing.T) []Series {
	t.Helper()
	ss, err := LoadDir(shareddata.Path(t, "boom"))
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

// TestSubsetEndToEnd runs every model the driver runs by default on three
// series (one per frequency), two origins each, and checks the report.
func TestSubsetEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the shared BOOM data")
	}
	all := loadShared(t)
	if len(all) != 77 {
		t.Errorf("%d series, the README says 77", len(all))
	}
	var sub []Series
	for _, s := range all {
		if s.Name == "ds-1003-10S" || s.Name == "ds-100-T_var000" || s.Name == "ds-8-5T_var003" {
			sub = append(sub, s)
		}
	}
	if len(sub) != 3 {
		t.Fatalf("found %d of the 3 series", len(sub))
	}
	var models []ModelSpec
	for _, n := range DefaultModels {
		s, _ := SpecByName(n)
		models = append(models, s)
	}
	rep, err := Run(context.Background(), Options{Series: sub, Models: models, Origins: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Models) != len(DefaultModels) || len(rep.ExcludedMASE)+len(rep.ExcludedWQL) != 0 {
		t.Fatalf("%d models, excluded %v %v", len(rep.Models), rep.ExcludedMASE, rep.ExcludedWQL)
	}
	for _, m := range rep.Models {
		if m.Forecasts != 6 {
			t.Errorf("%s: %d forecasts, want 6", m.Name, m.Forecasts)
		}
		for i, s := range m.Scores {
			if s.Err != "" || s.Windows != 2 || !(s.MASERatio > 0) || !(s.WQLRatio > 0) || math.IsInf(float64(s.MASERatio), 0) {
				t.Errorf("%s on %s: %+v", m.Name, rep.Series[i].Name, s)
			}
		}
		a := m.Aggregates[0]
		if a.Subset != "all" || a.NMASE != 3 || a.NWQL != 3 || !(a.GeoMASE > 0) || !(a.Coverage > 0 && a.Coverage <= 1) {
			t.Errorf("%s: %+v", m.Name, a)
		}
		if len(m.Datasets) != 3 || len(m.OverDatasets) != 2 || m.OverDatasets[0].NMASE != 3 || m.OverDatasets[1].NMASE != 3 {
			t.Errorf("%s: datasets %+v, over them %+v", m.Name, m.Datasets, m.OverDatasets)
		}
		// builtin's seasonal_naive with the protocol's season has the
		// reference's median (one season back) up to the model's scaling.
		if m.Name == "seasonal_naive" {
			for i, s := range m.Scores {
				if math.Abs(float64(s.MASERatio)-1) > 1e-9 {
					t.Errorf("seasonal_naive on %s: MASE ratio %v, want 1", rep.Series[i].Name, s.MASERatio)
				}
			}
		}
	}
	if len(rep.DefaultSeasons) != 3 {
		t.Errorf("default seasons %v", rep.DefaultSeasons)
	}
	for i, m := range rep.DefaultSeasons {
		n := 0
		for _, c := range m {
			n += c
		}
		if n != 2 {
			t.Errorf("%s: seasons %v, want 2 windows", rep.Series[i].Name, m)
		}
	}
	md := rep.Markdown(true)
	for _, s := range []string{"Ratios to the reference", "| `default` | without ds-4-5T |", "| `holt_winters` | 5T |", "Speed", "ds-8-5T_var003"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	// Ratio of 3 series without ds-4-5T exists, 10S subset has one
	// series; the 5T-without subset of ds-8 too.
	if back.Models[0].Aggregates[2].NMASE != 1 {
		t.Errorf("10S subset: %+v", back.Models[0].Aggregates[2])
	}
}

// TestReferenceOnItself: the reference as a model has ratio exactly 1 on
// every series with a defined ratio, and the same exclusions.
func TestReferenceOnItself(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the shared BOOM data")
	}
	var sub []Series
	for _, s := range loadShared(t) {
		// Every dataset's first variate, and two ds-4-5T ones with a zero
		// reference error.
		if strings.HasSuffix(s.Name, "_var000") || !strings.Contains(s.Name, "_var") ||
			s.Name == "ds-4-5T_var002" || s.Name == "ds-4-5T_var015" {
			sub = append(sub, s)
		}
	}
	ref, _ := SpecByName("reference")
	rep, err := Run(context.Background(), Options{Series: sub, Models: []ModelSpec{ref}, Origins: 4})
	if err != nil {
		t.Fatal(err)
	}
	m := rep.Models[0]
	n := 0
	for i, s := range m.Scores {
		name := rep.Series[i].Name
		if slices.Contains(rep.ExcludedMASE, name) != math.IsNaN(float64(s.MASERatio)) {
			t.Errorf("%s: excluded %v, ratio %v", name, rep.ExcludedMASE, s.MASERatio)
		}
		if !math.IsNaN(float64(s.MASERatio)) {
			n++
			if s.MASERatio != 1 {
				t.Errorf("%s: MASE ratio %v, want exactly 1", name, s.MASERatio)
			}
		}
		if !math.IsNaN(float64(s.WQLRatio)) && s.WQLRatio != 1 {
			t.Errorf("%s: WQL ratio %v, want exactly 1", name, s.WQLRatio)
		}
	}
	for _, a := range m.Aggregates {
		if a.NMASE > 0 && (a.GeoMASE != 1 || a.MeanMASE != 1 || a.GeoWQL != 1 || a.MeanWQL != 1) {
			t.Errorf("%+v, want ratios exactly 1", a)
		}
	}
	if n < 8 || !slices.Contains(rep.ExcludedMASE, "ds-4-5T_var002") || !slices.Contains(rep.ExcludedWQL, "ds-4-5T_var015") {
		t.Errorf("%d ratios, excluded %v / %v", n, rep.ExcludedMASE, rep.ExcludedWQL)
	}
}
