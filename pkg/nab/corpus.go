// Package nab scores anomaly detectors on the Numenta Anomaly Benchmark
// (NAB, github.com/numenta/NAB, corpus v1.1) exactly as NAB's own scorer
// does (nab/sweeper.py, nab/scorer.py, nab/runner.py), so that a score
// computed here can be put next to NAB's published scoreboard.
//
// A detector gives one anomaly score per data row of every corpus file
// (Detections). A row is a detection when its score is at least the
// threshold. Per file, the first min(⌊0.15·N⌋, 750) rows are a probationary
// period and neither earn nor cost anything. Each labelled window earns
// A_TP·σ(y)/σ(−1) for its earliest detection, where y = −(R−i+1)/W is the
// row's relative position in a window of rows L..R, W = R−L+1, and
// σ(y) = 2/(1+e^{5y}) − 1 (−1 for y > 3); later detections in the same
// window add nothing, and a window without a detection costs −A_FN. Every
// detection outside all windows costs A_FP·σ(|i−R'|/(W'−1)) when a window
// of rows L'..R' (width W') ends before it (nearly free right after the
// window, up to −A_FP far from it) and −A_FP when none does. The raw score is the sum over the
// corpus; it is normalised as 100·(raw − null)/(perfect − null), where the
// null detector misses every window (null = −A_FN·windows) and the perfect
// one catches every window on its first row (perfect = A_TP·windows).
//
// Rows are matched to windows by row order, as NAB does: a window starts at
// the row whose timestamp equals its start and ends at the row whose
// timestamp equals its end. LoadCorpus checks, as NAB's labeller does, that
// each window edge matches exactly one row, so duplicated timestamps (the
// DST repeats of the AWS files) and a file that goes backwards in time
// (machine_temperature_system_failure) are handled like NAB handles them.
//
// Typical use: LoadCorpus once, fill Detections (ReadResults reads them
// from CSV files), then Optimize for NAB's corpus-optimised threshold or
// Score for a fixed one, per profile. A loaded Corpus is never modified, so
// it may be scored from several goroutines at once.
package nab

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// File is one data file of the corpus: its row timestamps in file order and
// its labelled windows.
type File struct {
	// Key names the file inside the corpus, e.g. "realKnownCause/nyc_taxi.csv".
	Key string
	// Times are the rows' timestamps in file order (naive, read as UTC).
	// They may repeat and, in one NAB file, go backwards.
	Times []time.Time
	// Windows are the labelled anomaly windows in row order.
	Windows []Window
	// Probation is the number of leading rows that are not scored:
	// min(⌊0.15·len(Times)⌋, 750).
	Probation int
}

// Window is a labelled anomaly window: rows First..Last of its file,
// inclusive, whose timestamps are Start and End.
type Window struct {
	Start, End  time.Time
	First, Last int
}

// Width is the number of rows in the window.
func (w Window) Width() int { return w.Last - w.First + 1 }

// Profile is a scoring profile of NAB's config/profiles.json: the weights of
// a true positive, a false positive and a false negative (NAB never uses
// the true-negative weight).
type Profile struct {
	Name       string
	TP, FP, FN float64
}

// The three profiles of NAB's scoreboard.
const (
	Standard    = "standard"
	RewardLowFP = "reward_low_FP_rate"
	RewardLowFN = "reward_low_FN_rate"
)

// Corpus is a loaded NAB corpus: data files, windows and profiles.
type Corpus struct {
	// Dir is the folder the corpus was loaded from.
	Dir string
	// Files are the corpus files sorted by key.
	Files []*File
	// Profiles are the scoring profiles, the three of NAB's scoreboard
	// first (standard, reward_low_FP_rate, reward_low_FN_rate), then any
	// others by name.
	Profiles []Profile

	byKey map[string]*File
}

// probationPercent and maxProbation give NAB's probationary period: 15% of a
// file's rows, at most 15% of 5000 rows (nab/sweeper.py).
const (
	probationPercent = 0.15
	maxProbation     = 750
)

// ProbationLength returns the probationary period of a file with n rows,
// min(⌊0.15·n⌋, 750).
func ProbationLength(n int) int {
	return min(int(math.Floor(probationPercent*float64(n))), maxProbation)
}

