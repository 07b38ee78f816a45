package shareddata

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadReal(t *testing.T) {
	ts, vs := MustLoadNAB(t, "nab", "realKnownCause", "machine_temperature_system_failure.csv")
	if len(ts) != len(vs) || len(ts) < 20000 {
		t.Fatalf("NAB machine temperature: %d times, %d values; want the same count, > 20000", len(ts), len(vs))
	}
	if want := time.Date(2013, 12, 2, 21, 15, 0, 0, time.UTC); !ts[0].Equal(want) {
		t.Errorf("first NAB timestamp %v, want %v", ts[0], want)
	}
	// First row: 73.96732207 (exact decimal from the file).
	if vs[0] != 73.96732207 {
		t.Errorf("first NAB value %v, want 73.96732207", vs[0])
	}

	bt, bv := MustLoadBOOM(t, "boom", "series", "ds-0-T.csv")
	if len(bt) != 16384 || len(bv) != 16384 {
		t.Fatalf("BOOM ds-0-T: %d points, want 16384", len(bt))
	}
	if d := bt[1].Sub(bt[0]); d != time.Minute {
		t.Errorf("BOOM ds-0-T step %v, want 1m", d)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, body string
		nab        bool
		wantErr    bool
		wantNaN    bool
	}{
		{"good nab", "timestamp,value\n2014-07-01 00:00:00,1.5\n", true, false, false},
		{"good boom", "timestamp,value\n2024-12-22T19:13:00Z,-0.5\n", false, false, false},
		{"empty value is NaN", "timestamp,value\n2024-12-22T19:13:00Z,\n", false, false, true},
		{"bad header", "time,value\n2014-07-01 00:00:00,1\n", true, true, false},
		{"bad time", "timestamp,value\n2014-07-01T00:00:00Z,1\n", true, true, false},
		{"bad value", "timestamp,value\n2024-12-22T19:13:00Z,x\n", false, true, false},
		{"extra field", "timestamp,value\n2024-12-22T19:13:00Z,1,2\n", false, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "f.csv")
			if err := os.WriteFile(p, []byte(tc.body), 0o644); err != nil {
				t.Fatal(err)
			}
			load := LoadBOOM
			if tc.nab {
				load = LoadNAB
			}
			ts, vs, err := load(p)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if len(ts) != 1 || len(vs) != 1 || ts[0].Location() != time.UTC {
				t.Fatalf("got %v %v, want one UTC point", ts, vs)
			}
			if math.IsNaN(vs[0]) != tc.wantNaN {
				t.Errorf("value %v, want NaN: %v", vs[0], tc.wantNaN)
			}
		})
	}
}

func TestMissingDirFails(t *testing.T) {
	// Run Dir from a temporary folder with a go.mod but no ../shared/data:
	// it must fail (not skip) and say where it looked.
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(repo)
	ft := &fakeTB{TB: t}
	func() {
		defer func() { _ = recover() }()
		Dir(ft)
	}()
	if !ft.failed {
		t.Fatal("Dir did not fail without shared data")
	}
	want := filepath.Join(dir, "shared", "data")
	if !strings.Contains(ft.msg, want) {
		t.Errorf("message %q does not name %s", ft.msg, want)
	}
}

// fakeTB records Fatalf instead of stopping the real test.
type fakeTB struct {
	testing.TB
	failed bool
	msg    string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	panic("fatal")
}
