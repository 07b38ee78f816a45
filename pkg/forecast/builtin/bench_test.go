package builtin

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/openanomaly/openanomaly/pkg/forecast"
)

// benchLoad makes n histories shaped like the bench README's 10,000-series
// data: a log-uniform base, a daily sinusoid of 5–60 % of it, a 12-hour
// harmonic, 1–8 % noise, a few spikes, clamped at 0 and rounded to 3
// decimals.
func benchLoad(n, points int, step time.Duration, seed uint64) [][]float64 {
	r := rand.New(rand.NewPCG(seed, 7))
	out := make([][]float64, n)
	perDay := float64(24*time.Hour) / float64(step)
	for i := range out {
		base := math.Exp(math.Log(0.5) + r.Float64()*(math.Log(50)-math.Log(0.5)))
		amp := base * (0.05 + 0.55*r.Float64())
		amp2 := base * 0.15 * r.Float64()
		phase := 2 * math.Pi * r.Float64()
		noise := base * (0.01 + 0.07*r.Float64())
		h := make([]float64, points)
		for t := range h {
			a := 2 * math.Pi * float64(t) / perDay
			v := base + amp*math.Sin(a+phase) + amp2*math.Sin(2*a) + noise*r.NormFloat64()
			if r.Float64() < 3.0/perDay { // ~3 spikes a day
				v += base * (1 + 3*r.Float64())
			}
			h[t] = math.Round(math.Max(v, 0)*1000) / 1000
		}
		out[i] = h
	}
	return out
}

func benchmarkForecast(b *testing.B, points int, step time.Duration) {
	const n = 1000
	hist := benchLoad(n, points, step, 1)
	req := forecast.Request{Histories: hist, Step: step, Horizon: 60, Quantiles: []float64{0.05, 0.5, 0.95}}
	m := Default()
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Forecast(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/series")
}

// BenchmarkDefault1m1440 is the engine's case: a day of 1-minute points
// (no daily season possible, hourly divisors are checked).
func BenchmarkDefault1m1440(b *testing.B) { benchmarkForecast(b, 1440, time.Minute) }

// BenchmarkDefault5m1440 is five days of 5-minute points: daily season.
func BenchmarkDefault5m1440(b *testing.B) { benchmarkForecast(b, 1440, 5*time.Minute) }

// BenchmarkDefault1m2880 is two days of 1-minute points: daily season of 1440.
func BenchmarkDefault1m2880(b *testing.B) { benchmarkForecast(b, 2880, time.Minute) }
