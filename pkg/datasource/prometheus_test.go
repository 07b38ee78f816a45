package datasource

import (
	"context"
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
}