// LoadCorpus reads a NAB corpus folder: labels/combined_windows.json (whose
// timestamps carry a ".000000" suffix the data files lack),
// config/profiles.json and, for every file the windows name, the data CSV
// "<category>/<file>.csv" (header timestamp,value) for its row timestamps.
// Data files the labels do not name are ignored, as NAB ignores them.
func LoadCorpus(dir string) (*Corpus, error) {
	windowsPath := filepath.Join(dir, "labels", "combined_windows.json")
	rawWindows, err := readWindows(windowsPath)
	if err != nil {
		return nil, err
	}
	profiles, err := readProfiles(filepath.Join(dir, "config", "profiles.json"))
	if err != nil {
		return nil, err
	}
	c := &Corpus{Dir: dir, Profiles: profiles, byKey: map[string]*File{}}
	keys := make([]string, 0, len(rawWindows))
	for k := range rawWindows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		if err := checkKey(key); err != nil {
			return nil, fmt.Errorf("%s: %w", windowsPath, err)
		}
		dataPath := filepath.Join(dir, filepath.FromSlash(key))
		times, err := readDataTimes(dataPath)
		if err != nil {
			return nil, err
		}
		f := &File{Key: key, Times: times, Probation: ProbationLength(len(times))}
		if f.Windows, err = matchWindows(times, rawWindows[key]); err != nil {
			return nil, fmt.Errorf("%s: windows of %s: %w", windowsPath, key, err)
		}
		c.Files = append(c.Files, f)
		c.byKey[key] = f
	}
	if len(c.Files) == 0 {
		return nil, fmt.Errorf("%s: no files", windowsPath)
	}
	return c, nil
}

// File returns the corpus file with the given key, or nil.
func (c *Corpus) File(key string) *File { return c.byKey[key] }

// Keys returns the keys of the corpus files, sorted.
func (c *Corpus) Keys() []string {
	keys := make([]string, len(c.Files))
	for i, f := range c.Files {
		keys[i] = f.Key
	}
	return keys
}

// Windows returns the number of labelled windows in the corpus (116 in NAB
// v1.1), over which scores are normalised.
func (c *Corpus) Windows() int {
	n := 0
	for _, f := range c.Files {
		n += len(f.Windows)
	}
	return n
}

// Rows returns the number of data rows in the corpus.
func (c *Corpus) Rows() int {
	n := 0
	for _, f := range c.Files {
		n += len(f.Times)
	}
	return n
}

// Profile returns the profile with the given name.
func (c *Corpus) Profile(name string) (Profile, error) {
	for _, p := range c.Profiles {
		if p.Name == name {
			return p, nil
		}
	}
	names := make([]string, len(c.Profiles))
	for i, p := range c.Profiles {
		names[i] = p.Name
	}
	return Profile{}, fmt.Errorf("unknown profile %q (have %s)", name, strings.Join(names, ", "))
}

