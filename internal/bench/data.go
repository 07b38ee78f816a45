package bench

import (
	"fmt"
	"math"
)

// The benchmark's data (../shared/bench/README.md): per series a base level
// log-uniform in 0.5…50, a daily sinusoid of 5–60 % of the base with a random
// phase, a 12-hour harmonic of 0–15 %, Gaussian noise of 1–8 % redrawn every
// minute, and spikes (0–6 starts a day, 1–10 minutes long, 1–4× the base),
// clamped at 0 and rounded to 3 decimals. Every value is a pure function of
// (seed, series, minute), where minute counts whole minutes since the Unix
// epoch, so the history written into the stores and the live values served
// by the exporter are one and the same series.

const minutesPerDay = 1440

// seriesParams are the fixed parameters of one series.
type seriesParams struct {
	base, daily, dailyPhase, half, halfPhase, noise float64
}

type generator struct {
	seed   uint64
	params []seriesParams
}

func newGenerator(seed uint64, n int) *generator {
	g := &generator{seed: seed, params: make([]seriesParams, n)}
	for i := range g.params {
		r := rng{state: mix(seed, uint64(i), math.MaxUint64)}
		base := math.Exp(math.Log(0.5) + r.float()*(math.Log(50)-math.Log(0.5)))
		g.params[i] = seriesParams{
			base:       base,
			daily:      base * (0.05 + 0.55*r.float()),
			dailyPhase: 2 * math.Pi * r.float(),
			half:       base * 0.15 * r.float(),
			halfPhase:  2 * math.Pi * r.float(),
			noise:      base * (0.01 + 0.07*r.float()),
		}
	}
	return g
}

// instance is the instance label of series i.
func instance(i int) string { return fmt.Sprintf("i-%05d", i) }

// spike is the spike contribution of series i at minute m: the spikes of a
// day are drawn from (seed, series, day); a spike that starts late in the
// day runs on into the next one.
func (g *generator) spike(i int, m int64) float64 {
	day := floorDiv(m, minutesPerDay)
	v := 0.0
	for d := day - 1; d <= day; d++ {
		r := rng{state: mix(g.seed, uint64(i), uint64(d)<<1|1)}
		n := int(r.next() % 7)
		for range n {
			start := d*minutesPerDay + int64(r.next()%minutesPerDay)
			length := 1 + int64(r.next()%10)
			mag := (1 + 3*r.float()) * g.params[i].base
			if m >= start && m < start+length {
				v += mag
			}
		}
	}
	return v
}

// value is series i at minute m (minutes since the epoch).
func (g *generator) value(i int, m int64) float64 {
	p := &g.params[i]
	tod := float64(floorMod(m, minutesPerDay)) / minutesPerDay
	v := p.base +
		p.daily*math.Sin(2*math.Pi*tod+p.dailyPhase) +
		p.half*math.Sin(4*math.Pi*tod+p.halfPhase) +
		p.noise*gauss(mix(g.seed, uint64(i), uint64(m)<<1)) +
		g.spike(i, m)
	if v < 0 {
		v = 0
	}
	return math.Round(v*1000) / 1000
}

// mix hashes (seed, series, x) into a 64-bit state (splitmix64 finaliser
// over a combination of the three).
func mix(seed, series, x uint64) uint64 {
	z := seed*0x9e3779b97f4a7c15 ^ (series+1)*0xbf58476d1ce4e5b9 ^ (x+0x632be59bd9b4e019)*0x94d049bb133111eb
	return splitmix(z)
}

func splitmix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// rng is a splitmix64 stream.
type rng struct{ state uint64 }

func (r *rng) next() uint64 {
	r.state += 0x9e3779b97f4a7c15
	z := r.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float is uniform in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// gauss is a standard normal variate from state (Box–Muller).
func gauss(state uint64) float64 {
	r := rng{state: state}
	u1 := 1 - r.float() // (0, 1]
	u2 := r.float()
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }
