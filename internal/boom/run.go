package boom

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/common/model"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/builtin"
)

// ModelSpec names a model under test and builds it for a protocol (the
// season, where one is set, is the protocol's M steps).
type ModelSpec struct {
	Name   string
	Config string // how it is configured, for the report
	New    func(p Protocol) (forecast.Model, error)
}

// season is the protocol's M as a config duration.
func season(p Protocol) model.Duration { return model.Duration(time.Duration(p.M) * p.Step) }

// builtinSpec is a model as a user's config builds it: the builtin section
// starts from config.DefaultBuiltinConfig (what config.Load does) and
// builtin.New makes it (what the daemon's buildModels does).
func builtinSpec(name, desc, algo string, withSeason bool) ModelSpec {
	return ModelSpec{Name: name, Config: desc, New: func(p Protocol) (forecast.Model, error) {
		c := config.DefaultBuiltinConfig
		c.Algorithm = algo
		if withSeason {
			c.Season = season(p)
		}
		return builtin.New(c)
	}}
}

// Specs are the models the driver knows, by name; DefaultModels is what it
// runs without -models.
var Specs = []ModelSpec{
	{Name: "default", Config: "builtin.Default(): holt_winters, season detected, fitted (what `model: default` gets)",
		New: func(Protocol) (forecast.Model, error) { return builtin.Default(), nil }},
	builtinSpec("holt_winters", "`builtin: {algorithm: holt_winters, season: M·step}`, parameters fitted", config.AlgoHoltWinters, true),
	builtinSpec("seasonal_naive", "`builtin: {algorithm: seasonal_naive, season: M·step}`", config.AlgoSeasonalNaive, true),
	builtinSpec("seasonal_naive_auto", "`builtin: {algorithm: seasonal_naive}`, season detected", config.AlgoSeasonalNaive, false),
	{Name: "reference", Config: "the protocol's seasonal naive (this harness), season M",
		New: func(p Protocol) (forecast.Model, error) { return SeasonalNaive{M: p.M}, nil }},
}

// DefaultModels are the models run when none are named.
var DefaultModels = []string{"default", "holt_winters", "seasonal_naive", "seasonal_naive_auto"}

// SpecByName returns the spec called name.
func SpecByName(name string) (ModelSpec, bool) {
	i := slices.IndexFunc(Specs, func(s ModelSpec) bool { return s.Name == name })
	if i < 0 {
		return ModelSpec{}, false
	}
	return Specs[i], true
}

// Options configure Run.
type Options struct {
	Series []Series
	Models []ModelSpec
	// Origins overrides each protocol's K when > 0 (tests, quick runs).
	Origins int
	// Context overrides each protocol's C when > 0: a diagnostic outside
	// the protocol (how the models do with more history).
	Context int
	// Parallelism is how many series are forecast at once; 0 means
	// GOMAXPROCS. Each request holds one series' windows, which the
	// built-in models spread over GOMAXPROCS workers themselves.
	Parallelism int
	// Rounds is how many times each model forecasts every series, for
	// the timing (medians); 0 means 1.
	Rounds int
}

// Report is everything a run measured. Float fields are NaN where
// undefined (null in JSON).
type Report struct {
	Protocols   []Protocol    `json:"protocols"`
	Levels      []float64     `json:"levels"`
	Series      []SeriesInfo  `json:"series"`
	Reference   ModelResult   `json:"reference"`
	Models      []ModelResult `json:"models"`
	Parallelism int           `json:"parallelism"`
	Rounds      int           `json:"rounds"`
	GOMAXPROCS  int           `json:"gomaxprocs"`
	// ExcludedMASE and ExcludedWQL list the series left out of the ratios
	// of that metric because the reference's error is 0 or undefined.
	ExcludedMASE []string `json:"excluded_mase"`
	ExcludedWQL  []string `json:"excluded_wql"`
	// DefaultSeasons[i] counts Series[i]'s windows by the season the
	// default model detected (DetectedSeasons); nil unless the default
	// model ran.
	DefaultSeasons []map[string]int `json:"default_seasons,omitempty"`
}

// SeriesInfo describes one series of the run.
type SeriesInfo struct {
	Name    string `json:"name"`
	Dataset string `json:"dataset"`
	Freq    string `json:"freq"`
	Points  int    `json:"points"`
	Windows int    `json:"windows"`
}

