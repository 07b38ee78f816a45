package testenv

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// nabTimeLayout is NAB's timestamp format: naive, read as UTC (as NAB does).
const nabTimeLayout = "2006-01-02 15:04:05"

// DataDir returns the shared data folder: $OPENANOMALY_DATA_DIR if set, else
// ../shared/data next to the module root (the directory with go.mod, found
// by walking up from the working directory). It fails the test if the
// folder is missing.
func DataDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("OPENANOMALY_DATA_DIR"); d != "" {
		if _, err := os.Stat(d); err != nil {
			t.Fatalf("testenv: OPENANOMALY_DATA_DIR: %v", err)
		}
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			t.Fatalf("testenv: no go.mod in %s or above it, so the shared data folder (../shared/data next to the module) cannot be found", wd)
		}
		root = parent
	}
	d := filepath.Join(filepath.Dir(root), "shared", "data")
	if _, err := os.Stat(d); err != nil {
		t.Fatalf("testenv: the shared data folder is missing: %v; it must sit next to the repository (%s) or be named by OPENANOMALY_DATA_DIR", err, filepath.Join("..", "shared", "data"))
	}
	return d
}

// LoadNAB reads a NAB data file, relPath relative to the nab folder (e.g.
// "realKnownCause/machine_temperature_system_failure.csv"). Timestamps are
// read as UTC. The result is sorted by time with one value per timestamp:
// where a timestamp repeats (NAB's DST duplicates, the hour that
// machine_temperature_system_failure repeats), the row that comes last in
// the file wins.
func LoadNAB(t testing.TB, relPath string) ([]time.Time, []float64) {
	t.Helper()
	path := filepath.Join(DataDir(t), "nab", relPath)
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("testenv: NAB file: %v (see ../shared/data/nab/README.md for the file list)", err)
	}
	defer f.Close()

	type row struct {
		t time.Time
		v float64
	}
	var rows []row
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if line == 1 || text == "" { // header: timestamp,value
			continue
		}
		ts, vs, ok := strings.Cut(text, ",")
		if !ok {
			t.Fatalf("testenv: %s:%d: want timestamp,value, got %q", path, line, text)
		}
		tm, err := time.Parse(nabTimeLayout, ts)
		if err != nil {
			t.Fatalf("testenv: %s:%d: %v", path, line, err)
		}
		v, err := strconv.ParseFloat(vs, 64)
		if err != nil {
			t.Fatalf("testenv: %s:%d: %v", path, line, err)
		}
		rows = append(rows, row{tm, v})
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("testenv: read %s: %v", path, err)
	}
	if len(rows) == 0 {
		t.Fatalf("testenv: %s has no data rows", path)
	}
	// Stable, so rows with the same timestamp keep their file order and the
	// last of each run is the last in the file.
	slices.SortStableFunc(rows, func(a, b row) int { return a.t.Compare(b.t) })
	ts := make([]time.Time, 0, len(rows))
	vs := make([]float64, 0, len(rows))
	for i, r := range rows {
		if i+1 < len(rows) && rows[i+1].t.Equal(r.t) {
			continue
		}
		ts = append(ts, r.t)
		vs = append(vs, r.v)
	}
	return ts, vs
}

// Shift moves every timestamp by the same amount, so that from maps to to
// (for example the end of a NAB window to the present).
func Shift(ts []time.Time, from, to time.Time) []time.Time {
	d := to.Sub(from)
	out := make([]time.Time, len(ts))
	for i, x := range ts {
		out[i] = x.Add(d)
	}
	return out
}
