// Package nabpeer runs the vmalert peer of issue 6 on the NAB corpus: the
// z-score bands of Grafana's promql-anomaly-detection framework
// (peer-rules.yml), evaluated by a real vmalert in replay mode over the NAB
// series loaded into a real VictoriaMetrics, and scored with pkg/nab.
//
// The pipeline (Run):
//
//  1. Every NAB file is read in file order and imported through
//     /api/v1/import as nab_value{file="<category>/<file>.csv",
//     nab_grid="<step>+<phase>s"} with its original timestamps (read as UTC;
//     VictoriaMetrics runs with -retentionPeriod=100y). Where a timestamp
//     repeats (the DST hour of three AWS files, two AdExchange and two
//     traffic files, the hour machine_temperature_system_failure repeats
//     when it goes backwards) the row that comes last in the file is stored.
//  2. Each file gets an evaluation grid (GridFor): its median step, at the
//     phase most of its timestamps have, so that the evaluations fall on its
//     rows; the irregular realTraffic files are evaluated every minute.
//     Files of one grid whose ranges lie within MergeGap of each other are
//     replayed together: one vmalert -replay.timeFrom/-replay.timeTo run per
//     such range, with peer-rules.yml rendered for that grid (RenderRules),
//     reading from and writing to the same VictoriaMetrics.
//  3. The recorded anomaly:score series are read back with /api/v1/export,
//     and each row gets the score of the newest evaluation at or before its
//     timestamp (rows before the first evaluation get 0). The results are
//     written as timestamp,anomaly_score CSVs per file and scored with
//     pkg/nab under NAB's three profiles with corpus-optimised thresholds.
package nabpeer

import (
	"bufio"
	"cmp"
	_ "embed"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Rules is peer-rules.yml: the peer's recording rules as written for the
// 5-minute grid with the placeholder grid label "GRID"; RenderRules fills
// in a grid.
//
//go:embed peer-rules.yml
var Rules string

// Metric is the name the NAB values are imported under.
const Metric = "nab_value"

// ScoreMetric is the recorded series read back as each row's score.
const ScoreMetric = "anomaly:score"

// timeLayout is NAB's timestamp format: naive, read as UTC.
const timeLayout = "2006-01-02 15:04:05"

// Series is one NAB data file.
type Series struct {
	// Key is the file's key in the corpus, e.g. "realKnownCause/nyc_taxi.csv".
	Key string
	// Times and Values are the rows in file order (timestamps may repeat
	// and, in one file, go backwards).
	Times  []time.Time
	Values []float64
	// Grid is where the file is evaluated.
	Grid Grid
}

// Grid is an evaluation grid: the times Phase + k·Step since the Unix epoch.
type Grid struct {
	Step  time.Duration
	Phase time.Duration
}

// Label is the grid's nab_grid label value, e.g. "5m+240s".
func (g Grid) Label() string {
	return fmtDuration(g.Step) + "+" + strconv.FormatInt(int64(g.Phase/time.Second), 10) + "s"
}

func (g Grid) String() string { return g.Label() }

// Floor returns the latest grid time at or before t.
func (g Grid) Floor(t time.Time) time.Time {
	off := t.Sub(time.Unix(0, 0).Add(g.Phase)) % g.Step
	if off < 0 {
		off += g.Step
	}
	return t.Add(-off)
}

// Ceil returns the earliest grid time at or after t.
func (g Grid) Ceil(t time.Time) time.Time {
	f := g.Floor(t)
	if f.Equal(t) {
		return t
	}
	return f.Add(g.Step)
}

// fmtDuration writes d as Prometheus does (5m, 1h, 30m, 1m30s).
func fmtDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "" {
		return "0s"
	}
	return s
}

// TrafficStep is the evaluation interval of the realTraffic files, whose
// steps range from 1 minute to 3.5 days: their timestamps are whole
// minutes, so a 1-minute grid evaluates every row at its own timestamp.
const TrafficStep = time.Minute