// ModelResult is one model's scores, ratios and timing.
type ModelResult struct {
	Name   string `json:"name"`
	Config string `json:"config"`
	// Scores[i] is the model's score on Report.Series[i]; Errors[i] is
	// set instead when the series could not be scored.
	Scores []SeriesScore `json:"scores"`
	// Aggregates over subsets of series (ratios to the reference, which
	// are 1 for the reference itself).
	Aggregates []Aggregate `json:"aggregates,omitempty"`
	Forecasts  int         `json:"forecasts"`
	// Datasets has one aggregate per BOOM dataset (its variates),
	// OverDatasets the geometric (and arithmetic) means of the datasets'
	// geometric means, each dataset weighted 1 as in BOOM's own
	// aggregation; N counts datasets there.
	Datasets     []Aggregate `json:"datasets,omitempty"`
	OverDatasets []Aggregate `json:"over_datasets,omitempty"`
	// WallS and CPUS are the medians over Report.Rounds passes over
	// every series (CPU: the process's user + system time).
	WallS    Num `json:"wall_seconds"`
	CPUS     Num `json:"cpu_seconds"`
	batchErr error
}

// SeriesScore is a Score with the ratios to the reference (NaN where left
// out) and the error that kept the series from being scored.
type SeriesScore struct {
	MASE        Num    `json:"mase"`
	WQL         Num    `json:"wql"`
	Windows     int    `json:"windows"`
	MASEWindows int    `json:"mase_windows"`
	Points      int    `json:"points"`
	Below       int    `json:"below_q10"`
	Above       int    `json:"above_q90"`
	MASERatio   Num    `json:"mase_ratio"`
	WQLRatio    Num    `json:"wql_ratio"`
	Err         string `json:"error,omitempty"`
}

// Aggregate is a model's ratios over one subset of series.
type Aggregate struct {
	Subset string `json:"subset"`
	// NMASE, NWQL: series with a ratio for that metric.
	NMASE    int `json:"n_mase"`
	NWQL     int `json:"n_wql"`
	GeoMASE  Num `json:"geomean_mase_ratio"`
	MeanMASE Num `json:"mean_mase_ratio"`
	GeoWQL   Num `json:"geomean_wql_ratio"`
	MeanWQL  Num `json:"mean_wql_ratio"`
	Failed   int `json:"failed"` // series the model failed on
	// Coverage, Below, Above: the shares of all actuals of the subset's
	// series (all of them, excluded ones too) inside [q0.1, q0.9], under
	// and over it; nominally 0.8, 0.1, 0.1.
	Coverage Num `json:"coverage_80"`
	Below    Num `json:"below_q10"`
	Above    Num `json:"above_q90"`
	// FlooredMASE, FlooredWQL: ratios below ratioFloor (0 when the model
	// is exact where the reference is not), floored in the geometric mean.
	FlooredMASE int `json:"floored_mase"`
	FlooredWQL  int `json:"floored_wql"`
}

// Subset is a named filter over series.
type Subset struct {
	Name string
	Keep func(Series) bool
}

// Subsets are the aggregates every report shows.
var Subsets = []Subset{
	{"all", func(Series) bool { return true }},
	{"without " + ExcludedDataset, func(s Series) bool { return s.Dataset != ExcludedDataset }},
	{"10S", func(s Series) bool { return s.Freq == "10S" }},
	{"T", func(s Series) bool { return s.Freq == "T" }},
	{"5T", func(s Series) bool { return s.Freq == "5T" }},
	{"5T without " + ExcludedDataset, func(s Series) bool { return s.Freq == "5T" && s.Dataset != ExcludedDataset }},
}

// PerSecond is forecasts per second of the model's wall time.
func (m ModelResult) PerSecond() float64 { return float64(m.Forecasts) / float64(m.WallS) }

