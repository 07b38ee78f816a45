package tsfm

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/openanomaly/openanomaly/pkg/forecast/torch"
)

var (
	boltQ = []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9}
	c2Q   = []float64{0.01, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99}
)

func chronosMeta(family string, q []float64, l, h int) torch.Metadata {
	return torch.Metadata{Contract: torch.Contract, Family: family, Name: family + "-test", ContextLength: l, Horizon: h,
		Quantiles: q, Inputs: []string{"context"}, Outputs: []string{"quantiles"}, NaNPolicy: "missing", TorchVersion: "2.11.0"}
}

// chronosFake is a Forward that records its calls: each row's output for
// level k, step s is the mean of its finite points plus (k+1)*(s+1)/10 plus
// the row's newest finite point / 100, so the outputs depend on the context.
type chronosFake struct {
	q, h  int
	mu    sync.Mutex
	calls [][][]float32 // the rows of each call, copied
}

func (f *chronosFake) forward(_ context.Context, rows [][]float32) ([][]float32, error) {
	f.mu.Lock()
	cp := make([][]float32, len(rows))
	for i, r := range rows {
		cp[i] = slices.Clone(r)
	}
	f.calls = append(f.calls, cp)
	f.mu.Unlock()
	out := make([][]float32, len(rows))
	for i, r := range rows {
		var sum float64
		var n int
		var last float32
		for _, v := range r {
			if v == v {
				sum += float64(v)
				n++
				last = v
			}
		}
		mean := float32(sum / float64(max(n, 1)))
		out[i] = make([]float32, f.q*f.h)
		for k := range f.q {
			for s := range f.h {
				out[i][k*f.h+s] = mean + float32((k+1)*(s+1))/10 + last/100
			}
		}
	}
	return out, nil
}

