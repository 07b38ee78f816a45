package builtin

import (
	"math"
	"math/bits"
	"slices"
)

// quantiles writes into out[i] the empirical quantile of a at level qs[i]
// (Hyndman–Fan type 7: linear interpolation between order statistics, the
// default of R and NumPy). qs must be ascending in [0, 1] and a non-empty and
// free of NaN. a is reordered.
//
// Why not a sort: a full sort of 1,440 residuals costs about as much as
// fitting the model; selecting only the order statistics needed is linear.
func quantiles(a, qs, out []float64) {
	n := len(a)
	ranks := make([]int, 0, 2*len(qs))
	for _, q := range qs {
		h := q * float64(n-1)
		lo := int(math.Floor(h))
		ranks = append(ranks, lo)
		if lo+1 < n {
			ranks = append(ranks, lo+1)
		}
	}
	slices.Sort(ranks)
	ranks = slices.Compact(ranks)
	multiSelect(a, ranks, 0)
	for i, q := range qs {
		h := q * float64(n-1)
		lo := int(math.Floor(h))
		if lo+1 >= n {
			out[i] = a[n-1]
			continue
		}
		f := h - float64(lo)
		out[i] = a[lo] + f*(a[lo+1]-a[lo])
	}
}

// multiSelect reorders a so that a[r-base] holds the element of rank r (as in
// sorted order) for every r in ranks, which are ascending and relative to
// base. It is quickselect that recurses only into the parts holding a
// wanted rank; after 2·log2(n) rounds (many ties, which the partition does
// not group) it sorts what is left.
func multiSelect(a []float64, ranks []int, base int) {
	multiSelectDepth(a, ranks, base, 2*bits.Len(uint(len(a))))
}

func multiSelectDepth(a []float64, ranks []int, base, depth int) {
	for len(ranks) > 0 {
		if len(a) <= 24 || depth == 0 {
			slices.Sort(a)
			return
		}
		depth--
		p := partition(a)
		// Ranks left of the pivot, the pivot itself, and right of it.
		i, _ := slices.BinarySearch(ranks, base+p)
		j := i
		if j < len(ranks) && ranks[j] == base+p {
			j++
		}
		multiSelectDepth(a[:p], ranks[:i], base, depth)
		a, ranks, base = a[p+1:], ranks[j:], base+p+1
	}
}

// partition puts a median-of-three pivot at its sorted position and returns
// that position, smaller elements left of it.
//
// Why branchless Lomuto: on residuals every comparison is a coin flip, and
// a mispredicted branch per element made selection cost as much as
// fitting the model; the swap is unconditional and the index moves by the
// comparison's outcome (a conditional move).
func partition(a []float64) int {
	n := len(a)
	m := n / 2
	// Median of three into a[n-1] as the pivot.
	if a[m] < a[0] {
		a[m], a[0] = a[0], a[m]
	}
	if a[n-1] < a[0] {
		a[n-1], a[0] = a[0], a[n-1]
	}
	if a[m] < a[n-1] {
		a[m], a[n-1] = a[n-1], a[m]
	}
	pivot := a[n-1]
	i := 0
	for j := 0; j < n-1; j++ {
		v := a[j]
		a[j] = a[i]
		a[i] = v
		d := 0
		if v < pivot {
			d = 1
		}
		i += d
	}
	a[i], a[n-1] = a[n-1], a[i]
	return i
}

// normalQuantile is the standard normal quantile function.
func normalQuantile(q float64) float64 {
	return math.Sqrt2 * math.Erfinv(2*q-1)
}
