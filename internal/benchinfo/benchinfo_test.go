package benchinfo

import (
	"math"
	"testing"
)

func TestMedian(t *testing.T) {
	xs := []float64{3, 1, 2, 10}
	if got := Median(xs); got != 2.5 {
		t.Errorf("Median(%v) = %v, want 2.5", xs, got)
	}
	if xs[0] != 3 {
		t.Errorf("Median reordered its input: %v", xs)
	}
	if got := Median([]float64{7, 1, 4}); got != 4 {
		t.Errorf("odd: %v, want 4", got)
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}
