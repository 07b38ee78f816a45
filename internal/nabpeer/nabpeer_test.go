package nabpeer

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openanomaly/openanomaly/internal/testenv"
	"github.com/openanomaly/openanomaly/pkg/nab"
)

func ts(s string) time.Time {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestGridFor(t *testing.T) {
	var times []time.Time
	for i := range 20 {
		times = append(times, ts("2014-03-01 17:04:00").Add(time.Duration(i)*5*time.Minute))
	}
	times = append(times, ts("2014-03-09 03:00:00"), ts("2014-03-09 03:00:00")) // off-grid repeats
	g := GridFor("realAWSCloudwatch/x.csv", times)
	if g.Step != 5*time.Minute || g.Phase != 4*time.Minute || g.Label() != "5m+240s" {
		t.Errorf("grid %+v %s, want 5m at 240s", g, g.Label())
	}
	if g := GridFor("realTraffic/speed_6005.csv", times); g != (Grid{Step: time.Minute}) || g.Label() != "1m+0s" {
		t.Errorf("traffic grid %+v", g)
	}
	hourly := []time.Time{ts("2011-07-01 00:15:01"), ts("2011-07-01 01:15:01"), ts("2011-07-01 02:15:01"), ts("2011-07-01 04:15:01")}
	if g := GridFor("realAdExchange/x.csv", hourly); g.Step != time.Hour || g.Phase != 15*time.Minute+time.Second || g.Label() != "1h+901s" {
		t.Errorf("hourly grid %+v %s", g, g.Label())
	}
	if f := g.Floor(ts("2014-03-09 03:00:00")); !f.Equal(ts("2014-03-09 02:59:00")) {
		t.Errorf("floor %v", f)
	}
	if c := g.Ceil(ts("2014-03-09 03:00:00")); !c.Equal(ts("2014-03-09 03:04:00")) {
		t.Errorf("ceil %v", c)
	}
	if c := g.Ceil(ts("2014-03-09 03:04:00")); !c.Equal(ts("2014-03-09 03:04:00")) {
		t.Errorf("ceil on grid %v", c)
	}
}

func TestRenderRules(t *testing.T) {
	out := RenderRules(Grid{Step: 30 * time.Minute})
	for i, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if strings.Contains(line, "GRID") || strings.Contains(line, "interval: 5m") {
			t.Errorf("line %d: placeholder left: %s", i+1, line)
		}
	}
	if n := strings.Count(out, "interval: 30m"); n != 2 {
		t.Errorf("%d groups at 30m, want 2", n)
	}
	if !strings.Contains(out, `nab_value{nab_grid="30m+0s"}[1h]`) {
		t.Errorf("selector not rendered")
	}
	// vmalert must accept the rendered file.
	bin, err := exec.LookPath("vmalert")
	if err != nil {
		t.Skip("vmalert not on PATH (Debian's victoria-metrics package has it)")
	}
	p := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(p, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(bin, "-dryRun", "-rule="+p).CombinedOutput(); err != nil {
		t.Fatalf("vmalert -dryRun: %v\n%s", err, b)
	}
}

func TestPlanReplays(t *testing.T) {
	mk := func(key, from string, n int, step time.Duration) *Series {
		s := &Series{Key: key}
		for i := range n {
			s.Times = append(s.Times, ts(from).Add(time.Duration(i)*step))
		}
		s.Grid = GridFor(key, s.Times)
		return s
	}
	plan := PlanReplays([]*Series{
		mk("a/1.csv", "2014-04-01 00:00:00", 100, 5*time.Minute),
		mk("a/2.csv", "2014-04-02 00:00:00", 100, 5*time.Minute),  // overlaps 1
		mk("a/3.csv", "2014-09-01 00:00:00", 100, 5*time.Minute),  // far: its own replay
		mk("a/4.csv", "2014-04-01 00:02:00", 100, 5*time.Minute),  // other phase
		mk("a/5.csv", "2014-04-01 00:00:00", 100, 30*time.Minute), // other step
	})
	if len(plan) != 4 {
		t.Fatalf("%d replays, want 4: %+v", len(plan), plan)
	}
	var five []Replay
	for _, r := range plan {
		if r.Grid.Label() == "5m+0s" {
			five = append(five, r)
		}
	}
	if len(five) != 2 || len(five[0].Files) != 2 || !five[0].From.Equal(ts("2014-04-01 00:00:00")) ||
		!five[0].To.Equal(ts("2014-04-02 00:00:00").Add(99*5*time.Minute)) || five[0].Evaluations() != 288+100 {
		t.Errorf("5m replays %+v", five)
	}
}

func TestAssignScores(t *testing.T) {
	evals := []time.Time{ts("2014-01-01 00:05:00"), ts("2014-01-01 00:10:00"), ts("2014-01-01 00:15:00")}
	vals := []float64{1, math.NaN(), 3}
	rows := []time.Time{
		ts("2014-01-01 00:00:00"), // before the first: 0
		ts("2014-01-01 00:05:00"), // exact
		ts("2014-01-01 00:12:00"), // the 00:10 one (NaN → 0)
		ts("2014-01-01 00:15:00"), // exact
		ts("2014-01-01 00:05:00"), // backwards: exact again
		ts("2014-01-01 01:00:00"), // after the last: the last
	}
	got, a := AssignScores(rows, evals, vals)
	want := []float64{0, 1, 0, 3, 1, 3}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d: %v, want %v", i, got[i], want[i])
		}
	}
	if a != (Assignment{Rows: 6, Exact: 3, Earlier: 2, Before: 1, MaxLag: 45 * time.Minute}) {
		t.Errorf("assignment %+v", a)
	}
}

