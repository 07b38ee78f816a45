package torch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// queued waits until the model's queue holds n jobs.
func queued(t *testing.T, m *Model, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.batch.mu.Lock()
		got := len(m.batch.queue)
		m.batch.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue holds %d jobs, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func batchSizes(f *fakeModule) []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	var sizes []int
	for _, b := range f.batches {
		sizes = append(sizes, len(b)/f.l)
	}
	return sizes
}

// Requests that arrive while a forward runs share the next batch, up to the
// batch size, and each gets its own rows' forecasts.
func TestBatcherSharesBatchesAcrossRequests(t *testing.T) {
	m, f := newFake(t, 4)
	f.gate = make(chan struct{})
	req := func(v float64, n int) forecast.Request {
		r := forecast.Request{Horizon: 2, Quantiles: []float64{0.5}}
		for i := range n {
			r.Histories = append(r.Histories, []float64{v + float64(i)})
		}
		return r
	}
	type result struct {
		got []forecast.Forecast
		err error
	}
	results := make([]result, 4)
	var wg sync.WaitGroup
	start := func(i int, r forecast.Request) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := m.Forecast(context.Background(), r)
			results[i] = result{got, err}
		}()
	}
	start(0, req(100, 1)) // runs alone and blocks in the gate
	for len(batchSizes(f)) == 0 {
		time.Sleep(time.Millisecond)
	}
	start(1, req(200, 2))
	queued(t, m, 1)
	start(2, req(300, 3))
	queued(t, m, 2)
	start(3, req(400, 1))
	queued(t, m, 3)
	close(f.gate)
	wg.Wait()
	// 2 + 3 + 1 rows behind the first: a batch of 4 (2 + the first 2 of
	// the 3) and one of 2.
	if got := fmt.Sprint(batchSizes(f)); got != "[1 4 2]" {
		t.Errorf("batch sizes %s, want [1 4 2]", got)
	}
	for i, base := range []float64{100, 200, 300, 400} {
		if results[i].err != nil {
			t.Fatalf("request %d: %v", i, results[i].err)
		}
		for r, fc := range results[i].got {
			// fake: last finite + 10*k + s; median is k = 1.
			if want := base + float64(r) + 10; fc.Values[0][0] != want || fc.Values[0][1] != want+1 {
				t.Errorf("request %d row %d: %v, want [%g %g]", i, r, fc.Values[0], want, want+1)
			}
		}
	}
}

// A forward that fails on one request's rows fails that request only.
func TestBatcherIsolatesFailures(t *testing.T) {
	m, f := newFake(t, 8)
	f.gate = make(chan struct{})
	f.fail = func(row []float32) bool { return lastFinite(row) == 666 }
	var wg sync.WaitGroup
	errs := make([]error, 3)
	run := func(i int, v float64) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.Forecast(context.Background(), forecast.Request{
				Histories: [][]float64{{v}, {v}}, Horizon: 1, Quantiles: []float64{0.5}})
		}()
	}
	run(0, 1)
	for len(batchSizes(f)) == 0 {
		time.Sleep(time.Millisecond)
	}
	run(1, 666)
	queued(t, m, 1)
	run(2, 3)
	queued(t, m, 2)
	close(f.gate)
	wg.Wait()
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("healthy requests failed: %v, %v", errs[0], errs[2])
	}
	if errs[1] == nil || !strings.Contains(errs[1].Error(), "graph raised") {
		t.Errorf("bad request: %v, want the graph's error", errs[1])
	}
	// [first], [shared 4 rows: fails], [2 rows: ok], [2 rows: fails].
	if got := fmt.Sprint(batchSizes(f)); got != "[2 4 2 2]" {
		t.Errorf("batch sizes %s, want [2 4 2 2]", got)
	}
}

// A caller that gives up gets its context's error; its rows not yet started
// are not run, and the model keeps serving others.
func TestBatcherCancelledRequest(t *testing.T) {
	m, f := newFake(t, 1)
	f.gate = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := m.Forecast(ctx, forecast.Request{Histories: [][]float64{{1}, {2}, {3}}, Horizon: 1, Quantiles: []float64{0.5}})
		done <- err
	}()
	for len(batchSizes(f)) == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled request: %v", err)
	}
	close(f.gate)
	got, err := m.Forecast(context.Background(), forecast.Request{Histories: [][]float64{{7}}, Horizon: 1, Quantiles: []float64{0.5}})
	if err != nil || got[0].Values[0][0] != 17 {
		t.Fatalf("next request: %v, %v", got, err)
	}
	// The cancelled request's first row ran; the other two did not.
	if got := fmt.Sprint(batchSizes(f)); got != "[1 1]" {
		t.Errorf("batch sizes %s, want [1 1]", got)
	}
}

// feedback is a test family that forecasts beyond the native horizon by
// appending the median and forwarding again, as Chronos-Bolt's pipeline does.
type feedback struct{}

func (feedback) Forecast(ctx context.Context, md Metadata, fw Forward, rows [][]float32, horizon int) ([][][]float32, error) {
	q, l := len(md.Quantiles), md.ContextLength
	out := make([][][]float32, len(rows))
	for r := range out {
		out[r] = make([][]float32, q)
	}
	ctxs := rows
	for done := 0; done < horizon; {
		res, err := fw(ctx, ctxs)
		if err != nil {
			return nil, err
		}
		n := min(md.Horizon, horizon-done)
		next := make([][]float32, len(rows))
		for r, nat := range Native(md, res, n) {
			for k := range q {
				out[r][k] = append(out[r][k], nat[k]...)
			}
			next[r] = append(append([]float32(nil), ctxs[r]...), nat[q/2]...)[n:]
			if len(next[r]) != l {
				panic("bad window")
			}
		}
		ctxs, done = next, done+n
	}
	return out, nil
}

func TestFamilyHookForecastsBeyondTheNativeHorizon(t *testing.T) {
	RegisterFamily("test-feedback", feedback{})
	defer func() {
		familiesMu.Lock()
		delete(families, "test-feedback")
		familiesMu.Unlock()
	}()
	md := testMD
	md.Family = "test-feedback"
	f := &fakeModule{l: 4, q: 3, h: 3, out: func(row []float32, k, s int) float32 {
		return lastFinite(row) + float32(10*(k-1)) + 1 // median: last + 1
	}}
	m, err := newModel(md, f, "fake.pt", "cpu", 8)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Forecast(context.Background(), forecast.Request{Histories: [][]float64{{5}}, Horizon: 7, Quantiles: []float64{0.5}})
	if err != nil {
		t.Fatal(err)
	}
	// Every pass: the last fed-back median + 1 at each step (the fake adds 1
	// to the row's last point for every step): 6 6 6, then 7 7 7, then 8.
	if g := fmt.Sprint(got[0].Values[0]); g != "[6 6 6 7 7 7 8]" {
		t.Errorf("median path %s, want [6 6 6 7 7 7 8]", g)
	}
	if !slices.Contains(Families(), "test-feedback") {
		t.Errorf("Families() = %v", Families())
	}
}
