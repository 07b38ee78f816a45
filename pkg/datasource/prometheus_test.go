package datasource

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/internal/testenv"
)

// TestQueryRangeSplitPrometheus reads a range of more than 11,000 points
// from a real Prometheus, which refuses to answer it in one request, and
// checks that every sample arrives exactly once.
func TestQueryRangeSplitPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Prometheus; runs without -short")
	}
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{RemoteWriteReceiver: true})

	// 12,500 samples 100ms apart, in the last half hour: Prometheus 2.x
	// takes remote-written samples only within an hour of its newest.
	const n = 12500
	step := 100 * time.Millisecond
	start := time.Now().Add(-30 * time.Minute).Truncate(time.Second)
	ts := make([]time.Time, n)
	vs := make([]float64, n)
	for i := range ts {
		ts[i] = start.Add(time.Duration(i) * step)
		vs[i] = float64(i)*0.5 - 1000
	}
	prom.Write(t, "oa_split_test", map[string]string{"job": "split"}, ts, vs)
	end := ts[n-1]

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The limit is real: one request for the whole range fails.
	whole, err := NewHTTPQuerier(HTTPOptions{URL: prom.URL, MaxPointsPerQuery: 2 * n})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := whole.QueryRange(ctx, "oa_split_test", start, end, step); err == nil ||
		!strings.Contains(err.Error(), "exceeded maximum resolution") {
		t.Fatalf("unsplit query: err = %v, want Prometheus' resolution error", err)
	}

	q, err := NewHTTPQuerier(HTTPOptions{URL: prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.QueryRange(ctx, "oa_split_test", start, end, step)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Series) != 1 {
		t.Fatalf("%d series, want 1: %v", len(res.Series), res.Series)
	}
	s := res.Series[0]
	if want := labels.FromStrings("__name__", "oa_split_test", "job", "split"); !labels.Equal(s.Labels, want) {
		t.Errorf("labels %s, want %s", s.Labels, want)
	}
	if len(s.Samples) != n {
		t.Errorf("%d samples, want %d", len(s.Samples), n)
	}
	for i := range min(n, len(s.Samples)) {
		if got := s.Samples[i]; got.T != ts[i].UnixMilli() || got.V != vs[i] {
			t.Fatalf("sample %d = %+v, want {%d %v}", i, got, ts[i].UnixMilli(), vs[i])
		}
	}
	if res.Partial || len(res.Warnings) > 0 {
		t.Errorf("partial %v, warnings %q", res.Partial, res.Warnings)
	}

	// Split by time into pieces of 5 minutes (3,000 points): the same
	// answer.
	byTime, err := NewHTTPQuerier(HTTPOptions{URL: prom.URL, SplitInterval: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(splitRange(start, end, step, int(5*time.Minute/step))); got != 5 {
		t.Fatalf("a 5-minute split interval cuts %s into %d pieces, want 5", end.Sub(start), got)
	}
	res2, err := byTime.QueryRange(ctx, "oa_split_test", start, end, step)
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Series) != 1 || !slices.Equal(res2.Series[0].Samples, s.Samples) {
		t.Errorf("split by time: %d series, want the same single series and samples as split by points", len(res2.Series))
	}
}

// TestRemoteReadPrometheus reads the same data from a real Prometheus
// through remote read (streamed XOR chunks) and through query_range, and
// expects the same series, points and values, including the gap a stale
// marker makes.
func TestRemoteReadPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Prometheus; runs without -short")
	}
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{RemoteWriteReceiver: true})

	// Within the last hour (Prometheus 2.x's window for remote-written
	// samples). Sample times are off the whole seconds, so no grid point
	// is exactly a lookback away from a sample, where Prometheus 2
	// (window closed on the left) and 3 (open) differ.
	base := time.Now().Add(-40 * time.Minute).Truncate(time.Minute)
	var (
		aTs []time.Time
		aVs []float64
	)
	for i := range 600 {
		aTs = append(aTs, base.Add(time.Duration(i)*time.Second+123*time.Millisecond))
		aVs = append(aVs, float64(i%37)*1.5)
	}
	staleAt := base.Add(600*time.Second + 123*time.Millisecond)
	aTs = append(aTs, staleAt)
	aVs = append(aVs, staleNaN)
	resumeAt := base.Add(15*time.Minute + 123*time.Millisecond)
	for i := range 600 {
		aTs = append(aTs, resumeAt.Add(time.Duration(i)*time.Second))
		aVs = append(aVs, -float64(i)/7)
	}
	prom.Write(t, "oa_rr_test", map[string]string{"s": "a"}, aTs, aVs)
	var (
		bTs []time.Time
		bVs []float64
	)
	for i := range 25 * 60 / 7 {
		bTs = append(bTs, base.Add(time.Duration(i)*7*time.Second+456*time.Millisecond))
		bVs = append(bVs, 1e6+float64(i*i))
	}
	prom.Write(t, "oa_rr_test", map[string]string{"s": "b"}, bTs, bVs)

	hq, err := NewHTTPQuerier(HTTPOptions{URL: prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	rq, err := NewRemoteReadQuerier(RemoteReadOptions{URL: prom.URL + "/api/v1/read"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start, end := base.Add(-2*time.Minute), base.Add(33*time.Minute)
	for _, tc := range []struct {
		expr string
		step time.Duration
	}{
		{`oa_rr_test`, 10 * time.Second},
		{`oa_rr_test{s="a"}`, time.Second},
		{`{__name__="oa_rr_test",s=~"b|c"}`, time.Minute},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			want, err := hq.QueryRange(ctx, tc.expr, start, end, tc.step)
			if err != nil {
				t.Fatal(err)
			}
			got, err := rq.QueryRange(ctx, tc.expr, start, end, tc.step)
			if err != nil {
				t.Fatal(err)
			}
			if len(want.Series) == 0 {
				t.Fatal("query_range found nothing")
			}
			if len(got.Series) != len(want.Series) {
				t.Fatalf("remote read: %d series, query_range %d", len(got.Series), len(want.Series))
			}
			for i := range want.Series {
				g, w := got.Series[i], want.Series[i]
				if !labels.Equal(g.Labels, w.Labels) {
					t.Errorf("series %d: remote read %s, query_range %s", i, g.Labels, w.Labels)
				}
				if len(g.Samples) != len(w.Samples) {
					t.Errorf("%s: remote read %d points, query_range %d", w.Labels, len(g.Samples), len(w.Samples))
				}
				for j := range min(len(g.Samples), len(w.Samples)) {
					if g.Samples[j] != w.Samples[j] {
						t.Fatalf("%s: point %d: remote read %+v, query_range %+v", w.Labels, j, g.Samples[j], w.Samples[j])
					}
				}
				// The stale marker's gap is there, in both.
				if w.Labels.Get("s") == "a" {
					for _, s := range g.Samples {
						if s.T >= staleAt.UnixMilli() && s.T < resumeAt.UnixMilli() {
							t.Fatalf("point %+v inside the stale gap", s)
						}
					}
				}
			}
		})
	}
}