// GridFor returns the evaluation grid of a file: for realTraffic files one
// minute at phase 0; otherwise the median step between consecutive rows at
// the phase (timestamp modulo step) that most rows have, ties to the
// smaller phase.
func GridFor(key string, times []time.Time) Grid {
	if strings.HasPrefix(key, "realTraffic/") {
		return Grid{Step: TrafficStep}
	}
	var steps []time.Duration
	for i := 1; i < len(times); i++ {
		if d := times[i].Sub(times[i-1]); d > 0 {
			steps = append(steps, d)
		}
	}
	if len(steps) == 0 {
		return Grid{Step: 5 * time.Minute}
	}
	slices.Sort(steps)
	step := steps[len(steps)/2]
	count := map[time.Duration]int{}
	for _, t := range times {
		p := time.Duration(t.UnixNano()) % step
		if p < 0 {
			p += step
		}
		count[p]++
	}
	best, n := time.Duration(0), -1
	for p, c := range count {
		if c > n || (c == n && p < best) {
			best, n = p, c
		}
	}
	return Grid{Step: step, Phase: best}
}

// ReadSeries reads the NAB data file key (e.g. "realKnownCause/nyc_taxi.csv")
// from the corpus folder dir and works out its grid.
func ReadSeries(dir, key string) (*Series, error) {
	p := filepath.Join(dir, filepath.FromSlash(key))
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := &Series{Key: key}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if line == 1 {
			if text != "timestamp,value" {
				return nil, fmt.Errorf("%s:1: header %q, want timestamp,value", p, text)
			}
			continue
		}
		ts, vs, ok := strings.Cut(text, ",")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want timestamp,value, got %q", p, line, text)
		}
		t, err := time.Parse(timeLayout, ts)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", p, line, err)
		}
		v, err := strconv.ParseFloat(vs, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", p, line, err)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s:%d: value %q is not finite", p, line, vs)
		}
		s.Times = append(s.Times, t)
		s.Values = append(s.Values, v)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %v", p, err)
	}
	if len(s.Times) == 0 {
		return nil, fmt.Errorf("%s: no data rows", p)
	}
	s.Grid = GridFor(key, s.Times)
	return s, nil
}

// Samples returns the series as stored: sorted by time, one value per
// timestamp, the last row of the file winning where a timestamp repeats.
func (s *Series) Samples() ([]time.Time, []float64) {
	idx := make([]int, len(s.Times))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return s.Times[a].Compare(s.Times[b]) })
	ts := make([]time.Time, 0, len(idx))
	vs := make([]float64, 0, len(idx))
	for k, i := range idx {
		if k+1 < len(idx) && s.Times[idx[k+1]].Equal(s.Times[i]) {
			continue
		}
		ts = append(ts, s.Times[i])
		vs = append(vs, s.Values[i])
	}
	return ts, vs
}

// Span returns the earliest and latest row timestamps.
func (s *Series) Span() (time.Time, time.Time) {
	return slices.MinFunc(s.Times, time.Time.Compare), slices.MaxFunc(s.Times, time.Time.Compare)
}

// intervalRE matches the groups' interval lines of peer-rules.yml.
var intervalRE = regexp.MustCompile(`(?m)^(\s+interval:\s*)5m\s*$`)

// RenderRules returns peer-rules.yml for grid g: the placeholder grid label
// "GRID" replaced by g's label and every group's `interval: 5m` by g's
// step.
func RenderRules(g Grid) string {
	out := strings.ReplaceAll(Rules, `nab_grid="GRID"`, `nab_grid=`+strconv.Quote(g.Label()))
	return intervalRE.ReplaceAllString(out, "${1}"+fmtDuration(g.Step))
}

// MergeGap is how far apart the ranges of two files of one grid may be and
// still be replayed in one vmalert run: evaluating an empty stretch costs
// less than another run, whose chained rules each wait -replay.rulesDelay.
const MergeGap = 30 * 24 * time.Hour