// Subset returns a corpus of only the named files (sharing their data with
// c), for scoring a detector on part of NAB. Its scores are normalised over
// the windows of those files alone, so they are not comparable with the
// published full-corpus scoreboard.
func (c *Corpus) Subset(keys ...string) (*Corpus, error) {
	sub := &Corpus{Dir: c.Dir, Profiles: c.Profiles, byKey: map[string]*File{}}
	var unknown []string
	for _, k := range keys {
		f := c.byKey[k]
		if f == nil {
			unknown = append(unknown, k)
			continue
		}
		if sub.byKey[k] == nil {
			sub.byKey[k] = f
			sub.Files = append(sub.Files, f)
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("not in the corpus: %s", strings.Join(unknown, ", "))
	}
	if len(sub.Files) == 0 {
		return nil, errors.New("empty subset")
	}
	slices.SortFunc(sub.Files, func(a, b *File) int { return strings.Compare(a.Key, b.Key) })
	return sub, nil
}

// checkKey rejects keys that are not "<category>/<file>.csv" inside the
// corpus folder.
func checkKey(key string) error {
	dir, file := path.Split(key)
	if dir == "" || strings.Contains(strings.TrimSuffix(dir, "/"), "/") || !strings.HasSuffix(file, ".csv") ||
		path.Clean(key) != key || strings.HasPrefix(key, "../") {
		return fmt.Errorf("file key %q is not <category>/<file>.csv", key)
	}
	return nil
}

func readWindows(p string) (map[string][][]string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var w map[string][][]string
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return w, nil
}

func readProfiles(p string) ([]Profile, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var raw map[string]struct {
		CostMatrix map[string]*float64 `json:"CostMatrix"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	var profiles []Profile
	for name, r := range raw {
		pr := Profile{Name: name}
		for _, w := range []struct {
			key string
			dst *float64
		}{{"tpWeight", &pr.TP}, {"fpWeight", &pr.FP}, {"fnWeight", &pr.FN}} {
			v := r.CostMatrix[w.key]
			if v == nil {
				return nil, fmt.Errorf("%s: profile %q: CostMatrix has no %s", p, name, w.key)
			}
			if math.IsNaN(*v) || math.IsInf(*v, 0) || *v < 0 {
				return nil, fmt.Errorf("%s: profile %q: %s %v is not a finite weight ≥ 0", p, name, w.key, *v)
			}
			*w.dst = *v
		}
		if pr.TP == 0 && pr.FN == 0 {
			return nil, fmt.Errorf("%s: profile %q: tpWeight and fnWeight are both 0, so scores cannot be normalised", p, name)
		}
		profiles = append(profiles, pr)
	}
	if len(profiles) == 0 {
		return nil, fmt.Errorf("%s: no profiles", p)
	}
	rank := func(name string) int {
		switch name {
		case Standard:
			return 0
		case RewardLowFP:
			return 1
		case RewardLowFN:
			return 2
		}
		return 3
	}
	slices.SortFunc(profiles, func(a, b Profile) int {
		if d := rank(a.Name) - rank(b.Name); d != 0 {
			return d
		}
		return strings.Compare(a.Name, b.Name)
	})
	return profiles, nil
}

// timeLayouts are the timestamp forms accepted in data, label and score
// files: NAB's naive "2006-01-02 15:04:05" (with the labels' optional
// fraction) and RFC 3339.
var timeLayouts = []string{"2006-01-02 15:04:05.999999999", time.RFC3339Nano}

func parseTime(s string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("timestamp %q is neither \"YYYY-MM-DD HH:MM:SS\" nor RFC 3339", s)
}

// readDataTimes reads the timestamp column of a NAB data file.
func readDataTimes(p string) ([]time.Time, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var times []time.Time
	err = scanCSV(f, p, func(header []string) (func(line int, rec []string) error, error) {
		ti := slices.Index(header, "timestamp")
		if ti < 0 {
			return nil, fmt.Errorf("header %q has no timestamp column", strings.Join(header, ","))
		}
		return func(line int, rec []string) error {
			t, err := parseTime(rec[ti])
			if err != nil {
				return err
			}
			times = append(times, t)
			return nil
		}, nil
	})
	if err != nil {
		return nil, err
	}
	if len(times) == 0 {
		return nil, fmt.Errorf("%s: no data rows", p)
	}
	return times, nil
}

// scanCSV reads a plain CSV file (NAB's files are unquoted) line by line:
// the first line is the header, given to start, which returns the function
// called for every data record. Errors are prefixed with name:line. Blank
// lines are skipped; every record must have the header's field count.
func scanCSV(r io.Reader, name string, start func(header []string) (func(line int, rec []string) error, error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	var (
		row    func(int, []string) error
		fields int
		line   int
	)
	for sc.Scan() {
		line++
		text := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		rec := strings.Split(text, ",")
		for i := range rec {
			rec[i] = strings.TrimSpace(rec[i])
		}
		if row == nil {
			var err error
			if row, err = start(rec); err != nil {
				return fmt.Errorf("%s:%d: %w", name, line, err)
			}
			fields = len(rec)
			continue
		}
		if len(rec) != fields {
			return fmt.Errorf("%s:%d: %d fields, the header has %d", name, line, len(rec), fields)
		}
		if err := row(line, rec); err != nil {
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: line %d: %w", name, line+1, err)
	}
	if row == nil {
		return fmt.Errorf("%s: empty file, no header", name)
	}
	return nil
}

// matchWindows turns the windows' [start, end] timestamps into row ranges.
// Like NAB's labeller it requires each edge to match exactly one row; like
// NAB's sweeper, which walks the rows once and enters the next listed
// window at its start row, it requires windows in row order without
// overlap.
func matchWindows(times []time.Time, raw [][]string) ([]Window, error) {
	index := func(s string) (time.Time, int, error) {
		t, err := parseTime(s)
		if err != nil {
			return t, 0, err
		}
		at, n := -1, 0
		for i, rt := range times {
			if rt.Equal(t) {
				if at < 0 {
					at = i
				}
				n++
			}
		}
		switch n {
		case 0:
			return t, 0, fmt.Errorf("timestamp %q is not in the data file", s)
		case 1:
			return t, at, nil
		}
		return t, 0, fmt.Errorf("timestamp %q is on %d rows of the data file, not one", s, n)
	}
	windows := make([]Window, 0, len(raw))
	for k, lim := range raw {
		if len(lim) != 2 {
			return nil, fmt.Errorf("window %d has %d timestamps, want [start, end]", k+1, len(lim))
		}
		var (
			w   Window
			err error
		)
		if w.Start, w.First, err = index(lim[0]); err != nil {
			return nil, fmt.Errorf("window %d start: %w", k+1, err)
		}
		if w.End, w.Last, err = index(lim[1]); err != nil {
			return nil, fmt.Errorf("window %d end: %w", k+1, err)
		}
		if w.Last < w.First {
			return nil, fmt.Errorf("window %d ends on line %d of the data file, before its start on line %d", k+1, w.Last+2, w.First+2)
		}
		if k > 0 && w.First <= windows[k-1].Last {
			return nil, fmt.Errorf("window %d starts on line %d of the data file, not after the end of window %d on line %d",
				k+1, w.First+2, k, windows[k-1].Last+2)
		}
		windows = append(windows, w)
	}
	return windows, nil
}
