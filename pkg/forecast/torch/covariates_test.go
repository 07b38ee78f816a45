package torch

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// oneForward is a test CovariateFamily: one forward, the targets' outputs.
type oneForward struct{}

func (oneForward) Forecast(ctx context.Context, md Metadata, fw Forward, rows [][]float32, horizon int) ([][][]float32, error) {
	return Generic{}.Forecast(ctx, md, fw, rows, horizon)
}

func (oneForward) ForecastTasks(ctx context.Context, md Metadata, fw ForwardTasks, tasks []Task, horizon int) ([][][]float32, error) {
	cut := make([]Task, len(tasks))
	for i, t := range tasks {
		cut[i] = Task{Rows: t.Rows, Targets: t.Targets, Future: FutureWindow(t.Future, 0, md.Horizon)}
	}
	res, err := fw(ctx, cut)
	if err != nil {
		return nil, err
	}
	var targets [][]float32
	row := 0
	for _, t := range tasks {
		targets = append(targets, res[row:row+t.Targets]...)
		row += len(t.Rows)
	}
	return Native(md, targets, horizon), nil
}

func newCovariateFake(t *testing.T, batch int) (*Model, *fakeModule) {
	t.Helper()
	RegisterFamily("test-covariates", oneForward{})
	t.Cleanup(func() {
		familiesMu.Lock()
		delete(families, "test-covariates")
		familiesMu.Unlock()
	})
	md := testMD
	md.Family = "test-covariates"
	md.Inputs = CovariateInputs
	f := &fakeModule{l: 4, q: 3, h: 3, out: func(row []float32, k, s int) float32 {
		return lastFinite(row) + float32(10*k+s)
	}}
	m, err := newModel(md, f, "fake.pt", "cpu", batch)
	if err != nil {
		t.Fatal(err)
	}
	return m, f
}

// The probe of a file with covariate inputs runs two tasks, then one task
// whose second row has a known future.
func TestCovariateProbe(t *testing.T) {
	m, f := newCovariateFake(t, 8)
	if !m.TakesCovariates() || !forecast.TakesCovariates(m) {
		t.Fatal("the model does not take covariates")
	}
	if got := fmt.Sprint(f.groups); got != "[[0 1] [0 0]]" {
		t.Errorf("probe group ids %s, want [[0 1] [0 0]]", got)
	}
	if len(f.futures) != 2 || !math.IsNaN(float64(f.futures[0][0])) || !math.IsNaN(float64(f.futures[1][2])) || f.futures[1][3+1] != 1 {
		t.Errorf("probe futures %v", f.futures)
	}
	// A plain file: no covariates, and its probe passes one input.
	plain, pf := newFake(t, 8)
	if plain.TakesCovariates() || forecast.TakesCovariates(plain) || len(pf.groups) != 0 {
		t.Errorf("a plain file takes covariates (%v) or got group ids %v", plain.TakesCovariates(), pf.groups)
	}
}

