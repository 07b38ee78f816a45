package builtin

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestQuantilesMatchSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	qs := []float64{0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1}
	for _, n := range []int{1, 2, 3, 7, 24, 25, 100, 1440, 5000} {
		for _, kind := range []string{"normal", "ties", "sorted", "reversed"} {
			a := make([]float64, n)
			for i := range a {
				switch kind {
				case "normal":
					a[i] = r.NormFloat64()
				case "ties":
					a[i] = float64(r.IntN(3))
				case "sorted":
					a[i] = float64(i)
				case "reversed":
					a[i] = float64(n - i)
				}
			}
			sorted := slices.Clone(a)
			slices.Sort(sorted)
			got := make([]float64, len(qs))
			quantiles(a, qs, got)
			for i, q := range qs {
				h := q * float64(n-1)
				lo := int(math.Floor(h))
				want := sorted[lo]
				if lo+1 < n {
					want += (h - float64(lo)) * (sorted[lo+1] - sorted[lo])
				}
				// Same arithmetic on the same order statistics: exact.
				if got[i] != want {
					t.Errorf("n=%d %s q=%v: %v, want %v", n, kind, q, got[i], want)
				}
			}
		}
	}
}

func TestNormalQuantile(t *testing.T) {
	// Reference values of the standard normal quantile, 1e-9 absolute.
	for _, c := range []struct{ q, z float64 }{{0.5, 0}, {0.95, 1.6448536269514722}, {0.05, -1.6448536269514722}, {0.975, 1.959963984540054}} {
		if got := normalQuantile(c.q); math.Abs(got-c.z) > 1e-9 {
			t.Errorf("normalQuantile(%v) = %v, want %v", c.q, got, c.z)
		}
	}
}

func TestMultiSelectRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for iter := 0; iter < 3000; iter++ {
		n := 1 + r.IntN(300)
		a := make([]float64, n)
		for i := range a {
			a[i] = float64(r.IntN(1 + r.IntN(50)))
		}
		sorted := slices.Clone(a)
		slices.Sort(sorted)
		var ranks []int
		for k := 0; k < 1+r.IntN(6); k++ {
			ranks = append(ranks, r.IntN(n))
		}
		slices.Sort(ranks)
		ranks = slices.Compact(ranks)
		multiSelect(a, ranks, 0)
		for _, k := range ranks {
			if a[k] != sorted[k] {
				t.Fatalf("iter %d n=%d rank %d: %v, want %v", iter, n, k, a[k], sorted[k])
			}
		}
	}
}