// TestReplay runs the whole pipeline on three NAB files with a real
// VictoriaMetrics and vmalert: a 5-minute file with DST repeats and an odd
// phase, the 30-minute taxi file, and an hourly AdExchange file whose
// stamps end in :01.
func TestReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("starts VictoriaMetrics and vmalert")
	}
	if _, err := exec.LookPath("vmalert"); err != nil {
		t.Skip("vmalert is not on PATH; it comes with Debian's victoria-metrics package (.ci/run installs it)")
	}
	dataDir := filepath.Join(testenv.DataDir(t), "nab")
	vm := testenv.StartVictoriaMetrics(t, VMArgs...)
	files := []string{
		"realKnownCause/ec2_request_latency_system_failure.csv",
		"realKnownCause/nyc_taxi.csv",
		"realAdExchange/exchange-2_cpc_results.csv",
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{DataDir: dataDir, Files: files, OutDir: out, VMURL: vm.URL, WorkDir: t.TempDir(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep.Markdown())
	if err := rep.Check(); err != nil {
		t.Error(err)
	}
	if len(rep.Files) != 3 || len(rep.Replays) != 3 {
		t.Fatalf("%d files, %d replays, want 3 and 3", len(rep.Files), len(rep.Replays))
	}
	corpus, err := nab.LoadCorpus(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Files {
		s, err := ReadSeries(dataDir, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := s.Span()
		// Every row on the grid has a score of its own: the chain of rules
		// saw each other's results over the whole range. (Grid times in
		// gaps of the data may have none.)
		onGrid := map[time.Time]bool{}
		for _, x := range s.Times {
			if s.Grid.Floor(x).Equal(x) {
				onGrid[x] = true
			}
		}
		if f.Evaluations < len(onGrid) || f.Exact != f.Rows-f.Earlier || f.Before != 0 {
			t.Errorf("%s: %d score samples for %d rows on the grid; %d of %d rows evaluated at their timestamp, %d before the first",
				f.Key, f.Evaluations, len(onGrid), f.Exact, f.Rows, f.Before)
		}
		if f.Evaluations > int(s.Grid.Floor(hi).Sub(s.Grid.Ceil(lo))/s.Grid.Step)+1+int(26*time.Hour/s.Grid.Step) {
			t.Errorf("%s: %d score samples, more than the grid times of its range", f.Key, f.Evaluations)
		}
		// Rows off the grid are only the DST repeats (12 rows at 03:00,
		// after a gap of about an hour).
		if f.Key == "realKnownCause/ec2_request_latency_system_failure.csv" {
			if f.Earlier != 12 || f.MaxLag > time.Hour {
				t.Errorf("%s: %d rows off the grid (max lag %v), want the 12 DST repeats", f.Key, f.Earlier, f.MaxLag)
			}
		} else if f.Exact != f.Rows {
			t.Errorf("%s: %d of %d rows evaluated at their timestamp", f.Key, f.Exact, f.Rows)
		}
		if f.Min < 0 || math.IsInf(f.Max, 0) || math.IsNaN(f.Max) {
			t.Errorf("%s: scores in [%v, %v]", f.Key, f.Min, f.Max)
		}
		scores := rep.Detections[f.Key]
		if len(scores) != len(corpus.File(f.Key).Times) {
			t.Errorf("%s: %d scores for %d rows", f.Key, len(scores), len(corpus.File(f.Key).Times))
		}
		if _, err := os.Stat(filepath.Join(out, "recorded", f.Key)); err != nil {
			t.Error(err)
		}
		// The recorded scores are the rules' arithmetic on the data.
		{
			want := expectedScores(s)
			bad := 0
			for i, x := range s.Times {
				if !s.Grid.Floor(x).Equal(x) {
					continue
				}
				if d := math.Abs(scores[i] - want[x]); d > 1e-9*max(1, math.Abs(want[x])) {
					if bad++; bad <= 3 {
						t.Errorf("%s row %d (%v): score %v, the rules give %v", f.Key, i, x, scores[i], want[x])
					}
				}
			}
		}
	}
	// The 5-minute file is what the bands are for: they must see something.
	for _, f := range rep.Files {
		if f.Key == files[0] && f.Max < 1 {
			t.Errorf("%s: highest score %v: the value never left the band", f.Key, f.Max)
		}
	}
	for _, v := range rep.Variants {
		if len(v.Results) != 3 {
			t.Fatalf("%s: %d results", v.Name, len(v.Results))
		}
		for _, r := range v.Results {
			if math.IsNaN(r.Score) || r.Score > 100 {
				t.Errorf("%s %s: NAB score %v", v.Name, r.Profile, r.Score)
			}
		}
	}
}

// expectedScores recomputes peer-rules.yml's anomaly:score from the stored
// samples at each of them, with VictoriaMetrics' windows (t−d, t], for a
// file's rows on its grid: the check that vmalert's replay
// evaluated the rules as written, chained rules included.
func expectedScores(s *Series) map[time.Time]float64 {
	ts, vs := s.Samples()
	win := func(from, to time.Time) []float64 { // (from, to]
		i, _ := slices.BinarySearchFunc(ts, from, func(x, t time.Time) int {
			if x.After(t) {
				return 1
			}
			return -1
		})
		j, _ := slices.BinarySearchFunc(ts, to, func(x, t time.Time) int {
			if x.After(t) {
				return 1
			}
			return -1
		})
		return vs[i:j]
	}
	meanSD := func(v []float64) (float64, float64) {
		m := 0.0
		for _, x := range v {
			m += x
		}
		m /= float64(len(v))
		q := 0.0
		for _, x := range v {
			q += (x - m) * (x - m)
		}
		return m, math.Sqrt(q / float64(len(v)))
	}
	type filt struct {
		t  time.Time
		sd float64
	}
	// stddev_1h:filtered is recorded at every grid time with a sample in
	// its window, in the gaps of the data too.
	var filtered []filt
	for t := s.Grid.Ceil(ts[0]); !t.After(ts[len(ts)-1]); t = t.Add(s.Grid.Step) {
		w := win(t.Add(-time.Hour), t)
		if len(w) == 0 {
			continue
		}
		if m, sd := meanSD(w); sd > 0.5*m {
			filtered = append(filtered, filt{t, sd})
		}
	}
	out := map[time.Time]float64{}
	for k, t := range ts {
		m, _ := meanSD(win(t.Add(-time.Hour), t))
		up, lo := m+0.5*math.Abs(m), m-0.5*math.Abs(m)
		sum, n := 0.0, 0
		for _, f := range filtered {
			if f.t.After(t.Add(-26*time.Hour)) && !f.t.After(t) {
				sum += f.sd
				n++
			}
		}
		if n > 0 {
			up, lo = max(up, m+2*sum/float64(n)), min(lo, m-2*sum/float64(n))
		}
		ltUp, ltLo, lt := math.Inf(-1), math.Inf(1), false
		for _, off := range []time.Duration{167*time.Hour + 30*time.Minute, 23*time.Hour + 30*time.Minute} {
			if w := win(t.Add(-off-time.Hour), t.Add(-off)); len(w) > 0 {
				mm, sd := meanSD(w)
				ltUp, ltLo, lt = max(ltUp, mm+2*sd), min(ltLo, mm-2*sd), true
			}
		}
		if lt {
			up, lo = max(up, ltUp), min(lo, ltLo)
		}
		x := vs[k]
		out[t] = max((x-m)/max(up-m, 1e-9), (m-x)/max(m-lo, 1e-9))
	}
	return out
}
