package bench

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Report is what a run measured.
type Report struct {
	Options        Options      `json:"-"`
	Started        time.Time    `json:"started"`
	Finished       time.Time    `json:"finished"`
	Machine        string       `json:"machine"`
	SidecarVersion string       `json:"sidecar_version"`
	Revision       string       `json:"revision"` // git describe of the tree the harness ran in
	Load           LoadTimes    `json:"load"`
	Sidecar        []SidecarRun `json:"sidecar"`
	Peers          []PeerResult `json:"peers"`
	StoreHWM       []NamedBytes `json:"store_hwm"`
}

// LoadTimes are the preparation steps.
type LoadTimes struct {
	HistorySamples  int     `json:"history_samples"`
	PromtoolSeconds float64 `json:"promtool_s"` // OpenMetrics file + promtool blocks
	VMImportSeconds float64 `json:"vm_import_s"`
}

// NamedBytes is a process' peak memory.
type NamedBytes struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// SidecarRun is the sidecar reading from one store one way.
type SidecarRun struct {
	Mode           string        `json:"mode"`
	Store          string        `json:"store"`
	Read           string        `json:"read"`
	Evals          []SidecarEval `json:"evals"`
	Failures       float64       `json:"failures"`
	SentSamples    float64       `json:"sent_samples"`
	DroppedSamples float64       `json:"dropped_samples"`
	FailedSamples  float64       `json:"failed_samples"`
}

// SidecarEval is one evaluation of the benchmark pipeline.
type SidecarEval struct {
	Cold bool      `json:"cold"`
	Slot time.Time `json:"slot"`
	// Wall is openanomaly_group_last_duration_seconds.
	Wall float64 `json:"wall_s"`
	// Stages are the increases of
	// openanomaly_pipeline_evaluation_duration_seconds_sum by stage.
	Stages map[string]float64 `json:"stages_s"`
	// CPU is the sidecar's CPU time from just before the slot (the start,
	// for the cold one) until its remote-write queue was drained; StoreCPU
	// the store's over the same window (queries, ingesting the outputs,
	// any scrape of the live tail that fell into it).
	CPU          float64 `json:"cpu_s"`
	StoreCPU     float64 `json:"store_cpu_s"`
	HWM          int64   `json:"vmhwm_bytes"` // VmHWM after the evaluation
	InputSeries  float64 `json:"input_series"`
	OutputSeries float64 `json:"output_series"`
	Failed       bool    `json:"failed"`
	// Read is the kind of read openanomaly_pipeline_reads_total counted
	// (full, incremental; empty for a binary without that metric).
	Read string `json:"read,omitempty"`
	Note string `json:"note,omitempty"`
}

// PeerResult is one peer group in one engine.
type PeerResult struct {
	Engine string     `json:"engine"`
	Group  string     `json:"group"`
	Evals  []PeerEval `json:"evals"`
}

func newReport(o Options) *Report {
	return &Report{Options: o, Started: time.Now(), Machine: machine()}
}

func machine() string {
	model := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
		}
	}
	return fmt.Sprintf("%s, %d cores%s, %s/%s", model, runtime.NumCPU(), mem, runtime.GOOS, runtime.GOARCH)
}

// SidecarSummary are the medians of one run's steady state and its cold
// evaluation.
type SidecarSummary struct {
	Cold, Steady SidecarEval
	SteadyN      int
	PeakHWM      int64
}

// Summary returns the cold evaluation and the medians of the others.
func (s SidecarRun) Summary() SidecarSummary {
	var out SidecarSummary
	cols := map[string][]float64{}
	for _, e := range s.Evals {
		out.PeakHWM = max(out.PeakHWM, e.HWM)
		if e.Cold {
			out.Cold = e
			continue
		}
		out.SteadyN++
		cols["wall"] = append(cols["wall"], e.Wall)
		cols["cpu"] = append(cols["cpu"], e.CPU)
		cols["store"] = append(cols["store"], e.StoreCPU)
		for k, v := range e.Stages {
			cols[k] = append(cols[k], v)
		}
	}
	out.Steady = SidecarEval{Wall: median(cols["wall"]), CPU: median(cols["cpu"]), StoreCPU: median(cols["store"]),
		Stages: map[string]float64{"fetch": median(cols["fetch"]), "model": median(cols["model"]), "emit": median(cols["emit"])}}
	return out
}

// PeerSummary is the medians of one peer group.
func (p PeerResult) medians() (wall, cpu float64, n, nCPU int) {
	var ws, cs []float64
	for _, e := range p.Evals {
		ws = append(ws, e.Wall)
		if !math.IsNaN(e.CPU) {
			cs = append(cs, e.CPU)
		}
	}
	return median(ws), median(cs), len(ws), len(cs)
}

