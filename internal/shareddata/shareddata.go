// Package shareddata finds the team's shared real-world data sets (NAB,
// BOOM, ...) beside the repository checkout and reads their CSV files, for
// tests and benchmarks.
//
// Tests that need the data fail when it is missing, with a message saying
// what is missing and where it was looked for; they never skip silently.
package shareddata

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Dir returns the absolute path of the shared/data folder that lies beside
// the repository checkout: it walks up from the working directory to the
// directory holding go.mod, then looks for ../shared/data. It calls t.Fatalf
// when either is missing.
func Dir(t testing.TB) string {
	t.Helper()
	dir, err := find()
	if err != nil {
		t.Fatalf("shared data: %v", err)
	}
	return dir
}

// Path returns filepath.Join(Dir(t), elem...), failing t when the file or
// folder does not exist.
func Path(t testing.TB, elem ...string) string {
	t.Helper()
	p := filepath.Join(append([]string{Dir(t)}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shared data: %s is missing: %v", p, err)
	}
	return p
}

func find() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			return "", fmt.Errorf("no go.mod in %s or any parent, so no repository root to find ../shared/data from", wd)
		}
		root = parent
	}
	dir := filepath.Join(filepath.Dir(root), "shared", "data")
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return "", fmt.Errorf("folder %s is missing (looked beside the repository root %s); check out the shared data there", dir, root)
	}
	return dir, nil
}

// NABTimeLayout is the naive timestamp format of NAB's CSV files, read as UTC.
const NABTimeLayout = "2006-01-02 15:04:05"

// LoadNAB reads a NAB data file (header "timestamp,value", timestamps like
// "2014-07-01 00:00:00" in UTC).
func LoadNAB(path string) (times []time.Time, values []float64, err error) {
	return load(path, func(s string) (time.Time, error) {
		return time.ParseInLocation(NABTimeLayout, s, time.UTC)
	})
}

// LoadBOOM reads a BOOM series file (header "timestamp,value", RFC 3339
// timestamps). An empty value cell is read as NaN.
func LoadBOOM(path string) (times []time.Time, values []float64, err error) {
	return load(path, func(s string) (time.Time, error) {
		return time.Parse(time.RFC3339, s)
	})
}

// MustLoadNAB is LoadNAB for a file under Dir(t), failing t on any error.
func MustLoadNAB(t testing.TB, elem ...string) ([]time.Time, []float64) {
	t.Helper()
	ts, vs, err := LoadNAB(Path(t, elem...))
	if err != nil {
		t.Fatalf("shared data: %v", err)
	}
	return ts, vs
}

// MustLoadBOOM is LoadBOOM for a file under Dir(t), failing t on any error.
func MustLoadBOOM(t testing.TB, elem ...string) ([]time.Time, []float64) {
	t.Helper()
	ts, vs, err := LoadBOOM(Path(t, elem...))
	if err != nil {
		t.Fatalf("shared data: %v", err)
	}
	return ts, vs
}

func load(path string, parseTime func(string) (time.Time, error)) ([]time.Time, []float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = 2
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: header: %w", path, err)
	}
	if header[0] != "timestamp" || header[1] != "value" {
		return nil, nil, fmt.Errorf("%s: header %q, want timestamp,value", path, header)
	}
	var (
		times  []time.Time
		values []float64
	)
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		ts, err := parseTime(rec[0])
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: timestamp: %w", path, line, err)
		}
		v := math.NaN()
		if rec[1] != "" {
			v, err = strconv.ParseFloat(rec[1], 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%s:%d: value: %w", path, line, err)
			}
		}
		times = append(times, ts)
		values = append(values, v)
	}
	return times, values, nil
}