// Run forecasts every series with the reference and each model and
// computes the report. Models run one after the other (so each one's time
// is its own); within a model, Parallelism series at a time.
func Run(ctx context.Context, o Options) (*Report, error) {
	if len(o.Series) == 0 {
		return nil, fmt.Errorf("boom: no series")
	}
	par := o.Parallelism
	if par <= 0 {
		par = runtime.GOMAXPROCS(0)
	}
	rep := &Report{Levels: Levels, Parallelism: par, Rounds: max(o.Rounds, 1), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	for _, f := range Freqs {
		p := Protocols[f]
		if o.Origins > 0 {
			p.K = o.Origins
		}
		if o.Context > 0 {
			p.C = o.Context
		}
		rep.Protocols = append(rep.Protocols, p)
	}
	origins := make([][]int, len(o.Series))
	for i, s := range o.Series {
		p := protocol(rep, s.Freq)
		origins[i] = Origins(len(s.Values), p)
		rep.Series = append(rep.Series, SeriesInfo{Name: s.Name, Dataset: s.Dataset, Freq: s.Freq, Points: len(s.Values), Windows: len(origins[i])})
	}
	ref, _ := SpecByName("reference")
	var err error
	if rep.Reference, err = runModel(ctx, rep, ref, o.Series, origins, par); err != nil {
		return nil, err
	}
	for i := range rep.Reference.Scores {
		s := &rep.Reference.Scores[i]
		s.MASERatio, s.WQLRatio = Num(math.NaN()), Num(math.NaN())
		if s.MASE > 0 {
			s.MASERatio = 1
		}
		if s.WQL > 0 {
			s.WQLRatio = 1
		}
	}
	for _, sub := range Subsets {
		rep.Reference.Aggregates = append(rep.Reference.Aggregates, aggregate(sub, o.Series, rep.Reference.Scores))
	}
	for i, s := range rep.Reference.Scores {
		if s.Err != "" {
			return nil, fmt.Errorf("boom: reference on %s: %s", rep.Series[i].Name, s.Err)
		}
		if !(s.MASE > 0) {
			rep.ExcludedMASE = append(rep.ExcludedMASE, rep.Series[i].Name)
		}
		if !(s.WQL > 0) {
			rep.ExcludedWQL = append(rep.ExcludedWQL, rep.Series[i].Name)
		}
	}
	models := append([]ModelSpec(nil), o.Models...)
	for _, spec := range models {
		mr, err := runModel(ctx, rep, spec, o.Series, origins, par)
		if err != nil {
			return nil, err
		}
		for i := range mr.Scores {
			s, r := &mr.Scores[i], rep.Reference.Scores[i]
			s.MASERatio, s.WQLRatio = Num(math.NaN()), Num(math.NaN())
			if s.Err != "" {
				continue
			}
			if r.MASE > 0 {
				s.MASERatio = s.MASE / r.MASE
			}
			if r.WQL > 0 {
				s.WQLRatio = s.WQL / r.WQL
			}
		}
		for _, sub := range Subsets {
			mr.Aggregates = append(mr.Aggregates, aggregate(sub, o.Series, mr.Scores))
		}
		for _, d := range datasets(o.Series) {
			mr.Datasets = append(mr.Datasets, aggregate(Subset{d, func(s Series) bool { return s.Dataset == d }}, o.Series, mr.Scores))
		}
		for _, without := range []bool{false, true} {
			a := Aggregate{Subset: "geometric mean over datasets"}
			if without {
				a.Subset += ", without " + ExcludedDataset
			}
			var ms, ws []float64
			for _, d := range mr.Datasets {
				if without && d.Subset == ExcludedDataset {
					continue
				}
				if d.NMASE > 0 {
					ms = append(ms, float64(d.GeoMASE))
					a.NMASE++
				}
				if d.NWQL > 0 {
					ws = append(ws, float64(d.GeoWQL))
					a.NWQL++
				}
			}
			a.GeoMASE, a.MeanMASE = Num(GeoMean(ms)), Num(Mean(ms))
			a.GeoWQL, a.MeanWQL = Num(GeoMean(ws)), Num(Mean(ws))
			a.Coverage, a.Below, a.Above = Num(math.NaN()), Num(math.NaN()), Num(math.NaN())
			mr.OverDatasets = append(mr.OverDatasets, a)
		}
		rep.Models = append(rep.Models, mr)
		if spec.Name == "default" {
			if rep.DefaultSeasons, err = DetectedSeasons(ctx, o.Series, origins, rep.Protocols, par); err != nil {
				return nil, err
			}
		}
	}
	return rep, nil
}

func protocol(rep *Report, freq string) Protocol {
	for _, p := range rep.Protocols {
		if p.Freq == freq {
			return p
		}
	}
	panic("boom: no protocol for " + freq) // LoadDir checked every frequency
}

// runModel forecasts every series' windows with spec (one request per
// series) and scores them.
func runModel(ctx context.Context, rep *Report, spec ModelSpec, series []Series, origins [][]int, par int) (ModelResult, error) {
	mr := ModelResult{Name: spec.Name, Config: spec.Config, Scores: make([]SeriesScore, len(series))}
	models := map[string]forecast.Model{}
	for _, p := range rep.Protocols {
		m, err := spec.New(p)
		if err != nil {
			return mr, fmt.Errorf("boom: model %s for %s: %w", spec.Name, p.Freq, err)
		}
		models[p.Freq] = m
	}
	rounds := max(rep.Rounds, 1)
	walls, cpus := make([]float64, rounds), make([]float64, rounds)
	for r := range rounds {
		walls[r], cpus[r] = forecastAll(ctx, rep, spec, models, series, origins, par, &mr)
		if ctx.Err() != nil || mr.batchErr != nil {
			break
		}
	}
	// Medians over the rounds: the machine is shared; the scores are the
	// same every round (the models keep no state without Keys).
	mr.WallS, mr.CPUS = Num(median(walls)), Num(median(cpus))
	for _, o := range origins {
		mr.Forecasts += len(o)
	}
	if err := ctx.Err(); err != nil {
		return mr, err
	}
	return mr, mr.batchErr
}

func median(x []float64) float64 {
	x = slices.Clone(x)
	slices.Sort(x)
	n := len(x)
	if n%2 == 1 {
		return x[n/2]
	}
	return (x[n/2-1] + x[n/2]) / 2
}

// forecastAll forecasts and scores every series once into mr.Scores and
// returns the wall and CPU seconds it took.
func forecastAll(ctx context.Context, rep *Report, spec ModelSpec, models map[string]forecast.Model, series []Series, origins [][]int, par int, mr *ModelResult) (wall, cpu float64) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		next = make(chan int)
	)
	cpu0 := cpuSeconds()
	t0 := time.Now()
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s := series[i]
				p := protocol(rep, s.Freq)
				fc, err := models[s.Freq].Forecast(ctx, Request(s.Values, p, origins[i]))
				if err != nil {
					mu.Lock()
					mr.batchErr = fmt.Errorf("boom: %s on %s: %w", spec.Name, s.Name, err)
					mu.Unlock()
					continue
				}
				sc, err := Evaluate(s.Values, p, origins[i], fc)
				if err != nil {
					mr.Scores[i] = SeriesScore{MASE: Num(math.NaN()), WQL: Num(math.NaN()), Err: err.Error()}
					continue
				}
				mr.Scores[i] = SeriesScore{MASE: Num(sc.MASE), WQL: Num(sc.WQL), Windows: sc.Windows, MASEWindows: sc.MASEWindows,
					Points: sc.Points, Below: sc.Below, Above: sc.Above}
			}
		}()
	}
	for i := range series {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	return time.Since(t0).Seconds(), cpuSeconds() - cpu0
}