// Whole tasks go into a batch (a task that does not fit waits for the next
// one, a task larger than the batch size gets one of its own), and the tasks
// of a batch are numbered 0, 1, ... in it, whichever request they come from.
func TestBatcherPacksAndRenumbersTasks(t *testing.T) {
	m, f := newCovariateFake(t, 4)
	f.batches, f.groups, f.futures = nil, nil, nil
	f.gate = make(chan struct{})
	row := func(v float32) []float32 { return []float32{v, v, v, v} }
	task := func(v float32, covs int, known bool) Task {
		t := Task{Rows: [][]float32{row(v)}, Targets: 1}
		for c := range covs {
			t.Rows = append(t.Rows, row(v+float32(c+1)/10))
		}
		if known {
			nan := float32(math.NaN())
			t.Future = make([][]float32, len(t.Rows))
			for r := range t.Rows {
				t.Future[r] = []float32{nan, nan, nan}
			}
			t.Future[len(t.Rows)-1] = []float32{v, v + 1, v + 2}
		}
		return t
	}
	type result struct {
		out [][]float32
		err error
	}
	results := make([]result, 4)
	var wg sync.WaitGroup
	start := func(i int, tasks ...Task) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := m.forwardTasks(context.Background(), tasks)
			results[i] = result{out, err}
		}()
	}
	start(0, task(1, 0, false)) // runs alone and blocks in the gate
	for len(batchSizes(f)) == 0 {
		time.Sleep(time.Millisecond)
	}
	start(1, task(10, 2, true), task(20, 2, false)) // 3 + 3 rows
	queued(t, m, 1)
	start(2, task(30, 0, false), task(40, 0, false)) // 1 + 1
	queued(t, m, 2)
	start(3, task(50, 4, true)) // 5 rows, more than the batch size
	queued(t, m, 3)
	close(f.gate)
	wg.Wait()
	// [1], then 3 (the next 3 do not fit), 3 + 1, 1 + (5 does not fit), 5.
	if got := fmt.Sprint(batchSizes(f)); got != "[1 3 4 1 5]" {
		t.Errorf("batch sizes %s, want [1 3 4 1 5]", got)
	}
	if got := fmt.Sprint(f.groups); got != "[[0] [0 0 0] [0 0 0 1] [0] [0 0 0 0 0]]" {
		t.Errorf("group ids %s", got)
	}
	// The known future of task 10's last covariate row, NaN elsewhere.
	fut := f.futures[1]
	if fut[2*3] != 10 || fut[2*3+2] != 12 || !math.IsNaN(float64(fut[0])) || !math.IsNaN(float64(f.futures[2][0])) {
		t.Errorf("futures of the second batch %v", fut)
	}
	for i, want := range [][]float32{{1}, {10, 10.1, 10.2, 20, 20.1, 20.2}, {30, 40}, {50, 50.1, 50.2, 50.3, 50.4}} {
		if results[i].err != nil {
			t.Fatalf("request %d: %v", i, results[i].err)
		}
		if len(results[i].out) != len(want) {
			t.Fatalf("request %d: %d outputs, want %d", i, len(results[i].out), len(want))
		}
		for r, w := range want {
			// fake: last finite + 10*k + s; k = 0, s = 0.
			if got := results[i].out[r][0]; math.Abs(float64(got-w)) > 1e-5 {
				t.Errorf("request %d row %d: %g, want %g", i, r, got, w)
			}
		}
	}
}

// Forecast turns a request's covariates into tasks: the target, the
// past-only covariates, the known-future ones (their futures from the
// values after the history), and a plain model refuses them.
func TestForecastWithCovariates(t *testing.T) {
	m, f := newCovariateFake(t, 16)
	f.batches, f.groups, f.futures = nil, nil, nil
	nan := math.NaN()
	req := forecast.Request{
		Histories: [][]float64{{1, 2, 3, 4, 5}, {6, 7}, {8}},
		Horizon:   2,
		Quantiles: []float64{0.5},
		Covariates: [][]forecast.Covariate{
			{{Name: "known", KnownFuture: true, Values: []float64{0, 0, 0, 0, 9, 10, 11}}, {Name: "past", Values: []float64{1, 1, 1, 1, 7}}},
			{{Name: "past", Values: []float64{nan, 3}}},
			nil,
		},
	}
	got, err := m.Forecast(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []float64{15, 17, 18} { // last + 10 (median)
		if got[i].Err != nil || got[i].Values[0][0] != want {
			t.Errorf("series %d: %v %v, want %g", i, got[i].Values, got[i].Err, want)
		}
	}
	// Rows: 2 3 4 5 | past 1 1 1 7 | known 0 0 0 9 (future 10 11 NaN);
	// NaN NaN 6 7 | NaN NaN NaN 3; NaN NaN NaN 8.
	if g := fmt.Sprint(f.batches); g != "[[2 3 4 5 1 1 1 7 0 0 0 9 NaN NaN 6 7 NaN NaN NaN 3 NaN NaN NaN 8]]" {
		t.Errorf("batch %s", g)
	}
	if g := fmt.Sprint(f.groups); g != "[[0 0 0 1 1 2]]" {
		t.Errorf("group ids %s", g)
	}
	if g := fmt.Sprint(f.futures); g != "[[NaN NaN NaN NaN NaN NaN 10 11 NaN NaN NaN NaN NaN NaN NaN NaN NaN NaN]]" {
		t.Errorf("futures %s", g)
	}

	bad := req
	bad.Covariates = [][]forecast.Covariate{{{Name: "known", KnownFuture: true, Values: []float64{1, 2, 3, 4, 5}}}, nil, nil}
	if _, err := m.Forecast(context.Background(), bad); err == nil || !strings.Contains(err.Error(), `covariate "known" has 5 values, want 7`) {
		t.Errorf("misaligned covariate: %v", err)
	}
	plain, _ := newFake(t, 8)
	if _, err := plain.Forecast(context.Background(), req); err == nil || !strings.Contains(err.Error(), "takes none") {
		t.Errorf("plain model with covariates: %v", err)
	}
}
