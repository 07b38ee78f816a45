package backtest

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTimestamp(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2014-07-01 00:30:00", time.Date(2014, 7, 1, 0, 30, 0, 0, time.UTC)},
		{"2011-08-24 12:00:01", time.Date(2011, 8, 24, 12, 0, 1, 0, time.UTC)},
		{"2024-12-22T19:13:00Z", time.Date(2024, 12, 22, 19, 13, 0, 0, time.UTC)},
		{"2024-12-22T20:13:00+01:00", time.Date(2024, 12, 22, 19, 13, 0, 0, time.UTC)},
		{"1565799000.825", time.UnixMilli(1565799000825).UTC()},
		{"1565799000", time.Unix(1565799000, 0).UTC()},
	} {
		got, err := ParseTimestamp(tc.in)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseTimestamp(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2014-13-01 00:00:00", "12:00"} {
		if _, err := ParseTimestamp(bad); err == nil {
			t.Errorf("ParseTimestamp(%q) accepted", bad)
		}
	}
}

func writeCSV(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadCSVQuirks(t *testing.T) {
	dir := t.TempDir()
	// Line 4 repeats line 3's time (DST in NAB): the last wins. Line 6
	// goes back an hour (machine_temperature): sorted in.
	p := writeCSV(t, dir, "q.csv", "timestamp,value\n"+
		"2014-03-09 01:00:00,1\n"+
		"2014-03-09 03:00:00,2\n"+
		"2014-03-09 03:00:00,3\n"+
		"2014-03-09 04:00:00,4\n"+
		"2014-03-09 02:00:00,5\n"+
		"2014-03-09 05:00:00,\n")
	f, err := ReadCSV(p, "q.csv")
	if err != nil {
		t.Fatal(err)
	}
	h := func(hh int) int64 { return time.Date(2014, 3, 9, hh, 0, 0, 0, time.UTC).UnixMilli() }
	want := []Row{{h(1), 1}, {h(2), 5}, {h(3), 3}, {h(4), 4}, {h(5), math.NaN()}}
	if len(f.Rows) != len(want) {
		t.Fatalf("rows = %v, want %v", f.Rows, want)
	}
	for i, r := range f.Rows {
		if r.T != want[i].T || math.Float64bits(r.V) != math.Float64bits(want[i].V) && !(math.IsNaN(r.V) && math.IsNaN(want[i].V)) {
			t.Errorf("row %d = %v, want %v", i, r, want[i])
		}
	}
	if f.Duplicates != 1 || f.FirstDuplicateLine != 4 {
		t.Errorf("duplicates = %d at line %d, want 1 at line 4", f.Duplicates, f.FirstDuplicateLine)
	}
	if f.Backwards != 1 || f.FirstBackwardsLine != 6 {
		t.Errorf("backwards = %d at line %d, want 1 at line 6", f.Backwards, f.FirstBackwardsLine)
	}

	// Duplicates that meet only after sorting: the later line wins.
	p = writeCSV(t, dir, "d.csv", "2014-01-07 02:00:00,1\n2014-01-07 03:00:00,2\n2014-01-07 02:00:00,9\n")
	f, err = ReadCSV(p, "d.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Rows) != 2 || f.Rows[0].V != 9 || f.Duplicates != 1 || f.FirstDuplicateLine != 3 {
		t.Errorf("no header, duplicate after sorting: rows %v, duplicates %d at %d", f.Rows, f.Duplicates, f.FirstDuplicateLine)
	}
}

func TestReadCSVErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, want string }{
		{"empty.csv", "", "empty.csv: no data rows"},
		{"header.csv", "timestamp,value\n", "header.csv: no data rows"},
		{"value.csv", "timestamp,value\n2014-01-01 00:00:00,abc\n", "value.csv:2: value \"abc\" is not a number"},
		{"time.csv", "timestamp,value\n2014-01-01 00:00:00,1\nnoon,2\n", "time.csv:3: timestamp \"noon\""},
		{"cols.csv", "timestamp,value\n2014-01-01 00:00:00\n", "cols.csv:2: want timestamp,value"},
	} {
		p := writeCSV(t, dir, tc.name, tc.content)
		_, err := ReadCSV(p, tc.name)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestFindCSV(t *testing.T) {
	dir := t.TempDir()
	writeCSV(t, dir, "a/x.csv", "1,1\n")
	writeCSV(t, dir, "b/y.csv", "1,1\n")
	writeCSV(t, dir, "b/notes.txt", "")
	got, err := FindCSV([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0][1] != "a/x.csv" || got[1][1] != "b/y.csv" {
		t.Errorf("FindCSV = %v", got)
	}
	if _, err := FindCSV([]string{dir, filepath.Join(dir, "a")}); err != nil {
		t.Errorf("distinct names: %v", err)
	}
	if _, err := FindCSV([]string{filepath.Join(dir, "a", "x.csv"), filepath.Join(dir, "a")}); err == nil || !strings.Contains(err.Error(), `both get the file label "x.csv"`) {
		t.Errorf("same name twice: err = %v", err)
	}
	if _, err := FindCSV([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Error("missing path accepted")
	}
}
