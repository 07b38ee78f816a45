package nab

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tol is the tolerance for hand-computed scores: they are given to about
// 1e-6 below.
const tol = 1e-6

// NAB's profiles, as in its config/profiles.json.
const profilesJSON = `{
 "standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}},
 "reward_low_FP_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.22, "tnWeight": 1.0}},
 "reward_low_FN_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0}}
}`

var base = time.Date(2014, 4, 1, 0, 0, 0, 0, time.UTC)

// spec describes a synthetic data file: its row timestamps (5-minute steps
// from base unless times is set) and its windows as row ranges.
type spec struct {
	n       int
	times   []time.Time
	windows [][2]int
}

func (s spec) rowTimes() []time.Time {
	if s.times != nil {
		return s.times
	}
	ts := make([]time.Time, s.n)
	for i := range ts {
		ts[i] = base.Add(time.Duration(i) * 5 * time.Minute)
	}
	return ts
}

// writeCorpus writes a corpus folder laid out like NAB's and returns it.
func writeCorpus(t *testing.T, files map[string]spec) string {
	t.Helper()
	dir := t.TempDir()
	windows := map[string][][]string{}
	for key, s := range files {
		ts := s.rowTimes()
		var b strings.Builder
		b.WriteString("timestamp,value\n")
		for i, tm := range ts {
			fmt.Fprintf(&b, "%s,%d\n", tm.Format(timeLayout), i)
		}
		write(t, filepath.Join(dir, key), b.String())
		ws := [][]string{}
		for _, w := range s.windows {
			// The labels carry a microsecond suffix the data lacks.
			ws = append(ws, []string{ts[w[0]].Format(timeLayout) + ".000000", ts[w[1]].Format(timeLayout) + ".000000"})
		}
		windows[key] = ws
	}
	b, err := json.Marshal(windows)
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "labels", "combined_windows.json"), string(b))
	write(t, filepath.Join(dir, "config", "profiles.json"), profilesJSON)
	return dir
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func load(t *testing.T, files map[string]spec) *Corpus {
	t.Helper()
	c, err := LoadCorpus(writeCorpus(t, files))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// detect returns n scores, 1 on the given rows and 0 elsewhere.
func detect(n int, rows ...int) []float64 {
	s := make([]float64, n)
	for _, r := range rows {
		s[r] = 1
	}
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) <= tol }