func chronosRows(l int, lens ...int) [][]float32 {
	var rows [][]float32
	for r, n := range lens {
		row := make([]float32, l)
		for i := range l {
			if i < l-n {
				row[i] = float32(math.NaN())
			} else {
				row[i] = float32(10*r + i%5)
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func TestWithinHorizonIsOneForward(t *testing.T) {
	for _, c := range []struct {
		f torch.Family
		m torch.Metadata
	}{{ChronosBolt{}, chronosMeta("chronos-bolt", boltQ, 32, 8)}, {Chronos2{}, chronosMeta("chronos-2", c2Q, 32, 16)}} {
		fm := &chronosFake{q: len(c.m.Quantiles), h: c.m.Horizon}
		rows := chronosRows(32, 32, 5)
		got, err := c.f.Forecast(context.Background(), c.m, fm.forward, rows, c.m.Horizon-3)
		if err != nil {
			t.Fatal(err)
		}
		if len(fm.calls) != 1 || len(fm.calls[0]) != 2 {
			t.Fatalf("%s: %d calls, want one of 2 rows", c.m.Family, len(fm.calls))
		}
		want, _ := fm.forward(context.Background(), rows)
		for r := range rows {
			for k := range c.m.Quantiles {
				if !slices.Equal(got[r][k], want[r][k*c.m.Horizon:k*c.m.Horizon+c.m.Horizon-3]) {
					t.Fatalf("%s row %d level %d: %v", c.m.Family, r, k, got[r][k])
				}
			}
		}
	}
}

// The feedback: path p of row r gets level paths[p] of the previous block
// appended and keeps the newest L points; every further call has n rows per
// input row; the first block is the first forward's.
func TestBeyondHorizonFeedsBackQuantilePaths(t *testing.T) {
	const l, h = 40, 16
	for _, c := range []struct {
		f     torch.Family
		m     torch.Metadata
		paths []int
	}{
		{ChronosBolt{}, chronosMeta("chronos-bolt", boltQ, l, h), []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
		{Chronos2{}, chronosMeta("chronos-2", c2Q, l, h), []int{2, 4, 6, 8, 10, 12, 14, 16, 18}},
	} {
		q, n := len(c.m.Quantiles), len(c.paths)
		fm := &chronosFake{q: q, h: h}
		rows := chronosRows(l, 40, 7, 1)
		horizon := 3*h + 5 // four forwards, the last block cut
		got, err := c.f.Forecast(context.Background(), c.m, fm.forward, rows, horizon)
		if err != nil {
			t.Fatal(err)
		}
		if len(fm.calls) != 4 {
			t.Fatalf("%s: %d forwards, want 4", c.m.Family, len(fm.calls))
		}
		first, _ := fm.forward(context.Background(), rows)
		for r := range rows {
			if len(got[r]) != q {
				t.Fatalf("%s: %d levels", c.m.Family, len(got[r]))
			}
			for k := range q {
				if len(got[r][k]) != horizon {
					t.Fatalf("%s: %d steps, want %d", c.m.Family, len(got[r][k]), horizon)
				}
				if !slices.Equal(got[r][k][:h], first[r][k*h:(k+1)*h]) {
					t.Fatalf("%s: first block differs from the first forward", c.m.Family)
				}
			}
		}
		for call := 1; call < 4; call++ {
			in := fm.calls[call]
			if len(in) != len(rows)*n {
				t.Fatalf("%s call %d: %d rows, want %d", c.m.Family, call, len(in), len(rows)*n)
			}
			for r := range rows {
				for p, k := range c.paths {
					row := in[r*n+p]
					// newest h points: level k of the previous block, as returned
					if !slices.Equal(row[l-h:], got[r][k][(call-1)*h:call*h]) {
						t.Fatalf("%s call %d row %d path %d: tail %v, want level %d of block %d %v",
							c.m.Family, call, r, p, row[l-h:], k, call-1, got[r][k][(call-1)*h:call*h])
					}
					// before them the previous context, shifted by h
					prev := rows[r]
					if call > 1 {
						prev = fm.calls[call-1][r*n+p]
					}
					if !slices.EqualFunc(row[:l-h], prev[h:], func(a, b float32) bool { return a == b || a != a && b != b }) {
						t.Fatalf("%s call %d row %d path %d: the window did not slide by %d", c.m.Family, call, r, p, h)
					}
				}
			}
		}
	}
}

// A horizon of more than two files' horizons longer than L: the window then
// holds only fed-back values.
func TestFeedbackLongerThanContext(t *testing.T) {
	m := chronosMeta("chronos-bolt", boltQ, 8, 12)
	fm := &chronosFake{q: 9, h: 12}
	got, err := ChronosBolt{}.Forecast(context.Background(), m, fm.forward, chronosRows(8, 8), 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(fm.calls) != 3 || len(got[0][0]) != 30 {
		t.Fatalf("%d calls, %d steps", len(fm.calls), len(got[0][0]))
	}
	for p := range 9 {
		if !slices.Equal(fm.calls[2][p], got[0][p][12+4:24]) {
			t.Fatalf("path %d: %v, want the newest 8 of block 2 %v", p, fm.calls[2][p], got[0][p][16:24])
		}
	}
}

// The reductions against the official functions' numbers (computed with
// chronos-forecasting 2.3.2 / torch 2.11.0): torch.quantile over 81 values
// for Chronos-Bolt, chronos.utils.weighted_quantile with the pipeline's
// weights over 189 values for Chronos-2.
func TestReductionsMatchOfficialFunctions(t *testing.T) {
	b := make([]float32, 81)
	for i := range b {
		b[i] = float32(math.Cos(float64(i)*2.3)*5 + float64(i)*0.001)
	}
	wantBolt := []float64{-4.680079460144043, -4.010242938995361, -2.8503828048706055, -1.371085524559021, 0.04124697670340538, 1.6600743532180786, 2.9279944896698, 4.081625461578369, 4.74484395980835}
	got := make([]float32, 9)
	boltReduce(boltQ)(b, got)
	for i := range got {
		if math.Abs(float64(got[i])-wantBolt[i]) > 1e-6 {
			t.Errorf("bolt level %g: %v, torch.quantile %v", boltQ[i], got[i], wantBolt[i])
		}
	}
	s := make([]float32, 189)
	for i := range s {
		s[i] = float32(math.Sin(float64(i)*1.7)*10 + float64(i)*0.01)
	}
	wantC2 := []float64{-9.640876770019531, -9.027897834777832, -8.427393913269043, -7.888485431671143, -7.104320049285889, -6.105136394500732, -4.907999515533447, -3.5700793266296387, -2.272902727127075, -0.9297836422920227, 0.5420413017272949, 2.114388942718506, 3.7984249591827393, 5.2336249351501465, 6.730243682861328, 7.8985748291015625, 8.957917213439941, 9.877625465393066, 10.327407836914062, 10.824010848999023, 11.443523406982422}
	got = make([]float32, 21)
	chronos2Reduce(c2Q, chronos2Unrolled)(s, got)
	for i := range got {
		if math.Abs(float64(got[i])-wantC2[i]) > 2e-6 {
			t.Errorf("chronos-2 level %g: %v, weighted_quantile %v", c2Q[i], got[i], wantC2[i])
		}
	}
}

func TestErrors(t *testing.T) {
	boom := errors.New("boom")
	calls := 0
	fail := func(_ context.Context, rows [][]float32) ([][]float32, error) {
		calls++
		if calls == 2 {
			return nil, boom
		}
		return (&chronosFake{q: 9, h: 4}).forward(context.Background(), rows)
	}
	if _, err := (ChronosBolt{}).Forecast(context.Background(), chronosMeta("chronos-bolt", boltQ, 8, 4), fail, chronosRows(8, 8), 9); !errors.Is(err, boom) {
		t.Fatalf("error from the second forward: %v", err)
	}
	short := func(_ context.Context, rows [][]float32) ([][]float32, error) {
		return make([][]float32, len(rows)), nil
	}
	if _, err := (ChronosBolt{}).Forecast(context.Background(), chronosMeta("chronos-bolt", boltQ, 8, 4), short, chronosRows(8, 8), 9); err == nil {
		t.Fatal("short results accepted")
	}
	// Chronos-2 beyond the horizon needs the levels 0.1..0.9.
	fm := &chronosFake{q: 3, h: 4}
	_, err := Chronos2{}.Forecast(context.Background(), chronosMeta("chronos-2", []float64{0.1, 0.5, 0.9}, 8, 4), fm.forward, chronosRows(8, 8), 9)
	if err == nil {
		t.Fatal("chronos-2 without the unrolled levels forecast beyond its horizon")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	fm = &chronosFake{q: 9, h: 4}
	if _, err := (ChronosBolt{}).Forecast(ctx, chronosMeta("chronos-bolt", boltQ, 8, 4), fm.forward, chronosRows(8, 8), 9); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestRegistered(t *testing.T) {
	fams := torch.Families()
	for _, f := range []string{"chronos-bolt", "chronos-2"} {
		if !slices.Contains(fams, f) {
			t.Errorf("family %q not registered: %v", f, fams)
		}
	}
}