// peerTotals sums the group medians of one engine.
func (r *Report) peerTotals(engine string) (wall, cpu float64, minN int) {
	minN = -1
	for _, p := range r.Peers {
		if p.Engine != engine {
			continue
		}
		w, c, n, _ := p.medians()
		wall += w
		cpu += c
		if minN < 0 || n < minN {
			minN = n
		}
	}
	return wall, cpu, minN
}

// Check returns an error unless the report is complete and sane: every
// mode has a cold and at least one steady evaluation with every stage
// timed, no evaluation failed, and every peer group was measured.
func (r *Report) Check() error {
	var problems []string
	if len(r.Sidecar) != len(r.Options.Modes) {
		problems = append(problems, fmt.Sprintf("%d of %d sidecar modes ran", len(r.Sidecar), len(r.Options.Modes)))
	}
	anyCPU := false
	for _, s := range r.Sidecar {
		if len(s.Evals) < 2 || !s.Evals[0].Cold {
			problems = append(problems, fmt.Sprintf("%s: %d evaluations, want a cold and a steady one", s.Mode, len(s.Evals)))
		}
		for i, e := range s.Evals {
			if e.Failed {
				problems = append(problems, fmt.Sprintf("%s: evaluation %d failed", s.Mode, i+1))
			}
			// CPU comes from /proc in clock ticks (10 ms): a small run's
			// evaluation may honestly take none; it must be measured.
			if !(e.Wall > 0) || !(e.CPU >= 0) || math.IsInf(e.CPU, 0) {
				problems = append(problems, fmt.Sprintf("%s: evaluation %d: wall %v, CPU %v", s.Mode, i+1, e.Wall, e.CPU))
			}
			if e.CPU > 0 {
				anyCPU = true
			}
			for _, st := range []string{"fetch", "model", "emit"} {
				if !(e.Stages[st] > 0) {
					problems = append(problems, fmt.Sprintf("%s: evaluation %d: stage %s %v", s.Mode, i+1, st, e.Stages[st]))
				}
			}
			if sum := e.Stages["fetch"] + e.Stages["model"] + e.Stages["emit"]; sum > e.Wall*1.05+0.01 {
				problems = append(problems, fmt.Sprintf("%s: evaluation %d: stages sum to %.3fs, more than the %.3fs wall", s.Mode, i+1, sum, e.Wall))
			}
			if int(e.InputSeries) != r.Options.Series {
				problems = append(problems, fmt.Sprintf("%s: evaluation %d: %v input series, want %d", s.Mode, i+1, e.InputSeries, r.Options.Series))
			}
			if e.OutputSeries < e.InputSeries {
				problems = append(problems, fmt.Sprintf("%s: evaluation %d: %v output series", s.Mode, i+1, e.OutputSeries))
			}
			if e.Cold && e.Read != "" && e.Read != "full" {
				problems = append(problems, fmt.Sprintf("%s: cold evaluation read %q, want full", s.Mode, e.Read))
			}
			if e.HWM <= 0 {
				problems = append(problems, fmt.Sprintf("%s: evaluation %d: no VmHWM", s.Mode, i+1))
			}
		}
		if s.DroppedSamples > 0 || s.FailedSamples > 0 || s.SentSamples == 0 {
			problems = append(problems, fmt.Sprintf("%s: remote-write sent %v, dropped %v, failed %v", s.Mode, s.SentSamples, s.DroppedSamples, s.FailedSamples))
		}
	}
	if len(r.Sidecar) > 0 && !anyCPU {
		problems = append(problems, "no sidecar evaluation used any CPU: the /proc measurement is broken")
	}
	groups := map[string]bool{}
	for _, p := range r.Peers {
		groups[p.Group] = true
		w, _, n, nCPU := p.medians()
		if n == 0 || !(w > 0) {
			problems = append(problems, fmt.Sprintf("peer %s/%s: %d evaluations, median %v", p.Engine, p.Group, n, w))
		}
		if nCPU == 0 {
			problems = append(problems, fmt.Sprintf("peer %s/%s: no CPU measurement", p.Engine, p.Group))
		}
	}
	if len(r.Peers) == 0 || len(r.Peers) != 2*len(groups) {
		problems = append(problems, fmt.Sprintf("%d peer results for %d groups", len(r.Peers), len(groups)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w:\n  %s", errIncomplete, strings.Join(problems, "\n  "))
	}
	return nil
}

func fmtBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	default:
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	}
}

func f2(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.2f", x)
}