// cpuSeconds is this process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// ratioFloor is where the geometric mean floors a ratio: a model can be
// exact on a sparse series where the reference is not, and one ratio of 0
// would zero the mean. No ratio in the committed results is that low (the
// report counts them).
const ratioFloor = 0.01

func aggregate(sub Subset, series []Series, scores []SeriesScore) Aggregate {
	a := Aggregate{Subset: sub.Name}
	var ms, ws []float64
	var pts, below, above int
	for i, s := range series {
		if !sub.Keep(s) {
			continue
		}
		sc := scores[i]
		if sc.Err != "" {
			a.Failed++
			continue
		}
		pts += sc.Points
		below += sc.Below
		above += sc.Above
		if r := float64(sc.MASERatio); !math.IsNaN(r) {
			ms = append(ms, r)
			if r < ratioFloor {
				a.FlooredMASE++
			}
		}
		if r := float64(sc.WQLRatio); !math.IsNaN(r) {
			ws = append(ws, r)
			if r < ratioFloor {
				a.FlooredWQL++
			}
		}
	}
	a.NMASE, a.NWQL = len(ms), len(ws)
	a.Coverage, a.Below, a.Above = Num(math.NaN()), Num(math.NaN()), Num(math.NaN())
	if pts > 0 {
		a.Below, a.Above = Num(float64(below)/float64(pts)), Num(float64(above)/float64(pts))
		a.Coverage = 1 - a.Below - a.Above
	}
	a.GeoMASE, a.MeanMASE = Num(GeoMean(ms)), Num(Mean(ms))
	a.GeoWQL, a.MeanWQL = Num(GeoMean(ws)), Num(Mean(ws))
	return a
}

