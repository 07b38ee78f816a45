package backtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// NABTimeLayout is NAB's timestamp format: naive, read as UTC (as NAB does).
const NABTimeLayout = "2006-01-02 15:04:05"

// Row is one sample of a CSV file: a timestamp in milliseconds and a value
// (NaN for an empty cell).
type Row struct {
	T int64
	V float64
}

// CSVFile is a loaded CSV file: its rows sorted by time with duplicated
// timestamps resolved, and what was fixed on the way.
type CSVFile struct {
	// Path is the file on disk; Name its path relative to the --csv
	// directory it was found in (the base name for a file given
	// directly), slash-separated: the value of the `file` label.
	Path, Name string
	Rows       []Row
	// Times are the rows' timestamps (ms) in file order, duplicates and
	// all: the rows a detector's output must have, one each (NAB).
	Times []int64
	// Duplicates counts rows dropped because a later row (in file order)
	// had the same timestamp; FirstDuplicateLine is the line of the first
	// such later row.
	Duplicates, FirstDuplicateLine int
	// Backwards counts rows whose timestamp is before the previous row's;
	// FirstBackwardsLine is the line of the first one.
	Backwards, FirstBackwardsLine int
}

// ParseTimestamp reads a CSV timestamp: NAB's `YYYY-MM-DD HH:MM:SS` (naive,
// read as UTC, optionally with fractional seconds), RFC 3339 (BOOM's
// `2024-12-22T19:13:00Z`), or Unix seconds with an optional fraction
// (`1565799000.825`).
func ParseTimestamp(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, errors.New("empty timestamp")
	}
	if c := s[0]; c >= '0' && c <= '9' && !strings.ContainsAny(s, "-:T ") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) {
			return time.Time{}, fmt.Errorf("timestamp %q: not a date, RFC 3339 time or Unix seconds", s)
		}
		// Milliseconds, rounded: float seconds are not exact in binary.
		return time.UnixMilli(int64(math.Round(f * 1000))).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", s, time.UTC); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("timestamp %q: not YYYY-MM-DD HH:MM:SS, RFC 3339 or Unix seconds", s)
}

// ReadCSV loads a `timestamp,value` file. The header line is optional;
// columns after the second are ignored. Rows are sorted by time (stable, so
// rows with one timestamp keep their file order) and of rows with the same
// timestamp the last in the file is kept, as a store keeps the last write.
// A file without data rows is an error.
func ReadCSV(path, name string) (*CSVFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out, err := parseCSV(f, path)
	if err != nil {
		return nil, err
	}
	out.Path, out.Name = path, name
	return out, nil
}

func parseCSV(r io.Reader, path string) (*CSVFile, error) {
	type lineRow struct {
		Row
		line int
	}
	var rows []lineRow
	out := &CSVFile{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	started := false // a non-empty line was seen: the header can only be first
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		ts, val, ok := strings.Cut(text, ",")
		if !ok {
			return nil, fmt.Errorf("%s:%d: want timestamp,value, got %q", path, line, text)
		}
		val, _, _ = strings.Cut(val, ",")
		first := !started
		started = true
		if first && isHeader(ts) {
			continue
		}
		t, err := ParseTimestamp(ts)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		v := math.NaN()
		if val = strings.TrimSpace(val); val != "" {
			v, err = strconv.ParseFloat(val, 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: value %q is not a number", path, line, val)
			}
		}
		ms := t.UnixMilli()
		if n := len(rows); n > 0 && ms < rows[n-1].T {
			if out.Backwards == 0 {
				out.FirstBackwardsLine = line
			}
			out.Backwards++
		}
		rows = append(rows, lineRow{Row{ms, v}, line})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", path, line+1, err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%s: no data rows (want a timestamp,value header and rows)", path)
	}
	out.Times = make([]int64, len(rows))
	for i, r := range rows {
		out.Times[i] = r.T
	}
	if out.Backwards > 0 {
		slices.SortStableFunc(rows, func(a, b lineRow) int { return cmpInt(a.T, b.T) })
	}
	out.Rows = make([]Row, 0, len(rows))
	for i, r := range rows {
		if i+1 < len(rows) && rows[i+1].T == r.T {
			if out.Duplicates == 0 || rows[i+1].line < out.FirstDuplicateLine {
				out.FirstDuplicateLine = rows[i+1].line
			}
			out.Duplicates++
			continue
		}
		out.Rows = append(out.Rows, r.Row)
	}
	return out, nil
}

// isHeader reports whether a first line's first cell is a header: anything
// that is not a timestamp (`timestamp`, `time`, `ts`).
func isHeader(cell string) bool {
	_, err := ParseTimestamp(cell)
	return err != nil
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// FindCSV expands --csv arguments: a file stands for itself (named by its
// base name), a directory for every *.csv below it (named by the path
// relative to it). Two files with one name are an error.
func FindCSV(args []string) ([][2]string, error) {
	var out [][2]string // path, name
	seen := map[string]string{}
	add := func(path, name string) error {
		if other, dup := seen[name]; dup {
			return fmt.Errorf("csv files %s and %s both get the file label %q", other, path, name)
		}
		seen[name] = path
		out = append(out, [2]string{path, name})
		return nil
	}
	for _, arg := range args {
		st, err := os.Stat(arg)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			if err := add(arg, filepath.Base(arg)); err != nil {
				return nil, err
			}
			continue
		}
		found := 0
		var walk func(dir, rel string, depth int) error
		walk = func(dir, rel string, depth int) error {
			if depth > 32 {
				return fmt.Errorf("%s: directories nested too deep (a symlink loop?)", dir)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				return err
			}
			for _, e := range entries {
				p := filepath.Join(dir, e.Name())
				r := path.Join(rel, e.Name())
				// Stat follows symlinks, so a folder of links to the
				// corpus' folders works.
				st, err := os.Stat(p)
				if err != nil {
					return err
				}
				switch {
				case st.IsDir():
					if err := walk(p, r, depth+1); err != nil {
						return err
					}
				case strings.EqualFold(filepath.Ext(p), ".csv"):
					found++
					if err := add(p, r); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if err := walk(arg, "", 0); err != nil {
			return nil, err
		}
		if found == 0 {
			return nil, fmt.Errorf("%s: no .csv files in the directory", arg)
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[1], b[1]) })
	return out, nil
}
