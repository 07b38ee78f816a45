package builtin

import (
	"testing"
	"time"
)

func BenchmarkLossLevel(b *testing.B) {
	x := benchLoad(1, 1440, time.Minute, 1)[0]
	p := classic(0.3, 0.1, 0, 0.98)
	for b.Loop() {
		lossLevel(x, x[0], 0, 0.1, p)
	}
}

func BenchmarkLossSeasonal(b *testing.B) {
	x := benchLoad(1, 2880, time.Minute, 1)[0]
	s := make([]float64, 1440)
	p := classic(0.3, 0.1, 0.1, 0.98)
	for b.Loop() {
		lossSeasonal(x, x[0], 0, 0.1, s, p)
	}
}

func BenchmarkDetect(b *testing.B) {
	x := benchLoad(1, 2880, time.Minute, 1)[0]
	for b.Loop() {
		detectSeason(x, time.Minute)
	}
}

func BenchmarkQuantiles(b *testing.B) {
	src := benchLoad(1, 1441, time.Minute, 1)[0]
	for i := range 1440 {
		src[i] = src[i+1] - src[i]
	}
	src = src[:1440]
	a := make([]float64, 1440)
	qs := []float64{0.05, 0.5, 0.95}
	out := make([]float64, 3)
	for b.Loop() {
		copy(a, src)
		quantiles(a, qs, out)
	}
}

func BenchmarkQuantilesReal(b *testing.B) {
	hist := benchLoad(20, 1440, time.Minute, 1)
	var srcs [][]float64
	for _, x := range hist {
		s := make([]float64, 0)
		_, s = runHW(x[1:], x[0], 0, initScale(x), nil, classic(0.3, 0, 0, 0.98), 0, s)
		srcs = append(srcs, s)
	}
	a := make([]float64, 1440)
	qs := []float64{0.05, 0.5, 0.95}
	out := make([]float64, 3)
	for b.Loop() {
		for _, src := range srcs {
			a = append(a[:0], src...)
			quantiles(a, qs, out)
		}
	}
}

func BenchmarkLossLevel2(b *testing.B) {
	x := benchLoad(1, 1440, time.Minute, 1)[0]
	p := classic(0.3, 0.1, 0, 0.98)
	q := classic(0.5, 0.1, 0, 0.98)
	for b.Loop() {
		lossLevel2(x, x[0], 0, 0.1, p, q)
	}
}

func BenchmarkLossSeasonal2(b *testing.B) {
	x := benchLoad(1, 2880, time.Minute, 1)[0]
	s := make([]float64, 1440)
	u := make([]float64, 1440)
	p := classic(0.3, 0.1, 0.1, 0.98)
	q := classic(0.5, 0.1, 0.1, 0.98)
	for b.Loop() {
		lossSeasonal2(x, x[0], 0, 0.1, s, u, p, q)
	}
}