// GeoMean is the geometric mean of x, each floored at ratioFloor; NaN for
// none.
func GeoMean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range x {
		s += math.Log(math.Max(v, ratioFloor))
	}
	return math.Exp(s / float64(len(x)))
}

// Mean is the arithmetic mean of x; NaN for none.
func Mean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// Num is a float64 that is null in JSON when NaN or ±Inf.
type Num float64

// MarshalJSON implements json.Marshaler.
func (n Num) MarshalJSON() ([]byte, error) {
	v := float64(n)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return []byte("null"), nil
	}
	return json.Marshal(v)
}

// UnmarshalJSON implements json.Unmarshaler (null is NaN).
func (n *Num) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*n = Num(math.NaN())
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*n = Num(v)
	return nil
}

// Markdown renders the report's tables.
func (r *Report) Markdown(perSeries bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Series: %d (", len(r.Series))
	for i, f := range Freqs {
		n, w := 0, 0
		for _, s := range r.Series {
			if s.Freq == f {
				n++
				w += s.Windows
			}
		}
		p := protocol(r, f)
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %d series, %d windows, H=%d m=%d C=%d K=%d", f, n, w, p.H, p.M, p.C, p.K)
	}
	fmt.Fprintf(&b, "). Levels 0.1…0.9. Parallelism %d series at a time, GOMAXPROCS %d.\n\n", r.Parallelism, r.GOMAXPROCS)

	b.WriteString("Models:\n\n")
	for _, m := range r.Models {
		fmt.Fprintf(&b, "- `%s`: %s\n", m.Name, m.Config)
	}
	fmt.Fprintf(&b, "- reference: %s\n\n", r.Reference.Config)

	b.WriteString("#### Ratios to the reference (geometric mean over series; arithmetic mean in brackets; < 1 is better)\n\n")
	b.WriteString("| model | subset | n MASE | MASE ratio | n WQL | WQL ratio |\n| --- | --- | --: | --: | --: | --: |\n")
	for _, m := range r.Models {
		for _, a := range m.Aggregates {
			fmt.Fprintf(&b, "| `%s` | %s | %d | %s (%s) | %d | %s (%s) |\n", m.Name, a.Subset, a.NMASE, f3(a.GeoMASE), f3(a.MeanMASE), a.NWQL, f3(a.GeoWQL), f3(a.MeanWQL))
		}
	}
	var notes []string
	for _, m := range r.Models {
		a := m.Aggregates[0]
		if a.Failed > 0 {
			notes = append(notes, fmt.Sprintf("`%s` failed on %d series", m.Name, a.Failed))
		}
		if a.FlooredMASE+a.FlooredWQL > 0 {
			var names []string
			for i, s := range m.Scores {
				if s.MASERatio < ratioFloor || s.WQLRatio < ratioFloor {
					names = append(names, r.Series[i].Name)
				}
			}
			notes = append(notes, fmt.Sprintf("`%s` has %d MASE and %d WQL ratios below %v, floored there in the geometric means (%s)",
				m.Name, a.FlooredMASE, a.FlooredWQL, ratioFloor, strings.Join(names, ", ")))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintf(&b, "\n%s.\n", strings.Join(notes, ";\n"))
	}

	b.WriteString("\n#### By dataset (geometric mean over its variates of the MASE ratio / WQL ratio)\n\n| dataset | variates with a ratio |")
	for _, m := range r.Models {
		fmt.Fprintf(&b, " `%s` |", m.Name)
	}
	b.WriteString("\n| --- | --: |")
	for range r.Models {
		b.WriteString(" --: |")
	}
	b.WriteString("\n")
	if len(r.Models) > 0 {
		for di, d := range r.Models[0].Datasets {
			fmt.Fprintf(&b, "| %s | %d |", d.Subset, d.NMASE)
			for _, m := range r.Models {
				a := m.Datasets[di]
				fmt.Fprintf(&b, " %s / %s |", f3(a.GeoMASE), f3(a.GeoWQL))
			}
			b.WriteString("\n")
		}
		for oi, o := range r.Models[0].OverDatasets {
			fmt.Fprintf(&b, "| **%s** | %d datasets |", o.Subset, o.NMASE)
			for _, m := range r.Models {
				a := m.OverDatasets[oi]
				fmt.Fprintf(&b, " **%s / %s** |", f3(a.GeoMASE), f3(a.GeoWQL))
			}
			b.WriteString("\n")
		}
	}

	b.WriteString("\n#### The reference's own errors (geometric mean over series of MASE and WQL, arithmetic mean in brackets)\n\n")
	b.WriteString("| subset | n MASE | MASE | n WQL | WQL |\n| --- | --- | --: | --: | --: |\n")
	for _, sub := range Subsets {
		var ms, ws []float64
		for i, s := range r.Series {
			if !sub.Keep(Series{Name: s.Name, Dataset: s.Dataset, Freq: s.Freq}) {
				continue
			}
			if v := float64(r.Reference.Scores[i].MASE); v > 0 {
				ms = append(ms, v)
			}
			if v := float64(r.Reference.Scores[i].WQL); v > 0 {
				ws = append(ws, v)
			}
		}
		fmt.Fprintf(&b, "| %s | %d | %s (%s) | %d | %s (%s) |\n", sub.Name, len(ms), f3(Num(rawGeo(ms))), f3(Num(Mean(ms))), len(ws), f3(Num(rawGeo(ws))), f3(Num(Mean(ws))))
	}

	b.WriteString("\n#### Coverage of the 10–90 % band (not part of the protocol: share of all actuals inside [q0.1, q0.9], under it / over it; nominal 0.80, 0.10 / 0.10)\n\n| model |")
	for _, sub := range Subsets {
		fmt.Fprintf(&b, " %s |", sub.Name)
	}
	b.WriteString("\n| --- |")
	for range Subsets {
		b.WriteString(" --: |")
	}
	b.WriteString("\n")
	for _, m := range append([]ModelResult{r.Reference}, r.Models...) {
		fmt.Fprintf(&b, "| `%s` |", m.Name)
		for _, a := range m.Aggregates {
			fmt.Fprintf(&b, " %.2f (%.2f / %.2f) |", float64(a.Coverage), float64(a.Below), float64(a.Above))
		}
		b.WriteString("\n")
	}

	b.WriteString("\nLeft out of the MASE ratios (reference MASE 0 or undefined): ")
	b.WriteString(listOrNone(r.ExcludedMASE))
	b.WriteString(".\nLeft out of the WQL ratios (reference WQL 0 or undefined): ")
	b.WriteString(listOrNone(r.ExcludedWQL))
	b.WriteString(".\n")

	fmt.Fprintf(&b, "\n#### Speed (models one after the other; each forecasts every series %d times, medians; a forecast is one window: fit on C points, H steps, 9 levels)\n\n", r.Rounds)
	b.WriteString("| model | forecasts | wall s | forecasts/s | CPU s | CPU ms per forecast |\n| --- | --: | --: | --: | --: | --: |\n")
	for _, m := range append([]ModelResult{r.Reference}, r.Models...) {
		fmt.Fprintf(&b, "| `%s` | %d | %.2f | %.0f | %.2f | %.2f |\n", m.Name, m.Forecasts, float64(m.WallS), m.PerSecond(), float64(m.CPUS), 1000*float64(m.CPUS)/float64(m.Forecasts))
	}

	if perSeries {
		b.WriteString("\n#### Per series: reference MASE / WQL, then each model's MASE ratio / WQL ratio\n\n| series | reference |")
		for _, m := range r.Models {
			fmt.Fprintf(&b, " `%s` |", m.Name)
		}
		if r.DefaultSeasons != nil {
			b.WriteString(" `default`'s detected season (windows) |")
		}
		b.WriteString("\n| --- | --: |")
		for range r.Models {
			b.WriteString(" --: |")
		}
		if r.DefaultSeasons != nil {
			b.WriteString(" --- |")
		}
		b.WriteString("\n")
		for i, s := range r.Series {
			rs := r.Reference.Scores[i]
			fmt.Fprintf(&b, "| %s | %s / %s |", s.Name, f3(rs.MASE), f3(rs.WQL))
			for _, m := range r.Models {
				sc := m.Scores[i]
				if sc.Err != "" {
					fmt.Fprintf(&b, " error: %s |", sc.Err)
					continue
				}
				fmt.Fprintf(&b, " %s / %s |", f3(sc.MASERatio), f3(sc.WQLRatio))
			}
			if r.DefaultSeasons != nil {
				fmt.Fprintf(&b, " %s |", seasonsString(r.DefaultSeasons[i]))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func rawGeo(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range x {
		s += math.Log(v)
	}
	return math.Exp(s / float64(len(x)))
}

func f3(v Num) string {
	if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
		return "–"
	}
	return fmt.Sprintf("%.3f", float64(v))
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

// seasonCandidates are the periods builtin's season detection tries
// (pkg/forecast/builtin/season.go, unexported there; keep in step).
var seasonCandidates = []time.Duration{
	time.Hour, 2 * time.Hour, 3 * time.Hour, 4 * time.Hour, 6 * time.Hour, 8 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 7 * 24 * time.Hour,
}

// DetectedSeasons infers, for every window of every series, the season the
// default model detected: the candidate period whose explicitly configured
// holt_winters forecast is identical to the default's (same period, same
// fit; the default has no other state). Candidates that need more than the
// context (two seasons) cannot be detected and are not tried; "none" means
// no candidate matched, i.e. the default fitted Holt's damped trend
// without a season. out[i] counts windows by season for series i, e.g.
// {"8h0m0s": 20}.
func DetectedSeasons(ctx context.Context, series []Series, origins [][]int, protocols []Protocol, par int) ([]map[string]int, error) {
	out := make([]map[string]int, len(series))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
		next = make(chan int)
	)
	if par <= 0 {
		par = runtime.GOMAXPROCS(0)
	}
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				m, err := detectedSeasons(ctx, series[i], origins[i], protocols)
				mu.Lock()
				out[i] = m
				if err != nil && ferr == nil {
					ferr = fmt.Errorf("boom: seasons of %s: %w", series[i].Name, err)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range series {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, ferr
}

func detectedSeasons(ctx context.Context, s Series, origins []int, protocols []Protocol) (map[string]int, error) {
	var p Protocol
	for _, q := range protocols {
		if q.Freq == s.Freq {
			p = q
		}
	}
	req := Request(s.Values, p, origins)
	def, err := builtin.Default().Forecast(ctx, req)
	if err != nil {
		return nil, err
	}
	found := make([]string, len(origins))
	for _, c := range seasonCandidates {
		m := int(c / s.Step)
		if c%s.Step != 0 || m < 4 || 2*m > p.C {
			continue
		}
		cfg := config.DefaultBuiltinConfig
		cfg.Season = model.Duration(c)
		hw, err := builtin.New(cfg)
		if err != nil {
			return nil, err
		}
		fc, err := hw.Forecast(ctx, req)
		if err != nil {
			return nil, err
		}
		for w := range origins {
			if found[w] == "" && fc[w].Err == nil && def[w].Err == nil && equalValues(fc[w].Values, def[w].Values) {
				found[w] = model.Duration(c).String()
			}
		}
	}
	out := map[string]int{}
	for _, f := range found {
		if f == "" {
			f = "none"
		}
		out[f]++
	}
	return out, nil
}

func equalValues(a, b [][]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// seasonsString renders a DetectedSeasons entry, most frequent first.
func seasonsString(m map[string]int) string {
	type kv struct {
		k string
		n int
	}
	var kvs []kv
	for k, n := range m {
		kvs = append(kvs, kv{k, n})
	}
	slices.SortFunc(kvs, func(a, b kv) int {
		if a.n != b.n {
			return b.n - a.n
		}
		return strings.Compare(a.k, b.k)
	})
	var parts []string
	for _, e := range kvs {
		parts = append(parts, fmt.Sprintf("%s×%d", e.k, e.n))
	}
	return strings.Join(parts, " ")
}

// datasets lists the series' datasets, sorted.
func datasets(series []Series) []string {
	var out []string
	for _, s := range series {
		out = append(out, s.Dataset)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
