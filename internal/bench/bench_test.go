package bench

import (
	"context"
	"math"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestGeneratorDeterministicAndInRange(t *testing.T) {
	g1, g2 := newGenerator(7, 50), newGenerator(7, 50)
	other := newGenerator(8, 50)
	same := 0
	for i := range 50 {
		p := g1.params[i]
		if p.base < 0.5 || p.base > 50 {
			t.Fatalf("series %d: base %v outside 0.5..50", i, p.base)
		}
		for m := int64(29_000_000); m < 29_000_000+3*minutesPerDay; m += 7 {
			v := g1.value(i, m)
			if v != g2.value(i, m) {
				t.Fatalf("series %d minute %d: not deterministic", i, m)
			}
			if v < 0 || math.IsNaN(v) || math.Round(v*1000)/1000 != v {
				t.Fatalf("series %d minute %d: value %v", i, m, v)
			}
			if v == other.value(i, m) {
				same++
			}
		}
	}
	if same > 100 {
		t.Errorf("seed 7 and 8 agree on %d values", same)
	}
}

func TestParseMetricsLenient(t *testing.T) {
	ms := parseMetrics([]byte(`# HELP x y
vmalert_iteration_duration_seconds_sum{group="pl", file="r.yml"} 0.25
up 1
a{b="c\"d"} 2e-3
`))
	if v, ok := find(ms, "vmalert_iteration_duration_seconds_sum", map[string]string{"group": "pl", "file": "r.yml"}); !ok || v != 0.25 {
		t.Errorf("got %v %v", v, ok)
	}
	if v, ok := find(ms, "a", map[string]string{"b": `c"d`}); !ok || v != 0.002 {
		t.Errorf("got %v %v", v, ok)
	}
}

// TestSmoke runs the whole benchmark at a tiny scale against the real
// stores and the built sidecar: 200 series, 3h of history, 2 evaluations
// per store, each peer group measured at least twice.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus, VictoriaMetrics, vmalert and the sidecar")
	}
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	bin := filepath.Join(t.TempDir(), "openanomaly")
	build := exec.Command("go", "build", "-o", bin, "github.com/openanomaly/openanomaly/cmd/openanomaly")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build sidecar: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{
		Series:         200,
		History:        3 * time.Hour,
		Evals:          2,
		Interval:       6 * time.Second,
		ScrapeInterval: 5 * time.Second,
		PeerInterval:   2 * time.Second,
		PeerEvals:      2,
		Sidecar:        bin,
		WorkDir:        t.TempDir(),
		Log:            testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	md := rep.Markdown()
	t.Log("\n" + md)
	if err := rep.Check(); err != nil {
		t.Fatal(err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