func ratio(a, b float64) string {
	if !(b > 0) || math.IsNaN(a) {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

var modeTitle = map[string]string{
	ModeVM:             "VictoriaMetrics, query_range",
	ModePromQueryRange: "Prometheus, query_range",
	ModePromRemoteRead: "Prometheus, remote_read",
}

// Markdown renders the report's tables.
func (r *Report) Markdown() string {
	o := r.Options
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("Machine: %s. Sidecar: %s (tree %s).\n", r.Machine, r.SidecarVersion, r.Revision)
	w("Data: %d series × %s of 1-minute history (%d samples; promtool %.0fs, VictoriaMetrics import %.0fs), seed %d; live tail scraped every %s.\n",
		o.Series, modelDuration(o.History), r.Load.HistorySamples, r.Load.PromtoolSeconds, r.Load.VMImportSeconds, o.Seed, o.ScrapeInterval)
	w("Sidecar: one pipeline, `expr: load`, default model, step 1m, context %s, quantiles [0.05, 0.5, 0.95], horizons [15m, 1h], anomaly on; interval %s, %d evaluations per store (1 cold + %d steady), outputs remote-written to the store read from.\n",
		modelDuration(o.History), o.Interval, o.Evals, o.Evals-1)
	w("Peers: peer-rules.yml, one group at a time, interval %s, measured in the gaps between the sidecar's evaluations.\n\n", o.PeerInterval)

	w("### Sidecar per evaluation (cold = first, full read; steady = median of the others)\n\n")
	w("| store, read | eval | n | wall s | fetch s | model s | emit s | sidecar CPU s | store CPU s | sidecar VmHWM |\n")
	w("| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: |\n")
	for _, s := range r.Sidecar {
		sm := s.Summary()
		c := sm.Cold
		w("| %s | cold | 1 | %s | %s | %s | %s | %s | %s | %s |\n", modeTitle[s.Mode], f2(c.Wall), f2(c.Stages["fetch"]), f2(c.Stages["model"]), f2(c.Stages["emit"]), f2(c.CPU), f2(c.StoreCPU), fmtBytes(c.HWM))
		st := sm.Steady
		w("| %s | steady | %d | %s | %s | %s | %s | %s | %s | %s |\n", modeTitle[s.Mode], sm.SteadyN, f2(st.Wall), f2(st.Stages["fetch"]), f2(st.Stages["model"]), f2(st.Stages["emit"]), f2(st.CPU), f2(st.StoreCPU), fmtBytes(sm.PeakHWM))
	}
	w("\nEvery evaluation:\n\n| store, read | # | slot (UTC) | wall s | fetch s | model s | emit s | sidecar CPU s | store CPU s | VmHWM | in / out series | read |\n")
	w("| --- | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --- |\n")
	for _, s := range r.Sidecar {
		for i, e := range s.Evals {
			note := ""
			if e.Failed {
				note = " FAILED"
			}
			if e.Note != "" {
				note += " (" + e.Note + ")"
			}
			w("| %s | %d%s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f / %.0f | %s |\n", modeTitle[s.Mode], i+1, note, e.Slot.UTC().Format(time.TimeOnly),
				f2(e.Wall), f2(e.Stages["fetch"]), f2(e.Stages["model"]), f2(e.Stages["emit"]), f2(e.CPU), f2(e.StoreCPU), fmtBytes(e.HWM), e.InputSeries, e.OutputSeries, e.Read)
		}
	}
	w("\nRemote-write: ")
	for i, s := range r.Sidecar {
		if i > 0 {
			w("; ")
		}
		w("%s sent %.0f, dropped %.0f, failed %.0f samples", s.Mode, s.SentSamples, s.DroppedSamples, s.FailedSamples)
	}
	w(".\n\n### Peers (median per evaluation; CPU = the engine's processes between two evaluations' ends)\n\n")
	w("| engine | group | n | wall s | CPU s (n) |\n| --- | --- | --: | --: | --: |\n")
	peers := append([]PeerResult(nil), r.Peers...)
	sort.SliceStable(peers, func(i, j int) bool { return peers[i].Engine > peers[j].Engine })
	for _, p := range peers {
		wl, c, n, nc := p.medians()
		w("| %s | %s | %d | %s | %s (%d) |\n", p.Engine, p.Group, n, f2(wl), f2(c), nc)
	}
	for _, e := range []string{enginePrometheus, engineVM} {
		wl, c, _ := r.peerTotals(e)
		w("| %s | **all three** | | **%s** | **%s** |\n", e, f2(wl), f2(c))
	}
	w("\n### Ratios, sidecar steady state / peer (the three groups together), same run\n\n")
	w("| sidecar reading | peer | wall ratio | CPU ratio (sidecar + store / peer) |\n| --- | --- | --: | --: |\n")
	for _, s := range r.Sidecar {
		st := s.Summary().Steady
		for _, e := range []string{enginePrometheus, engineVM} {
			pw, pc, _ := r.peerTotals(e)
			w("| %s | %s | %s | %s |\n", modeTitle[s.Mode], e, ratio(st.Wall, pw), ratio(st.CPU+st.StoreCPU, pc))
		}
	}
	w("\nPeak memory (VmHWM) of the stores at the end: ")
	for i, s := range r.StoreHWM {
		if i > 0 {
			w(", ")
		}
		w("%s %s", s.Name, fmtBytes(s.Bytes))
	}
	w(".\n")
	return b.String()
}

func sortFloats(v []float64) { sort.Float64s(v) }
