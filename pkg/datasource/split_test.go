package datasource

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

func TestSplitRange(t *testing.T) {
	start := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		name      string
		end       time.Time
		step      time.Duration
		maxPoints int
		want      int // pieces
	}{
		{"one point", start, time.Second, 3, 1},
		{"exactly max", start.Add(2 * time.Second), time.Second, 3, 1},
		{"max plus one", start.Add(3 * time.Second), time.Second, 3, 2},
		{"end off the grid", start.Add(3*time.Second + 500*time.Millisecond), time.Second, 3, 2},
		{"three full pieces", start.Add(8 * time.Second), time.Second, 3, 3},
		{"prometheus limit, 1s over 3h", start.Add(3 * time.Hour), time.Second, DefaultMaxPointsPerQuery, 1 + 3*3600/DefaultMaxPointsPerQuery},
		{"sub-second step", start.Add(time.Minute), 7 * time.Millisecond, 1000, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pieces := splitRange(start, tc.end, tc.step, tc.maxPoints)
			if len(pieces) != tc.want {
				t.Fatalf("%d pieces, want %d: %v", len(pieces), tc.want, pieces)
			}
			// Every grid point of the whole range is in exactly one piece,
			// and no piece asks for more than maxPoints.
			next := start
			for i, p := range pieces {
				if !p.start.Equal(next) {
					t.Errorf("piece %d starts at %v, want %v", i, p.start, next)
				}
				n := int(p.end.Sub(p.start)/tc.step) + 1
				if n > tc.maxPoints {
					t.Errorf("piece %d has %d points, more than %d", i, n, tc.maxPoints)
				}
				if p.end.Before(p.start) {
					t.Errorf("piece %d ends before it starts", i)
				}
				next = p.start.Add(time.Duration(n) * tc.step)
			}
			if last := pieces[len(pieces)-1]; !last.end.Equal(tc.end) {
				t.Errorf("last piece ends at %v, want %v", last.end, tc.end)
			}
			if next.Sub(tc.end) > tc.step || !next.After(tc.end) {
				t.Errorf("grid continues at %v after end %v", next, tc.end)
			}
		})
	}
}

// fakeEngine answers query_range like a store with a points limit: series
// "a" has a value at every grid point (its timestamp in seconds), series "b"
// only before bEnd. Hooks change single pieces' answers.
type fakeEngine struct {
	t         *testing.T
	maxPoints int
	bEnd      int64 // ms
	// widen makes every answer start one step early, as a store that
	// aligns ranges to its own grid may do.
	widen bool
	// warn and partial return a warning or isPartial for the piece that
	// starts at the given time (ms).
	warn    map[int64]string
	partial map[int64]bool
	fail    map[int64]int // HTTP status

	requests, inFlight, maxInFlight atomic.Int64
	delay                           time.Duration
}

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxInFlight.Load()
		if n <= m || f.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	// Read the body first: only then does the server notice a client that
	// hangs up, and cancel r.Context().
	if err := r.ParseForm(); err != nil {
		f.t.Error(err)
	}
	if f.delay > 0 {
		select {
		case <-time.After(f.delay):
		case <-r.Context().Done():
			return
		}
	}
	sec := func(k string) int64 {
		v, err := strconv.ParseFloat(r.PostForm.Get(k), 64)
		if err != nil {
			f.t.Errorf("%s=%q: %v", k, r.PostForm.Get(k), err)
		}
		return int64(math.Round(v * 1000))
	}
	start, end, step := sec("start"), sec("end"), sec("step")
	if status := f.fail[start]; status != 0 {
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status":"error","errorType":"execution","error":"scripted failure"}`)
		return
	}
	// Prometheus' check (web/api/v1/api.go), with the brief's stricter
	// reading: at most maxPoints points.
	if (end-start)/step+1 > int64(f.maxPoints) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of %d points per timeseries. Try decreasing the query resolution (?step=XX)"}`, f.maxPoints)
		return
	}
	if f.widen {
		start -= step
	}
	var a, b []string
	for ts := start; ts <= end; ts += step {
		p := fmt.Sprintf(`[%d.%03d,"%d"]`, ts/1000, ts%1000, ts)
		a = append(a, p)
		if ts < f.bEnd {
			b = append(b, p)
		}
	}
	var body strings.Builder
	body.WriteString(`{"status":"success",`)
	if w := f.warn[sec("start")]; w != "" {
		fmt.Fprintf(&body, `"warnings":[%q],`, w)
	}
	if f.partial[sec("start")] {
		body.WriteString(`"isPartial":true,`)
	}
	body.WriteString(`"data":{"resultType":"matrix","result":[`)
	fmt.Fprintf(&body, `{"metric":{"__name__":"m","s":"a"},"values":[%s]}`, strings.Join(a, ","))
	if len(b) > 0 {
		fmt.Fprintf(&body, `,{"metric":{"__name__":"m","s":"b"},"values":[%s]}`, strings.Join(b, ","))
	}
	body.WriteString(`]}}`)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(body.String()))
}