// The hand-computed cases share one file of 40 rows: the probationary
// period is ⌊0.15·40⌋ = 6 rows (0–5), and one window spans rows 10–13,
// W = 4. σ(y) = 2/(1+e^{5y}) − 1 = tanh(−5y/2), so σ(−1) = tanh(2.5) =
// 0.986614. Standard profile: A_TP = 1, A_FP = 0.11, A_FN = 1; null = −1,
// perfect = 1, so score = 100·(raw+1)/2.
func TestNABScoreHandComputed(t *testing.T) {
	one := map[string]spec{"cat/a.csv": {n: 40, windows: [][2]int{{10, 13}}}}
	two := map[string]spec{"cat/a.csv": {n: 40, windows: [][2]int{{10, 13}, {25, 28}}}}
	cases := []struct {
		name     string
		files    map[string]spec
		profile  string
		rows     []int
		raw      float64
		score    float64
		detected int
		fps      int
		dets     int
	}{
		// Row 10, the left edge: y = −(13−10+1)/4 = −1, σ(−1)/σ(−1) = 1.
		{"left edge", one, Standard, []int{10}, 1, 100, 1, 0, 1},
		// Row 13, the right edge: y = −(13−13+1)/4 = −0.25,
		// σ = tanh(0.625) = 0.554600, /0.986614 = 0.562124;
		// score 100·1.562124/2 = 78.1062.
		{"right edge", one, Standard, []int{13}, 0.5621241, 78.106207, 1, 0, 1},
		// Rows 11 and 12: only the earlier counts, y = −(13−11+1)/4 =
		// −0.75, σ = tanh(1.875) = 0.954045, /0.986614 = 0.966989.
		{"first detection only", one, Standard, []int{11, 12}, 0.9669891, 98.349454, 1, 0, 2},
		// Row 7, before any window: −A_FP = −0.11; the window is missed,
		// −1. Raw −1.11, score 100·(−0.11)/2 = −5.5.
		{"FP before window", one, Standard, []int{7}, -1.11, -5.5, 0, 1, 1},
		// Under reward_low_FN (A_FN = 2): raw −2 − 0.11 = −2.11, null −2,
		// perfect 1: score 100·(−0.11)/3 = −3.666667.
		{"FP before window, low FN", one, RewardLowFN, []int{7}, -2.11, -3.6666667, 0, 1, 1},
		// Reward low FP (A_FP = 0.22): −1 − 0.22 = −1.22, score −11.
		{"FP before window, low FP", one, RewardLowFP, []int{7}, -1.22, -11, 0, 1, 1},
		// Row 15 after a caught window: y = (15−13)/(4−1) = 2/3,
		// σ = tanh(−5/3) = −0.931110, ·0.11 = −0.102422; raw 1 − 0.102422.
		{"FP just after window", one, Standard, []int{10, 15}, 0.8975779, 94.878897, 1, 1, 2},
		// Row 30: y = 17/3 > 3, σ = −1, ·0.11: raw 1 − 0.11 = 0.89.
		{"FP far after window", one, Standard, []int{10, 30}, 0.89, 94.5, 1, 1, 2},
		// Row 3 is in the probationary period: it neither earns nor
		// costs; the missed window costs −1, the score is 0.
		{"probation", one, Standard, []int{3}, -1, 0, 0, 0, 0},
		// No detection at all: the null detector, score 0.
		{"nothing", one, Standard, nil, -1, 0, 0, 0, 0},
		// Two windows, the second missed: 1 − 1 = 0; null −2, perfect 2:
		// score 100·2/4 = 50.
		{"missed window", two, Standard, []int{10}, 0, 50, 1, 0, 1},
		// Row 20, between the windows, is measured from the first one:
		// y = (20−13)/3 = 7/3, σ = tanh(−35/6) = −0.999983, ·0.11 =
		// −0.109998; both windows missed: raw −2.109998, score −2.74995.
		{"FP between windows", two, Standard, []int{20}, -2.1099981, -2.7499528, 0, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := load(t, tc.files)
			r, err := c.Score(Detections{"cat/a.csv": detect(40, tc.rows...)}, tc.profile, 0.5)
			if err != nil {
				t.Fatal(err)
			}
			if !near(r.Raw, tc.raw) || !near(r.Score, tc.score) {
				t.Errorf("raw %.7f score %.6f, want %.7f and %.6f", r.Raw, r.Score, tc.raw, tc.score)
			}
			if r.Detected != tc.detected || r.Missed != r.Windows-tc.detected || r.FalsePositives != tc.fps || r.Detections != tc.dets {
				t.Errorf("counts %+v, want %d detected, %d false positives, %d detections", r.Counts, tc.detected, tc.fps, tc.dets)
			}
			if len(r.Files) != 1 || !near(r.Files[0].Raw, tc.raw) || r.Files[0].Score == nil || !near(*r.Files[0].Score, tc.score) {
				t.Errorf("file results %+v, want one with raw %v and score %v", r.Files, tc.raw, tc.score)
			}
		})
	}
}