// Replay is one vmalert replay: the files of one grid whose ranges
// overlap or nearly do, evaluated from From to To (both grid times, the
// earliest at or before the first row and the latest at or after the last
// one).
type Replay struct {
	Grid     Grid
	From, To time.Time
	Files    []string
}

// Evaluations is the number of grid times the replay evaluates.
func (r Replay) Evaluations() int { return int(r.To.Sub(r.From)/r.Grid.Step) + 1 }

// PlanReplays groups the files by grid and, within a grid, into runs of
// ranges no more than MergeGap apart. The result is ordered by grid label
// and start.
func PlanReplays(series []*Series) []Replay {
	byGrid := map[Grid][]*Series{}
	for _, s := range series {
		byGrid[s.Grid] = append(byGrid[s.Grid], s)
	}
	var out []Replay
	for g, ss := range byGrid {
		slices.SortFunc(ss, func(a, b *Series) int {
			a0, _ := a.Span()
			b0, _ := b.Span()
			return cmp.Or(a0.Compare(b0), strings.Compare(a.Key, b.Key))
		})
		var cur *Replay
		for _, s := range ss {
			lo, hi := s.Span()
			lo, hi = g.Floor(lo), g.Ceil(hi)
			if cur != nil && !lo.After(cur.To.Add(MergeGap)) {
				if hi.After(cur.To) {
					cur.To = hi
				}
				cur.Files = append(cur.Files, s.Key)
				continue
			}
			if cur != nil {
				out = append(out, *cur)
			}
			cur = &Replay{Grid: g, From: lo, To: hi, Files: []string{s.Key}}
		}
		if cur != nil {
			out = append(out, *cur)
		}
	}
	slices.SortFunc(out, func(a, b Replay) int {
		return cmp.Or(strings.Compare(a.Grid.Label(), b.Grid.Label()), a.From.Compare(b.From))
	})
	return out
}

// Assignment says how a file's rows got their scores.
type Assignment struct {
	// Rows is the number of data rows.
	Rows int
	// Exact rows have an evaluation at their own timestamp.
	Exact int
	// Earlier rows took the newest evaluation before their timestamp
	// (rows off the grid: DST repeats, irregular steps, gaps).
	Earlier int
	// Before rows precede the first evaluation with a score and got 0.
	Before int
	// MaxLag is the largest distance from a row back to the evaluation
	// whose score it got.
	MaxLag time.Duration
}

// AssignScores gives each row (times in file order) the value of the
// newest sample at or before its timestamp: no look-ahead. Rows before the
// first sample get 0; a NaN sample counts as 0. ts must be sorted and
// without repeats.
func AssignScores(times []time.Time, ts []time.Time, vs []float64) ([]float64, Assignment) {
	out := make([]float64, len(times))
	a := Assignment{Rows: len(times)}
	for i, t := range times {
		// The first sample after t, minus one.
		j, _ := slices.BinarySearchFunc(ts, t, func(x, t time.Time) int {
			if x.After(t) {
				return 1
			}
			return -1
		})
		j--
		if j < 0 {
			a.Before++
			continue
		}
		if ts[j].Equal(t) {
			a.Exact++
		} else {
			a.Earlier++
			a.MaxLag = max(a.MaxLag, t.Sub(ts[j]))
		}
		if v := vs[j]; !math.IsNaN(v) {
			out[i] = v
		}
	}
	return out, a
}

// WriteResults writes one file's scores as dir/<category>/<file>.csv with
// the header timestamp,anomaly_score, one line per row in file order.
func WriteResults(dir, key string, times []time.Time, scores []float64) error {
	p := filepath.Join(dir, filepath.FromSlash(path.Dir(key)), path.Base(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("timestamp,anomaly_score\n")
	for i, t := range times {
		b.WriteString(t.UTC().Format(timeLayout))
		b.WriteByte(',')
		b.WriteString(strconv.FormatFloat(scores[i], 'g', -1, 64))
		b.WriteByte('\n')
	}
	return os.WriteFile(p, []byte(b.String()), 0o644)
}