// checkGrid checks that s has exactly one sample per grid point from
// startMs to endMs, each with its timestamp as value.
func checkGrid(t *testing.T, s Series, startMs, endMs, stepMs int64) {
	t.Helper()
	want := (endMs-startMs)/stepMs + 1
	if int64(len(s.Samples)) != want {
		t.Errorf("%s: %d samples, want %d", s.Labels, len(s.Samples), want)
	}
	for i, smp := range s.Samples {
		ts := startMs + int64(i)*stepMs
		if smp.T != ts || smp.V != float64(ts) {
			t.Fatalf("%s: sample %d = %+v, want {%d %d}", s.Labels, i, smp, ts, ts)
		}
	}
}

func TestQueryRangeSplit(t *testing.T) {
	const stepMs = 1000
	startMs := testStart.UnixMilli()
	// 25 points with at most 10 per request: pieces at +0s, +10s, +20s.
	endMs := startMs + 24*stepMs
	seam1, seam2 := startMs+10*stepMs, startMs+20*stepMs

	t.Run("merge", func(t *testing.T) {
		for _, widen := range []bool{false, true} {
			t.Run(fmt.Sprintf("widen=%v", widen), func(t *testing.T) {
				f := &fakeEngine{t: t, maxPoints: 10, bEnd: startMs + 15*stepMs, widen: widen}
				q := newTestQuerier(t, f.ServeHTTP, HTTPOptions{MaxPointsPerQuery: 10})
				res, err := q.QueryRange(context.Background(), "m", time.UnixMilli(startMs), time.UnixMilli(endMs), time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if got := f.requests.Load(); got != 3 {
					t.Errorf("%d requests, want 3", got)
				}
				if len(res.Series) != 2 {
					t.Fatalf("%d series, want 2: %v", len(res.Series), res.Series)
				}
				if want := labels.FromStrings("__name__", "m", "s", "a"); !labels.Equal(res.Series[0].Labels, want) {
					t.Errorf("series 0 is %s, want %s", res.Series[0].Labels, want)
				}
				firstA := startMs
				if widen {
					// The first piece's extra point is before the range;
					// the seams must still hold every point once.
					firstA -= stepMs
				}
				checkGrid(t, res.Series[0], firstA, endMs, stepMs)
				// "b" ends in the second piece and is missing from the third.
				checkGrid(t, res.Series[1], firstA, startMs+14*stepMs, stepMs)
				if res.Partial || len(res.Warnings) != 0 {
					t.Errorf("partial %v, warnings %q; want neither", res.Partial, res.Warnings)
				}
			})
		}
	})

	t.Run("warnings and partial", func(t *testing.T) {
		f := &fakeEngine{t: t, maxPoints: 10,
			warn:    map[int64]string{startMs: "first piece warns", seam2: "last piece warns"},
			partial: map[int64]bool{seam1: true},
		}
		q := newTestQuerier(t, f.ServeHTTP, HTTPOptions{MaxPointsPerQuery: 10})
		res, err := q.QueryRange(context.Background(), "m", time.UnixMilli(startMs), time.UnixMilli(endMs), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Partial {
			t.Error("Partial is false; the middle piece was partial")
		}
		if want := []string{"first piece warns", "last piece warns"}; strings.Join(res.Warnings, "|") != strings.Join(want, "|") {
			t.Errorf("warnings %q, want %q", res.Warnings, want)
		}
		checkGrid(t, res.Series[0], startMs, endMs, stepMs)
	})

	t.Run("same warning from every piece is kept once", func(t *testing.T) {
		f := &fakeEngine{t: t, maxPoints: 10,
			warn: map[int64]string{startMs: "w", seam1: "w", seam2: "w"}}
		q := newTestQuerier(t, f.ServeHTTP, HTTPOptions{MaxPointsPerQuery: 10})
		res, err := q.QueryRange(context.Background(), "m", time.UnixMilli(startMs), time.UnixMilli(endMs), time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Warnings) != 1 || res.Warnings[0] != "w" || res.Partial {
			t.Errorf("warnings %q partial %v, want [w] false", res.Warnings, res.Partial)
		}
	})

	t.Run("one piece fails", func(t *testing.T) {
		f := &fakeEngine{t: t, maxPoints: 10, fail: map[int64]int{seam1: http.StatusServiceUnavailable}}
		q := newTestQuerier(t, f.ServeHTTP, HTTPOptions{MaxPointsPerQuery: 10, Concurrency: 1})
		_, err := q.QueryRange(context.Background(), "m", time.UnixMilli(startMs), time.UnixMilli(endMs), time.Second)
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("err = %v, want a 503 *Error", err)
		}
		if !strings.Contains(err.Error(), "piece 2 of 3") {
			t.Errorf("error %q does not name the piece", err)
		}
		// Sequential: the third piece is never asked for.
		if got := f.requests.Load(); got != 2 {
			t.Errorf("%d requests, want 2", got)
		}
	})

	t.Run("unsplit range exceeds the store's limit", func(t *testing.T) {
		// The fake really enforces the limit: a querier allowed more
		// points than the store gets the store's error.
		f := &fakeEngine{t: t, maxPoints: 10}
		q := newTestQuerier(t, f.ServeHTTP, HTTPOptions{MaxPointsPerQuery: 11})
		_, err := q.QueryRange(context.Background(), "m", time.UnixMilli(startMs), time.UnixMilli(endMs), time.Second)
		if err == nil || !strings.Contains(err.Error(), "exceeded maximum resolution") {
			t.Fatalf("err = %v, want the store's resolution error", err)
		}
	})
}

func TestQueryRangeSplitConcurrency(t *testing.T) {
	for _, conc := range []int{1, 3} {
		t.Run(strconv.Itoa(conc), func(t *testing.T) {
			f := &fakeEngine{t: t, maxPoints: 10, delay: 20 * time.Millisecond}
			q := newTestQuerier(t, f.ServeHTTP, HTTPOptions{MaxPointsPerQuery: 10, Concurrency: conc})
			startMs := testStart.UnixMilli()
			endMs := startMs + 99*1000 // 10 pieces
			res, err := q.QueryRange(context.Background(), "m", time.UnixMilli(startMs), time.UnixMilli(endMs), time.Second)
			if err != nil {
				t.Fatal(err)
			}
			checkGrid(t, res.Series[0], startMs, endMs, 1000)
			if got := f.maxInFlight.Load(); got > int64(conc) {
				t.Errorf("%d requests in flight at once, more than %d", got, conc)
			}
			if got := f.requests.Load(); got != 10 {
				t.Errorf("%d requests, want 10", got)
			}
		})
	}
}

func TestQueryRangeSplitCancel(t *testing.T) {
	// A caller's deadline ends a split query between or inside pieces.
	f := &fakeEngine{t: t, maxPoints: 10, delay: 10 * time.Second}
	q := newTestQuerier(t, f.ServeHTTP, HTTPOptions{MaxPointsPerQuery: 10})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	startMs := testStart.UnixMilli()
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := q.QueryRange(ctx, "m", time.UnixMilli(startMs), time.UnixMilli(startMs+99*1000), time.Second)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v, want a deadline error", err)
		}
	})
	wg.Wait()
	if got := f.requests.Load(); got > DefaultSplitConcurrency {
		t.Errorf("%d requests started, want at most %d", got, DefaultSplitConcurrency)
	}
}

func TestMergeResults(t *testing.T) {
	a := labels.FromStrings("s", "a")
	b := labels.FromStrings("s", "b")
	res := mergeResults([]Result{
		{Series: []Series{{Labels: b, Samples: []Sample{{1, 1}, {2, 2}}}}},
		{Series: []Series{
			{Labels: a, Samples: []Sample{{3, 3}}},
			// Overlaps the seam: 2 is already there.
			{Labels: b, Samples: []Sample{{2, 20}, {3, 3}}},
		}, Warnings: []string{"x"}},
		{Series: []Series{{Labels: a, Samples: []Sample{{3, 30}, {4, 4}}}}, Partial: true},
	})
	want := []Series{
		{Labels: a, Samples: []Sample{{3, 3}, {4, 4}}},
		{Labels: b, Samples: []Sample{{1, 1}, {2, 2}, {3, 3}}},
	}
	if fmt.Sprint(res.Series) != fmt.Sprint(want) {
		t.Errorf("series %v, want %v", res.Series, want)
	}
	if !res.Partial || len(res.Warnings) != 1 {
		t.Errorf("partial %v warnings %q", res.Partial, res.Warnings)
	}
}
