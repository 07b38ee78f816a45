package nab

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openanomaly/openanomaly/internal/shareddata"
)

// The full NAB corpus, loaded once for the tests that need it.
var (
	corpusOnce sync.Once
	corpus     *Corpus
	corpusErr  error
)

func nabCorpus(t *testing.T) *Corpus {
	t.Helper()
	dir := shareddata.Path(t, "nab")
	corpusOnce.Do(func() { corpus, corpusErr = LoadCorpus(dir) })
	if corpusErr != nil {
		t.Fatal(corpusErr)
	}
	return corpus
}

func TestNABCorpus(t *testing.T) {
	c := nabCorpus(t)
	// The shared data's README: 58 files, 365,558 rows, 116 windows.
	if len(c.Files) != 58 || c.Rows() != 365558 || c.Windows() != 116 {
		t.Fatalf("%d files, %d rows, %d windows; want 58, 365558, 116", len(c.Files), c.Rows(), c.Windows())
	}
	if got := c.Keys()[0]; got != "artificialNoAnomaly/art_daily_no_noise.csv" {
		t.Errorf("first key %q", got)
	}
	names := []string{}
	for _, p := range c.Profiles {
		names = append(names, fmt.Sprintf("%s:%v/%v/%v", p.Name, p.TP, p.FP, p.FN))
	}
	if got, want := strings.Join(names, " "), "standard:1/0.11/1 reward_low_FP_rate:1/0.22/1 reward_low_FN_rate:1/0.11/2"; got != want {
		t.Errorf("profiles %s, want %s", got, want)
	}
	// nyc_taxi: 10,320 rows, probation min(1548, 750) = 750.
	f := c.File("realKnownCause/nyc_taxi.csv")
	if f == nil || len(f.Times) != 10320 || f.Probation != 750 || len(f.Windows) != 5 {
		t.Fatalf("nyc_taxi: %+v", f)
	}
	// machine_temperature goes backwards once (the hour of 2014-01-07
	// 02:00 twice); its windows are still in row order.
	m := c.File("realKnownCause/machine_temperature_system_failure.csv")
	back := 0
	for i := 1; i < len(m.Times); i++ {
		if m.Times[i].Before(m.Times[i-1]) {
			back++
		}
	}
	if back != 1 || len(m.Windows) != 4 {
		t.Errorf("machine temperature: %d backward steps and %d windows, want 1 and 4", back, len(m.Windows))
	}
	// art_flatline has no window.
	if w := c.File("artificialNoAnomaly/art_flatline.csv").Windows; len(w) != 0 {
		t.Errorf("art_flatline windows %v", w)
	}
}

// constant returns detections with every row scored v.
func constant(c *Corpus, v float64) Detections {
	d := c.NewDetections()
	for _, s := range d {
		for i := range s {
			s[i] = v
		}
	}
	return d
}

func TestNABNullAndPerfect(t *testing.T) {
	c := nabCorpus(t)
	null := constant(c, 0)
	perfect := constant(c, 0)
	for _, f := range c.Files {
		for _, w := range f.Windows {
			perfect[f.Key][w.First] = 1
		}
	}
	for _, p := range c.Profiles {
		r, err := c.Optimize(null, p.Name)
		if err != nil {
			t.Fatal(err)
		}
		// The null detector is 0 by definition: −A_FN per window.
		if r.Score != 0 || r.Raw != -p.FN*116 || r.Threshold != 1.1 || r.Detections != 0 {
			t.Errorf("%s null: score %v raw %v threshold %v detections %d; want 0, %v, 1.1, 0", p.Name, r.Score, r.Raw, r.Threshold, r.Detections, -p.FN*116)
		}
		r, err = c.Optimize(perfect, p.Name)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(r.Score-100) > 1e-9 || r.Threshold != 1 || r.Detected != 116 || r.FalsePositives != 0 || r.F1 != 1 {
			t.Errorf("%s perfect: score %v threshold %v counts %+v; want 100 at 1, every window, no FP", p.Name, r.Score, r.Threshold, r.Counts)
		}
		// At a fixed threshold too.
		r, err = c.Score(perfect, p.Name, 0.5)
		if err != nil || math.Abs(r.Score-100) > 1e-9 {
			t.Errorf("%s perfect at 0.5: score %v, err %v", p.Name, r.Score, err)
		}
	}
	// Firing on every row: every window caught at its left edge, but
	// hundreds of thousands of false positives.
	r, err := c.Score(constant(c, 1), Standard, 1)
	if err != nil || r.Detected != 116 || r.Score > -1000 {
		t.Errorf("always firing: score %v, counts %+v, err %v; want every window and a large negative score", r.Score, r.Counts, err)
	}
}

// TestNABRelativeEntropy scores the Relative Entropy detector's published
// output: NAB's scoreboard gives 54.6 / 47.6 / 58.8.
func TestNABRelativeEntropy(t *testing.T) {
	c := nabCorpus(t)
	d, err := ReadResults(shareddata.Path(t, "nab", "results", "relativeEntropy"), c)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{Standard: 54.6, RewardLowFP: 47.6, RewardLowFN: 58.8}
	for _, p := range c.Profiles {
		r, err := c.Optimize(d, p.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got := math.Round(r.Score*10) / 10; got != want[p.Name] {
			t.Errorf("%s: %.4f (threshold %v), want %.1f", p.Name, r.Score, r.Threshold, want[p.Name])
		}
		// The same threshold as a fixed one gives the same result.
		fixed, err := c.Score(d, p.Name, r.Threshold)
		if err != nil || fixed.Score != r.Score {
			t.Errorf("%s at fixed %v: %v, err %v; want %v", p.Name, r.Threshold, fixed.Score, err, r.Score)
		}
		t.Logf("%s: %.4f at threshold %v, %d/%d windows, %d FP", p.Name, r.Score, r.Threshold, r.Detected, r.Windows, r.FalsePositives)
	}

	// The same scores as plain timestamp,anomaly_score CSVs named like the
	// data files give the same numbers.
	dir := t.TempDir()
	for _, f := range c.Files {
		var b strings.Builder
		b.WriteString("timestamp,anomaly_score\n")
		for i, tm := range f.Times {
			fmt.Fprintf(&b, "%s,%v\n", tm.Format(timeLayout), d[f.Key][i])
		}
		p := filepath.Join(dir, filepath.FromSlash(f.Key))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	plain, err := ReadResults(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	a, err1 := c.Optimize(d, Standard)
	b, err2 := c.Optimize(plain, Standard)
	if err1 != nil || err2 != nil || a.Score != b.Score {
		t.Errorf("plain CSVs: %v vs %v (errors %v, %v)", b.Score, a.Score, err1, err2)
	}
}