func TestNABCountsAndRates(t *testing.T) {
	c := load(t, map[string]spec{"cat/a.csv": {n: 40, windows: [][2]int{{10, 13}, {25, 28}}}})
	// Rows 10, 11 (window 1), 20 and 30 (outside), 3 (probation).
	r, err := c.Score(Detections{"cat/a.csv": detect(40, 3, 10, 11, 20, 30)}, Standard, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Windows: 1 detected of 2. Detections outside: 2. Precision 1/3,
	// recall 1/2, F1 2·(1/3·1/2)/(1/3+1/2) = 0.4.
	// Rows (34 scored): in windows 8 rows, 2 detected; outside 26, 2 detected.
	want := Counts{Windows: 2, Detected: 1, Missed: 1, FalsePositives: 2, Detections: 4,
		Precision: 1.0 / 3, Recall: 0.5, F1: 0.4, Rows: RowCounts{TP: 2, FN: 6, FP: 2, TN: 24}}
	got := r.Counts
	if got.Windows != want.Windows || got.Detected != want.Detected || got.Missed != want.Missed ||
		got.FalsePositives != want.FalsePositives || got.Detections != want.Detections || got.Rows != want.Rows ||
		!near(got.Precision, want.Precision) || !near(got.Recall, want.Recall) || !near(got.F1, want.F1) {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	// A threshold above every score: nothing detected, precision and F1
	// are 0 by convention.
	r, err = c.Score(Detections{"cat/a.csv": detect(40, 10)}, Standard, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Detections != 0 || r.Precision != 0 || r.Recall != 0 || r.F1 != 0 || r.Score != 0 {
		t.Errorf("nothing detected: %+v, score %v; want zeros", r.Counts, r.Score)
	}
}

// TestNABDuplicateAndBackwards mirrors NAB's quirks: rows are matched to
// windows by row order, so a row whose timestamp repeats an earlier one
// (and goes backwards, like machine_temperature_system_failure) inside a
// window is in the window.
func TestNABDuplicateAndBackwards(t *testing.T) {
	ts := spec{n: 40}.rowTimes()
	ts[12] = ts[7] // row 12 goes back to row 7's time
	c := load(t, map[string]spec{"cat/a.csv": {times: ts, windows: [][2]int{{10, 13}}}})
	// Row 12: y = −(13−12+1)/4 = −0.5, σ = tanh(1.25) = 0.848284,
	// /0.986614 = 0.859793.
	r, err := c.Score(Detections{"cat/a.csv": detect(40, 12)}, Standard, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !near(r.Raw, 0.8597926) || r.Detected != 1 || r.FalsePositives != 0 {
		t.Errorf("raw %.7f, counts %+v; want 0.8597926, one window detected", r.Raw, r.Counts)
	}
	// Row 7, with the same timestamp but before the window, is a false
	// positive with no window before it: −0.11, and the window is missed, −1.
	r, err = c.Score(Detections{"cat/a.csv": detect(40, 7)}, Standard, 1)
	if err != nil || !near(r.Raw, -1.11) {
		t.Errorf("raw %v, err %v; want −1.11", r.Raw, err)
	}

	// A window edge on a repeated timestamp is ambiguous: NAB's labeller
	// refuses it, and so does LoadCorpus.
	_, err = LoadCorpus(writeCorpus(t, map[string]spec{"cat/a.csv": {times: ts, windows: [][2]int{{12, 14}}}}))
	if err == nil || !strings.Contains(err.Error(), "on 2 rows") || !strings.Contains(err.Error(), "cat/a.csv") {
		t.Errorf("window on a duplicated timestamp: err %v, want one naming the file and the 2 rows", err)
	}
}

func TestNABOptimizeHandComputed(t *testing.T) {
	c := load(t, map[string]spec{"cat/a.csv": {n: 40, windows: [][2]int{{10, 13}}}})
	cases := []struct {
		name      string
		scores    map[int]float64
		threshold float64
		raw       float64
	}{
		// Thresholds tried: 1.1 (nothing) −1; 0.9 (row 30, far FP) −1.11;
		// 0.8 (+ row 10, left edge) 0.89; 0.5 (+ row 20, y = 7/3)
		// 0.780002; 0 (every row) far lower. Best 0.8, raw 0.89.
		{"best in the middle", map[int]float64{30: 0.9, 10: 0.8, 20: 0.5}, 0.8, 0.89},
		// 0.8 and 0.7 give the same raw 1 (row 11 adds nothing after row
		// 10): the higher threshold wins, as in NAB.
		{"tie keeps the higher", map[int]float64{10: 0.8, 11: 0.7}, 0.8, 1},
		// Only false positives: detecting nothing is best, at NAB's 1.1.
		{"nothing is best", map[int]float64{30: 0.9, 20: 0.8}, 1.1, -1},
		// Scores beyond 1.1: the no-detection threshold is just above the
		// highest score.
		{"scores above 1.1", map[int]float64{30: 5}, math.Nextafter(5, 6), -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := make([]float64, 40)
			for r, v := range tc.scores {
				s[r] = v
			}
			r, err := c.Optimize(Detections{"cat/a.csv": s}, Standard)
			if err != nil {
				t.Fatal(err)
			}
			if r.Threshold != tc.threshold || !near(r.Raw, tc.raw) {
				t.Errorf("threshold %v raw %v, want %v and %v", r.Threshold, r.Raw, tc.threshold, tc.raw)
			}
		})
	}
}

// TestNABOptimizeMatchesBruteForce checks the sorted sweep against scoring at
// every distinct score value, on random scores over three files.
func TestNABOptimizeMatchesBruteForce(t *testing.T) {
	c := load(t, map[string]spec{
		"x/a.csv": {n: 200, windows: [][2]int{{40, 59}, {120, 139}}},
		"x/b.csv": {n: 120, windows: [][2]int{{30, 41}}},
		"y/c.csv": {n: 90},
	})
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 20 {
		d := Detections{}
		for _, f := range c.Files {
			s := make([]float64, len(f.Times))
			for i := range s {
				// Few distinct values, so ties are common.
				s[i] = float64(rng.IntN(30)) / 29
			}
			d[f.Key] = s
		}
		for _, p := range c.Profiles {
			got, err := c.Optimize(d, p.Name)
			if err != nil {
				t.Fatal(err)
			}
			best, bestT := math.Inf(-1), 0.0
			for _, th := range append(distinct(d), 1.1) {
				r, err := c.Score(d, p.Name, th)
				if err != nil {
					t.Fatal(err)
				}
				if r.Raw > best+1e-12 || (math.Abs(r.Raw-best) <= 1e-12 && th > bestT) {
					best, bestT = r.Raw, th
				}
			}
			if !near(got.Raw, best) || got.Threshold != bestT {
				t.Fatalf("trial %d %s: Optimize threshold %v raw %v, brute force %v raw %v", trial, p.Name, got.Threshold, got.Raw, bestT, best)
			}
		}
	}
}

func distinct(d Detections) []float64 {
	seen := map[float64]bool{}
	var out []float64
	for _, s := range d {
		for _, v := range s {
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out
}

func TestNABScoreInputErrors(t *testing.T) {
	c := load(t, map[string]spec{
		"cat/a.csv": {n: 40, windows: [][2]int{{10, 13}}},
		"cat/b.csv": {n: 40},
	})
	nan := detect(40)
	nan[7] = math.NaN()
	cases := []struct {
		name string
		d    Detections
		want string
	}{
		{"missing file", Detections{"cat/a.csv": detect(40)}, "no scores for 1 of 2 files: cat/b.csv"},
		{"unknown file", Detections{"cat/a.csv": detect(40), "cat/b.csv": detect(40), "cat/z.csv": detect(3)}, "not in the corpus: cat/z.csv"},
		{"short", Detections{"cat/a.csv": detect(39), "cat/b.csv": detect(40)}, "cat/a.csv: 39 scores for 40 rows"},
		{"NaN", Detections{"cat/a.csv": nan, "cat/b.csv": detect(40)}, "cat/a.csv: row 8 (2014-04-01 00:35:00): score NaN is not finite"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Score(tc.d, Standard, 0.5); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Score: err %v, want it to contain %q", err, tc.want)
			}
			if _, err := c.Optimize(tc.d, Standard); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Optimize: err %v, want it to contain %q", err, tc.want)
			}
		})
	}
	if _, err := c.Score(Detections{"cat/a.csv": detect(40), "cat/b.csv": detect(40)}, "nope", 0.5); err == nil ||
		!strings.Contains(err.Error(), `unknown profile "nope"`) {
		t.Errorf("unknown profile: err %v", err)
	}

	// A subset scores only its files, normalised over its windows.
	sub, err := c.Subset("cat/a.csv")
	if err != nil {
		t.Fatal(err)
	}
	r, err := sub.Score(Detections{"cat/a.csv": detect(40, 10)}, Standard, 0.5)
	if err != nil || r.Score != 100 || len(r.Files) != 1 {
		t.Errorf("subset: %+v, err %v; want score 100 over one file", r, err)
	}
	if _, err := c.Subset("cat/a.csv", "cat/zz.csv"); err == nil || !strings.Contains(err.Error(), "cat/zz.csv") {
		t.Errorf("subset with an unknown file: err %v", err)
	}
}

func TestNABLoadCorpusErrors(t *testing.T) {
	good := map[string]spec{"cat/a.csv": {n: 40, windows: [][2]int{{10, 13}, {20, 25}}}}
	cases := []struct {
		name  string
		edit  func(dir string)
		wants []string
	}{
		{"bad data timestamp", func(dir string) {
			write(t, filepath.Join(dir, "cat", "a.csv"), "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01T00:05,2\n")
		}, []string{filepath.Join("cat", "a.csv") + ":3:", `"2014-04-01T00:05"`}},
		{"missing data file", func(dir string) { os.Remove(filepath.Join(dir, "cat", "a.csv")) }, []string{filepath.Join("cat", "a.csv")}},
		{"window not in data", func(dir string) {
			write(t, filepath.Join(dir, "labels", "combined_windows.json"), `{"cat/a.csv": [["2014-04-01 00:50:00.000000", "2015-01-01 00:00:00.000000"]]}`)
		}, []string{"cat/a.csv", "window 1 end", `"2015-01-01 00:00:00.000000" is not in the data file`}},
		{"windows out of order", func(dir string) {
			write(t, filepath.Join(dir, "labels", "combined_windows.json"),
				`{"cat/a.csv": [["2014-04-01 01:40:00", "2014-04-01 02:05:00"], ["2014-04-01 00:50:00", "2014-04-01 01:05:00"]]}`)
		}, []string{"window 2 starts on line 12", "not after the end of window 1 on line 27"}},
		{"profile weight missing", func(dir string) {
			write(t, filepath.Join(dir, "config", "profiles.json"), `{"standard": {"CostMatrix": {"tpWeight": 1, "fnWeight": 1}}}`)
		}, []string{"profiles.json", `profile "standard"`, "no fpWeight"}},
		{"bad key", func(dir string) {
			write(t, filepath.Join(dir, "labels", "combined_windows.json"), `{"../a.csv": []}`)
		}, []string{`file key "../a.csv"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeCorpus(t, good)
			tc.edit(dir)
			_, err := LoadCorpus(dir)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestNABReadResults(t *testing.T) {
	c := load(t, map[string]spec{
		"cat/a.csv":   {n: 40, windows: [][2]int{{10, 13}}},
		"cat/x_a.csv": {n: 40},
		"dog/b.csv":   {n: 40},
	})
	results := func(a, xa, b string) string {
		dir := t.TempDir()
		if a != "" {
			write(t, filepath.Join(dir, "cat", "det_a.csv"), a)
		}
		if xa != "" {
			write(t, filepath.Join(dir, "cat", "det_x_a.csv"), xa)
		}
		if b != "" {
			write(t, filepath.Join(dir, "dog", "b.csv"), b)
		}
		write(t, filepath.Join(dir, "det_standard_scores.csv"), "ignored\n")
		return dir
	}
	rows := func(header string, row func(i int, ts string) string) string {
		var b strings.Builder
		b.WriteString(header + "\n")
		for i, tm := range (spec{n: 40}).rowTimes() {
			b.WriteString(row(i, tm.Format(timeLayout)) + "\n")
		}
		return b.String()
	}
	plain := rows("timestamp,anomaly_score", func(i int, ts string) string {
		if i == 10 {
			return ts + ",0.9"
		}
		return ts + ",0"
	})
	nabStyle := rows("timestamp,value,anomaly_score,label", func(i int, ts string) string { return ts + ",5,0.25,0" })

	d, err := ReadResults(results(nabStyle, plain, plain), c)
	if err != nil {
		t.Fatal(err)
	}
	// det_a.csv is a.csv with a prefix, det_x_a.csv the longer x_a.csv.
	if len(d) != 3 || d["cat/a.csv"][0] != 0.25 || d["cat/x_a.csv"][10] != 0.9 || d["dog/b.csv"][10] != 0.9 {
		t.Fatalf("detections %v", d)
	}

	line := func(n int, repl string) string {
		ls := strings.Split(plain, "\n")
		ls[n-1] = repl
		return strings.Join(ls, "\n")
	}
	bad := []struct {
		name  string
		b     string
		wants []string
	}{
		{"score not a number", line(3, "2014-04-01 00:05:00,x"), []string{"b.csv:3:", `anomaly_score "x" is not a number`}},
		{"score NaN", line(4, "2014-04-01 00:10:00,NaN"), []string{"b.csv:4:", "not finite"}},
		{"wrong timestamp", line(5, "2014-04-01 00:20:00,0"), []string{"b.csv:5:", "timestamp 2014-04-01 00:20:00, want 2014-04-01 00:15:00", "row 4 of dog/b.csv"}},
		{"no score column", strings.Replace(plain, "anomaly_score", "score", 1), []string{"b.csv:1:", "lacks timestamp or anomaly_score"}},
		{"too few rows", strings.Join(strings.Split(plain, "\n")[:30], "\n"), []string{"b.csv: 29 rows, dog/b.csv has 40"}},
		{"extra field", line(6, "2014-04-01 00:25:00,0,1"), []string{"b.csv:6:", "3 fields, the header has 2"}},
		{"empty", "", []string{"b.csv: empty file"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			dir := results(plain, "", "")
			write(t, filepath.Join(dir, "dog", "b.csv"), tc.b)
			_, err := ReadResults(dir, c)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err %q does not contain %q", err, w)
				}
			}
		})
	}

	t.Run("unknown file", func(t *testing.T) {
		dir := results(plain, "", "")
		write(t, filepath.Join(dir, "dog", "zebra.csv"), plain)
		if _, err := ReadResults(dir, c); err == nil || !strings.Contains(err.Error(), "no corpus file dog/zebra.csv") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("two results for a file", func(t *testing.T) {
		dir := results(plain, "", plain)
		write(t, filepath.Join(dir, "dog", "det_b.csv"), plain)
		if _, err := ReadResults(dir, c); err == nil || !strings.Contains(err.Error(), "are both results for dog/b.csv") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("missing file is reported by Score", func(t *testing.T) {
		d, err := ReadResults(results(plain, "", plain), c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Optimize(d, Standard); err == nil || !strings.Contains(err.Error(), "no scores for 1 of 3 files: cat/x_a.csv") {
			t.Errorf("err %v", err)
		}
	})
}

func TestNABScaledSigmoid(t *testing.T) {
	for _, tc := range []struct{ y, want float64 }{
		{-1, 0.98661429815}, {-0.5, 0.84828363995}, {0, 0}, {1, -0.98661429815}, {3, -0.99999938819}, {3.0001, -1},
	} {
		if got := ScaledSigmoid(tc.y); math.Abs(got-tc.want) > 1e-10 {
			t.Errorf("σ(%v) = %.11f, want %.11f", tc.y, got, tc.want)
		}
	}
	if ProbationLength(40) != 6 || ProbationLength(5004) != 750 || ProbationLength(22695) != 750 || ProbationLength(6) != 0 {
		t.Errorf("probation lengths %d %d %d %d, want 6 750 750 0", ProbationLength(40), ProbationLength(5004), ProbationLength(22695), ProbationLength(6))
	}
}
