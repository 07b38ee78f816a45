package backtest

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/internal/testenv"
	"github.com/openanomaly/openanomaly/pkg/datasource"
)

func TestSharedQuerier(t *testing.T) {
	var calls atomic.Int32
	var all []datasource.Series
	for i := range 20 {
		all = append(all, datasource.Series{Labels: labels.FromStrings(labels.MetricName, "m", "i", strconv.Itoa(i))})
	}
	q := datasource.QuerierFunc(func(context.Context, string, time.Time, time.Time, time.Duration) (datasource.Result, error) {
		calls.Add(1)
		return datasource.Result{Series: all, Warnings: []string{"w"}}, nil
	})
	s := newSharedQuerier(q, 3, 3, 0)
	ctx := context.Background()
	seen := map[string]int{}
	for shard := range 2 {
		res, err := s.shard(shard).QueryRange(ctx, "m", time.Unix(0, 0), time.Unix(60, 0), time.Minute)
		if err != nil || len(res.Warnings) != 1 {
			t.Fatal(err, res.Warnings)
		}
		for _, ser := range res.Series {
			seen[ser.Labels.Get("i")]++
			if shardOf(ser.Labels, 3) != shard {
				t.Errorf("%s in shard %d", ser.Labels, shard)
			}
		}
	}
	if calls.Load() != 1 || s.pending() != 1 {
		t.Errorf("%d calls, %d answers held; want 1 and 1 (shard 2 has not taken it)", calls.Load(), s.pending())
	}
	s.leave(2) // shard 2 ends without asking: the answer is freed
	if s.pending() != 0 {
		t.Errorf("%d answers held after every shard took or left", s.pending())
	}
	s.leave(0)
	s.leave(1)
	// Shards 0 and 1 saw their series only; shard 2's are the rest.
	n := 0
	for _, ser := range all {
		if shardOf(ser.Labels, 3) != 2 {
			n++
			if seen[ser.Labels.Get("i")] != 1 {
				t.Errorf("%s seen %d times", ser.Labels, seen[ser.Labels.Get("i")])
			}
		}
	}
	if n == 0 || n == len(all) || len(seen) != n {
		t.Errorf("shards 0 and 1 hold %d of %d series, saw %d", n, len(all), len(seen))
	}

	// The group's limit applies to the whole answer.
	s = newSharedQuerier(q, 2, 2, 10)
	if _, err := s.shard(0).QueryRange(ctx, "m", time.Unix(0, 0), time.Unix(60, 0), time.Minute); err == nil || !strings.Contains(err.Error(), "query returned 20 series, more than the group's limit of 10") {
		t.Errorf("limit: %v", err)
	}
	// Inputs that differ only in their name stay in one shard.
	if shardOf(labels.FromStrings(labels.MetricName, "a", "x", "1"), 7) != shardOf(labels.FromStrings(labels.MetricName, "b", "x", "1"), 7) {
		t.Error("the name changes the shard")
	}
}

// TestShardsOverPrometheus: a pipeline over several series of a real
// Prometheus, split over 1, 2, 3 or 4 shards, emits exactly the same
// samples, and the same as the CSV replay of the same files.
func TestShardsOverPrometheus(t *testing.T) {
	keys := []string{
		"realAWSCloudwatch/ec2_cpu_utilization_24ae8d.csv",
		"artificialWithAnomaly/art_daily_jumpsup.csv",
		"artificialNoAnomaly/art_daily_small_noise.csv",
	}
	prom := testenv.StartPrometheus(t, testenv.PrometheusOptions{
		RemoteWriteReceiver: true,
		ExtraConfig:         "storage:\n  tsdb:\n    out_of_order_time_window: 10d\n",
	})
	dir := t.TempDir()
	end := time.Now().Add(-time.Hour).Truncate(5 * time.Minute)
	var start time.Time
	for _, k := range keys {
		ts, vs := testenv.LoadNAB(t, k)
		ts, vs = ts[:300], vs[:300]
		ts = testenv.Shift(ts, ts[len(ts)-1], end)
		start = ts[0]
		var b strings.Builder
		b.WriteString("timestamp,value\n")
		for i := range ts {
			fmt.Fprintf(&b, "%s,%s\n", ts[i].UTC().Format(NABTimeLayout), strconv.FormatFloat(vs[i], 'g', -1, 64))
		}
		writeCSV(t, dir, k, b.String())
		prom.Write(t, "value", map[string]string{"file": k}, ts, vs)
	}
	g := groups(t, fiveMinutePipelines)
	csv := run(t, Options{Groups: g, CSV: []string{dir}, OutputDir: filepath.Join(dir, "out-csv")})
	want := omSamples(t, filepath.Join(dir, "out-csv", SeriesFile))
	if len(want) < 3*6 || count(want) < 3*5*250 || csv.Units != 3 {
		t.Fatalf("CSV replay: %d series, %d samples", len(want), count(want))
	}

	// The series really are split for some shard count (the hash is
	// fixed, so this holds or fails every time).
	split := 0
	for _, par := range []int{2, 3, 4} {
		used := map[int]bool{}
		for _, k := range keys {
			used[shardOf(labels.FromStrings(labels.MetricName, "value", "file", k), par)] = true
		}
		split = max(split, len(used))
	}
	if split < 2 {
		t.Fatalf("the 3 series are spread over at most %d shards", split)
	}

	q := httpQuerier(t, prom.URL)
	for _, par := range []int{1, 2, 3, 4} {
		out := filepath.Join(dir, fmt.Sprint("out-", par))
		res := run(t, Options{Groups: g, Querier: q, Start: start, End: end, OutputDir: out, Parallelism: par})
		if res.Units != par || res.Evaluations != 300 {
			t.Errorf("parallelism %d: %d units, %d evaluations; want %d and 300", par, res.Units, res.Evaluations, par)
		}
		got := omSamples(t, filepath.Join(out, SeriesFile))
		if len(got) != len(want) || count(got) != count(want) {
			t.Errorf("parallelism %d: %d series, %d samples; the CSV replay %d and %d", par, len(got), count(got), len(want), count(want))
		}
		diffs := 0
		for k, s := range want {
			for at, v := range s {
				if gv, ok := got[k][at]; !ok || gv != v {
					if diffs++; diffs <= 5 {
						t.Errorf("parallelism %d: %s at %d: %v (present %v), CSV replay %v", par, k, at, gv, ok, v)
					}
				}
			}
		}
		if p := res.Report.Summary[0].Rows[0].Values; p[0] != 300 || p[2] != 3 {
			t.Errorf("parallelism %d: pipelines table %v, want 300 evaluations and 3 series", par, p)
		}
	}
}
