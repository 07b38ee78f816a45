//go:build libtorch

// Command tsfmbench is the foundation-model benchmark of issue 5
// (BENCHMARKS.md, "Foundation model in the sidecar"): series per second
// through the sidecar's whole evaluation (pkg/pipeline's Rule.Eval: read
// through the PromQL engine from an in-process TSDB, align and prepare,
// forecast with a Chronos-Bolt TorchScript file, score, emit) against the
// official Python pipeline (chronos-forecasting's
// ChronosBoltPipeline.predict_quantiles, libtorch/bench_chronos_python.py)
// forecasting the same rows with the same random weights, batch size and
// threads, interleaved and repeated in one run, with where the time goes
// on each side.
//
//	make bench-tsfm
//	make bench-tsfm TSFMBENCH_FLAGS='-context 2048 -series 64 -rounds 3'
//
// Without -model the file is exported first with libtorch/export.py
// (--random-init --seed S) into -model-dir, and reused from there. Needs
// the libtorch environment of the Makefile's TORCH_ENV (CGO_* flags) and the
// export tool's packages (make export-deps).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/openanomaly/openanomaly/internal/benchinfo"
	"github.com/openanomaly/openanomaly/pkg/backtest"
	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/torch"
	_ "github.com/openanomaly/openanomaly/pkg/forecast/tsfm" // the chronos-bolt family
	"github.com/openanomaly/openanomaly/pkg/pipeline"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
	"github.com/openanomaly/openanomaly/pkg/unittest"
)

type options struct {
	python, script, exportScript, modelID, model, modelDir, data, jsonOut string
	context, horizon, series, batch, threads, rounds, evals               int
	seed                                                                  int
	step                                                                  time.Duration
	horizons                                                              []time.Duration
}

func main() {
	var o options
	var horizons string
	py := os.Getenv("OPENANOMALY_TORCH_PYTHON")
	if py == "" {
		py = "python3"
	}
	flag.StringVar(&o.python, "python", py, "Python with the same torch as the linked libtorch and chronos-forecasting (make export-deps; default $OPENANOMALY_TORCH_PYTHON or python3)")
	flag.StringVar(&o.script, "script", "libtorch/bench_chronos_python.py", "the Python side")
	flag.StringVar(&o.exportScript, "export-script", "libtorch/export.py", "the export tool, for -model empty")
	flag.StringVar(&o.modelID, "model-id", "amazon/chronos-bolt-small", "the checkpoint whose architecture gets random weights (a chronos-bolt one)")
	flag.StringVar(&o.model, "model", "", "the tsfm/v1 file, exported with --random-init --seed -seed; empty: export it into -model-dir (once)")
	flag.StringVar(&o.modelDir, "model-dir", "bin/tsfmbench-models", "where -model empty keeps the exported files")
	flag.StringVar(&o.data, "data", "", "the shared data folder with nab/ and boom/ (default $OPENANOMALY_DATA_DIR or ../shared/data)")
	flag.IntVar(&o.context, "context", 512, "context length L of the file and the pipeline (context = L steps)")
	flag.IntVar(&o.horizon, "horizon", 64, "the file's horizon")
	flag.IntVar(&o.seed, "seed", 1, "seed of the random weights")
	flag.IntVar(&o.series, "series", 256, "input series (windows of NAB and BOOM files under distinct labels)")
	flag.IntVar(&o.batch, "batch", 32, "batch size of both sides (the model's batch_size; Python: series per predict_quantiles call)")
	flag.IntVar(&o.threads, "threads", 2, "intra-op threads of both sides (Python: interop threads 1)")
	flag.IntVar(&o.rounds, "rounds", 5, "measured rounds")
	flag.IntVar(&o.evals, "evals", 2, "evaluations per side and round")
	flag.DurationVar(&o.step, "step", 5*time.Minute, "the series' step and the pipeline's")
	flag.StringVar(&horizons, "horizons", "1h,4h", "the pipeline's horizons")
	flag.StringVar(&o.jsonOut, "json", "", "also write every measurement to this file")
	flag.Parse()
	for _, s := range strings.Split(horizons, ",") {
		d, err := model.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			fatal(fmt.Errorf("-horizons: %v", err))
		}
		o.horizons = append(o.horizons, time.Duration(d))
	}
	if o.data == "" {
		o.data = os.Getenv("OPENANOMALY_DATA_DIR")
		if o.data == "" {
			o.data = filepath.Join("..", "shared", "data")
		}
	}
	if o.evals < 2 || o.rounds < 1 || o.series < 1 || o.batch < 1 || o.context%16 != 0 {
		fatal(errors.New("need -evals >= 2, -rounds >= 1, -series >= 1, -batch >= 1, -context a multiple of 16"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, o)
	if err != nil {
		fatal(err)
	}
	fmt.Print(rep.markdown())
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonOut, b, 0o644); err != nil {
			fatal(err)
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "tsfmbench:", err)
	os.Exit(1)
}

// window is one input series: a window of a file's values under its own
// labels, laid on the step grid from t0.
type window struct {
	lset   labels.Labels
	values []float64
}

// sidecarRun is the sidecar's time over some evaluations, split by stage.
type sidecarRun struct {
	Evaluations int     `json:"evaluations"`
	Seconds     float64 `json:"seconds"` // the Rule.Eval calls
	// The pipeline's own stage metrics
	// (openanomaly_pipeline_evaluation_duration_seconds{stage}).
	Fetch float64 `json:"fetch_seconds"`
	Model float64 `json:"model_seconds"`
	Emit  float64 `json:"emit_seconds"`
	// Inside the model stage: the shim's timing (torch.ShimForwardStats).
	ShimForward float64 `json:"shim_forward_seconds"`
	ShimCall    float64 `json:"shim_call_seconds"`
	ShimCalls   int64   `json:"shim_calls"`
	Samples     int64   `json:"samples_emitted"`
}

func (a sidecarRun) add(b sidecarRun) sidecarRun {
	return sidecarRun{a.Evaluations + b.Evaluations, a.Seconds + b.Seconds, a.Fetch + b.Fetch, a.Model + b.Model,
		a.Emit + b.Emit, a.ShimForward + b.ShimForward, a.ShimCall + b.ShimCall, a.ShimCalls + b.ShimCalls, a.Samples + b.Samples}
}

// pythonRun is the Python side's answer to "run".
type pythonRun struct {
	Evaluations int     `json:"evaluations"`
	Seconds     float64 `json:"seconds"`
	Prep        float64 `json:"prep_seconds"`
	PipelinePre float64 `json:"pipeline_pre_seconds"`
	Forward     float64 `json:"forward_seconds"`
	Post        float64 `json:"post_seconds"`
	Forwards    int     `json:"forwards"`
	Rows        int     `json:"rows"`
}

func (a pythonRun) add(b pythonRun) pythonRun {
	return pythonRun{a.Evaluations + b.Evaluations, a.Seconds + b.Seconds, a.Prep + b.Prep, a.PipelinePre + b.PipelinePre,
		a.Forward + b.Forward, a.Post + b.Post, a.Forwards + b.Forwards, a.Rows + b.Rows}
}

type round struct {
	Round        int        `json:"round"`
	SidecarFirst bool       `json:"sidecar_first"`
	FirstEval    int        `json:"first_evaluation"`
	Sidecar      sidecarRun `json:"sidecar"`
	Python       pythonRun  `json:"python"`
	SidecarSPS   float64    `json:"sidecar_series_per_s"`
	PythonSPS    float64    `json:"python_series_per_s"`
	Ratio        float64    `json:"ratio"`
	LoadAvg      string     `json:"loadavg"`
}

type report struct {
	Machine    string     `json:"machine"`
	LoadStart  string     `json:"loadavg_start"`
	LoadEnd    string     `json:"loadavg_end"`
	Commit     string     `json:"commit"`
	Torch      string     `json:"libtorch"`
	PyTorch    string     `json:"python_torch"`
	Model      string     `json:"model"`
	ModelID    string     `json:"model_id"`
	Seed       int        `json:"seed"`
	Context    int        `json:"context"`
	Horizon    int        `json:"file_horizon"`
	Batch      int        `json:"batch"`
	Threads    int        `json:"threads"`
	GoMaxProcs int        `json:"gomaxprocs"`
	Series     int        `json:"series"`
	Data       string     `json:"data"`
	Rule       string     `json:"rule"`
	Requests   string     `json:"requests"`
	Agreement  string     `json:"agreement"`
	Cold       sidecarRun `json:"cold_evaluation"`
	Rounds     []round    `json:"rounds"`
	Evals      int        `json:"evaluations_per_side_and_round"`
	Command    []string   `json:"command"`
}

func run(ctx context.Context, o options) (*report, error) {
	rep := &report{LoadStart: benchinfo.LoadAvg(), Machine: benchinfo.Machine(), Commit: benchinfo.Commit(), Torch: torch.Version(), ModelID: o.modelID,
		Seed: o.seed, Context: o.context, Horizon: o.horizon, Batch: o.batch, Threads: o.threads,
		GoMaxProcs: runtime.GOMAXPROCS(0), Series: o.series, Evals: o.evals, Command: os.Args}
	if o.model == "" {
		o.model = filepath.Join(o.modelDir, fmt.Sprintf("%s-c%d-h%d-seed%d.pt", filepath.Base(o.modelID), o.context, o.horizon, o.seed))
		if _, err := os.Stat(o.model); err != nil {
			if err := os.MkdirAll(o.modelDir, 0o755); err != nil {
				return nil, err
			}
			tmp := o.model + ".tmp"
			cmd := exec.CommandContext(ctx, o.python, o.exportScript, "--model", o.modelID, "--random-init", "--seed", strconv.Itoa(o.seed),
				"--context", strconv.Itoa(o.context), "--horizon", strconv.Itoa(o.horizon), "--device", "cpu", "--out", tmp)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				return nil, fmt.Errorf("%s: %v", strings.Join(cmd.Args, " "), err)
			}
			if err := os.Rename(tmp, o.model); err != nil {
				return nil, err
			}
		}
	}
	rep.Model = o.model

	tm, err := torch.New(config.TorchScriptConfig{Path: o.model, Device: "cpu", BatchSize: o.batch, Threads: o.threads})
	if err != nil {
		return nil, err
	}
	defer tm.Close()
	md := tm.Metadata()
	if md.Family != "chronos-bolt" || md.ContextLength != o.context {
		return nil, fmt.Errorf("%s: family %q, context %d; want chronos-bolt, %d", o.model, md.Family, md.ContextLength, o.context)
	}

	// Evaluations: 3 warm-up ones (the first a cold full read), then
	// rounds × evals; evaluation k sees the points [k, k+L) of every window.
	total := 3 + o.rounds*o.evals
	wins, desc, err := windows(o.data, o.series, o.context+total)
	if err != nil {
		return nil, err
	}
	rep.Data = desc
	stepMs := o.step.Milliseconds()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	store, err := openStore(ctx, wins, t0, stepMs)
	if err != nil {
		return nil, err
	}
	defer store.close()
	engine := backtest.NewEngine(time.Minute)
	defer engine.Close()
	querier := &unittest.Querier{Engine: engine, Queryable: store.queryable()}

	// The pipeline, as a rule file would give it.
	hs := make([]string, len(o.horizons))
	for i, h := range o.horizons {
		hs[i] = model.Duration(h).String()
	}
	ruleYAML := fmt.Sprintf(`groups:
  - name: tsfmbench
    interval: %s
    rules:
      - forecast: tsfmbench
        expr: value
        model: chronos
        step: %s
        context: %s
        horizons: [%s]
        quantiles: [0.1, 0.5, 0.9]
        anomaly: {band: [0.1, 0.9]}
`, model.Duration(o.step), model.Duration(o.step), model.Duration(time.Duration(o.context)*o.step), strings.Join(hs, ", "))
	rgs, errs := rulefmt.Parse([]byte(ruleYAML), "tsfmbench.yml")
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	spec := rgs.Groups[0].Rules[0]
	rep.Rule = strings.Join(strings.Fields(strings.ReplaceAll(ruleYAML[strings.Index(ruleYAML, "- forecast"):], "\n", "; ")), " ")
	rule := pipeline.NewRule(spec, config.DefaultMetricPrefix)
	rec := &recModel{m: tm}
	models := forecast.NewRegistry()
	if err := models.Register("chronos", rec); err != nil {
		return nil, err
	}
	promReg := prometheus.NewRegistry()
	metrics := pipeline.NewMetrics(promReg)
	app := &countingAppender{}
	futureH := 1
	for _, h := range o.horizons {
		futureH = max(futureH, int((h+o.step-1)/o.step))
	}
	rep.Requests = fmt.Sprintf("per evaluation and series: a score row (the %d points before the newest, horizon 1) and a future row (the newest %d points, horizon %d), levels %v, so %d rows per evaluation in forwards of at most %d (at least %d forwards)",
		o.context-1, o.context, futureH, spec.Quantiles, 2*o.series, o.batch, (2*o.series+o.batch-1)/o.batch)

	next := 0 // the sidecar's next evaluation
	evalSidecar := func(n int) (sidecarRun, error) {
		before := stageSums(promReg)
		sb, _ := torch.ShimForwardStats(tm)
		samples := app.n
		var secs float64
		for range n {
			ts := time.UnixMilli(t0 + int64(o.context-1+next)*stepMs)
			start := time.Now()
			err := rule.Eval(ctx, ts, pipeline.EvalOptions{Querier: querier, Models: models, Appender: app, Metrics: metrics})
			secs += time.Since(start).Seconds()
			if err != nil {
				return sidecarRun{}, fmt.Errorf("evaluation %d: %w", next, err)
			}
			if st := rule.Status(); len(st.SkippedLastEval) > 0 {
				return sidecarRun{}, fmt.Errorf("evaluation %d skipped series: %v", next, st.SkippedLastEval)
			}
			next++
		}
		after := stageSums(promReg)
		sa, _ := torch.ShimForwardStats(tm)
		d := sa.Sub(sb)
		return sidecarRun{Evaluations: n, Seconds: secs, Fetch: after["fetch"] - before["fetch"], Model: after["model"] - before["model"],
			Emit: after["emit"] - before["emit"], ShimForward: d.Forward.Seconds(), ShimCall: d.Call.Seconds(), ShimCalls: d.Calls,
			Samples: app.n - samples}, nil
	}

	dataFile, err := os.CreateTemp("", "tsfmbench-*.json")
	if err != nil {
		return nil, err
	}
	defer os.Remove(dataFile.Name())
	if err := writeData(dataFile, wins, o.context, spec.Quantiles, futureH); err != nil {
		return nil, err
	}
	py, err := startPython(ctx, o, dataFile.Name())
	if err != nil {
		return nil, err
	}
	defer py.close()
	rep.PyTorch = py.torch

	// Warm-up: evaluation 0 on both sides (the sidecar's is the cold full
	// read), evaluation 1 recorded and compared, evaluation 2.
	fmt.Fprintln(os.Stderr, "warm-up")
	if rep.Cold, err = evalSidecar(1); err != nil {
		return nil, err
	}
	if _, err := py.run(0, 1); err != nil {
		return nil, err
	}
	rec.record(true)
	if _, err := evalSidecar(1); err != nil {
		return nil, err
	}
	rec.record(false)
	if rep.Agreement, err = agreement(rec, py, wins, o.context, futureH, 1); err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "check:", rep.Agreement)
	if _, err := evalSidecar(1); err != nil {
		return nil, err
	}
	if _, err := py.run(2, 1); err != nil {
		return nil, err
	}

	for r := range o.rounds {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// A B A: the side that goes first (alternating) runs half its
		// evaluations before the other side's and half after. Both sides
		// evaluate the same evaluation times k0 … k0+evals-1.
		k0 := next
		rd := round{Round: r + 1, SidecarFirst: r%2 == 0, FirstEval: k0}
		n1 := o.evals / 2
		if rd.SidecarFirst {
			a, err := evalSidecar(n1)
			if err != nil {
				return nil, err
			}
			if rd.Python, err = py.run(k0, o.evals); err != nil {
				return nil, err
			}
			b, err := evalSidecar(o.evals - n1)
			if err != nil {
				return nil, err
			}
			rd.Sidecar = a.add(b)
		} else {
			a, err := py.run(k0, n1)
			if err != nil {
				return nil, err
			}
			if rd.Sidecar, err = evalSidecar(o.evals); err != nil {
				return nil, err
			}
			b, err := py.run(k0+n1, o.evals-n1)
			if err != nil {
				return nil, err
			}
			rd.Python = a.add(b)
		}
		rd.SidecarSPS = float64(o.series*rd.Sidecar.Evaluations) / rd.Sidecar.Seconds
		rd.PythonSPS = float64(o.series*rd.Python.Evaluations) / rd.Python.Seconds
		rd.Ratio = rd.SidecarSPS / rd.PythonSPS
		rd.LoadAvg = benchinfo.LoadAvg()
		rep.Rounds = append(rep.Rounds, rd)
		fmt.Fprintf(os.Stderr, "round %d: sidecar %.2f series/s (%.2f s/eval), python %.2f series/s (%.2f s/eval), ratio %.3f; load %s\n",
			r+1, rd.SidecarSPS, rd.Sidecar.Seconds/float64(rd.Sidecar.Evaluations), rd.PythonSPS,
			rd.Python.Seconds/float64(rd.Python.Evaluations), rd.Ratio, rd.LoadAvg)
	}
	rep.LoadEnd = benchinfo.LoadAvg()
	return rep, nil
}

// agreement compares the sidecar model's answers in the recorded
// evaluation k with the Python pipeline's for the same evaluation, after
// checking that the rows the sidecar gave the model are the windows' rows
// the Python side forecasts.
func agreement(rec *recModel, py *pyWorker, wins []window, l, futureH, k int) (string, error) {
	reqs, res := rec.take()
	if len(reqs) != 2 {
		return "", fmt.Errorf("recorded %d model requests in one evaluation, want 2 (score and future)", len(reqs))
	}
	if reqs[0].Horizon != 1 {
		reqs[0], reqs[1], res[0], res[1] = reqs[1], reqs[0], res[1], res[0]
	}
	if reqs[0].Horizon != 1 || reqs[1].Horizon != futureH {
		return "", fmt.Errorf("recorded horizons %d and %d, want 1 and %d", reqs[0].Horizon, reqs[1].Horizon, futureH)
	}
	for ri, want := range []func(w window) []float64{
		func(w window) []float64 { return w.values[k : k+l-1] },
		func(w window) []float64 { return w.values[k : k+l] },
	} {
		if len(reqs[ri].Histories) != len(wins) {
			return "", fmt.Errorf("request %d has %d rows for %d series", ri, len(reqs[ri].Histories), len(wins))
		}
		for i, w := range wins {
			if !slices.Equal(reqs[ri].Histories[i], want(w)) {
				return "", fmt.Errorf("request %d row %d (%s) is not the window's rows the Python side forecasts", ri, i, w.lset)
			}
		}
	}
	score, future, err := py.check(k)
	if err != nil {
		return "", err
	}
	worst := 0.0
	for ri, ref := range [][][][]float64{score, future} {
		for i := range wins {
			got := res[ri][i]
			if got.Err != nil {
				return "", fmt.Errorf("series %d: %w", i, got.Err)
			}
			scale := 1.0
			for _, v := range wins[i].values[k : k+l] {
				scale = max(scale, math.Abs(v))
			}
			for qi := range ref[i] {
				for s := range ref[i][qi] {
					worst = max(worst, math.Abs(got.Values[qi][s]-ref[i][qi][s])/scale)
				}
			}
		}
	}
	return fmt.Sprintf("evaluation %d: the rows the sidecar's model got are exactly the rows the Python side forecasts (%d series × 2); the sidecar's quantiles and the pipeline's (its 9 levels sorted at each step, as the sidecar sorts them) differ by at most %.2g of each series' scale",
		k, len(wins), worst), nil
}

// recModel passes requests to the TorchScript model and, while recording,
// keeps copies of them and of the answers.
type recModel struct {
	m   *torch.Model
	mu  sync.Mutex
	on  bool
	req []forecast.Request
	res [][]forecast.Forecast
}

func (r *recModel) SharesBatches() bool { return r.m.SharesBatches() }

func (r *recModel) record(on bool) {
	r.mu.Lock()
	r.on = on
	r.mu.Unlock()
}

func (r *recModel) take() ([]forecast.Request, [][]forecast.Forecast) {
	r.mu.Lock()
	defer r.mu.Unlock()
	req, res := r.req, r.res
	r.req, r.res = nil, nil
	return req, res
}

func (r *recModel) Forecast(ctx context.Context, req forecast.Request) ([]forecast.Forecast, error) {
	fc, err := r.m.Forecast(ctx, req)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on && err == nil {
		c := req
		c.Histories = make([][]float64, len(req.Histories))
		for i, h := range req.Histories {
			c.Histories[i] = slices.Clone(h) // the pipeline reuses them
		}
		r.req = append(r.req, c)
		r.res = append(r.res, fc)
	}
	return fc, err
}

// countingAppender stands in for remote-write: it counts what it gets.
type countingAppender struct{ n int64 }

func (a *countingAppender) Append(labels.Labels, int64, float64) { a.n++ }

// stageSums reads the sums of the pipeline's stage histogram.
func stageSums(g prometheus.Gatherer) map[string]float64 {
	out := map[string]float64{}
	mfs, err := g.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "openanomaly_pipeline_evaluation_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "stage" {
					out[lp.GetValue()] += m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return out
}

// store is every window in one TSDB block, read through block queriers as
// pkg/backtest reads its CSV files.
type store struct {
	dir   string
	block *tsdb.Block
}

func openStore(ctx context.Context, wins []window, t0, stepMs int64) (*store, error) {
	dir, err := os.MkdirTemp("", "tsfmbench-tsdb-")
	if err != nil {
		return nil, err
	}
	s := &store{dir: dir}
	logger := slog.New(slog.DiscardHandler)
	span := int64(len(wins[0].values)) * stepMs
	w, err := tsdb.NewBlockWriter(logger, dir, 2*span)
	if err != nil {
		s.close()
		return nil, err
	}
	defer w.Close()
	app := w.Appender(ctx)
	for _, win := range wins {
		var ref storage.SeriesRef
		for j, v := range win.values {
			if math.IsNaN(v) {
				continue // a missing point
			}
			if ref, err = app.Append(ref, win.lset, t0+int64(j)*stepMs, v); err != nil {
				_ = app.Rollback()
				s.close()
				return nil, err
			}
		}
	}
	if err := app.Commit(); err != nil {
		s.close()
		return nil, err
	}
	id, err := w.Flush(ctx)
	if err != nil {
		s.close()
		return nil, err
	}
	if s.block, err = tsdb.OpenBlock(logger, filepath.Join(dir, id.String()), nil, nil); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *store) queryable() storage.Queryable {
	return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		return tsdb.NewBlockQuerier(s.block, mint, maxt)
	})
}

func (s *store) close() {
	if s.block != nil {
		_ = s.block.Close()
	}
	_ = os.RemoveAll(s.dir)
}

// windows cuts n windows of length size, without NaN, from the NAB files
// (the real* folders and artificialWithAnomaly) and the BOOM series: the
// files in name order, one window from each file that has room, then a
// second non-overlapping one from each, and so on. Each window is its own
// series {__name__="value", file=..., window=...}; the result is sorted by
// labels, the order the pipeline gives its model.
func windows(dir string, n, size int) ([]window, string, error) {
	var files []string
	for _, sub := range []string{"nab/realKnownCause", "nab/realAWSCloudwatch", "nab/realAdExchange", "nab/realTraffic", "nab/realTweets", "nab/artificialWithAnomaly", "boom/series"} {
		fs, _ := filepath.Glob(filepath.Join(dir, sub, "*.csv"))
		slices.Sort(fs)
		files = append(files, fs...)
	}
	if len(files) == 0 {
		return nil, "", fmt.Errorf("no NAB or BOOM files in %s (set -data or OPENANOMALY_DATA_DIR)", dir)
	}
	vals := make([][]float64, len(files))
	for i, f := range files {
		vs, err := loadCSV(f)
		if err != nil {
			return nil, "", err
		}
		vals[i] = vs
	}
	var out []window
	used := map[string]bool{}
	nab, boom := 0, 0
	for pass := 0; len(out) < n; pass++ {
		added := false
		for i, f := range files {
			if len(out) == n {
				break
			}
			// the pass-th window without NaN, stepping by whole windows
			off, found := 0, 0
			for ; off+size <= len(vals[i]); off += size {
				if slices.ContainsFunc(vals[i][off:off+size], math.IsNaN) {
					continue
				}
				if found == pass {
					break
				}
				found++
			}
			if off+size > len(vals[i]) {
				continue
			}
			rel, _ := filepath.Rel(dir, f)
			used[rel] = true
			if strings.HasPrefix(rel, "nab") {
				nab++
			} else {
				boom++
			}
			out = append(out, window{lset: labels.FromStrings(labels.MetricName, "value", "file", rel, "window", strconv.Itoa(pass)),
				values: slices.Clone(vals[i][off : off+size])})
			added = true
		}
		if !added {
			return nil, "", fmt.Errorf("the files in %s hold only %d windows of %d points without NaN; want %d", dir, len(out), size, n)
		}
	}
	slices.SortFunc(out, func(a, b window) int { return labels.Compare(a.lset, b.lset) })
	return out, fmt.Sprintf("%d windows of %d consecutive values without NaN (%d from NAB, %d from BOOM; %d files) laid on one regular grid, each its own series",
		n, size, nab, boom, len(used)), nil
}

// loadCSV reads the value column (the second) of a NAB or BOOM file; an
// empty or unparsable value is NaN.
func loadCSV(path string) ([]float64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var vs []float64
	for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if i == 0 {
			continue
		}
		_, v, ok := strings.Cut(line, ",")
		if !ok {
			continue
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || math.IsInf(x, 0) {
			x = math.NaN()
		}
		vs = append(vs, x)
	}
	return vs, nil
}

func writeData(f *os.File, wins []window, l int, qs []float64, futureH int) error {
	series := make([][]*float64, len(wins))
	for i, w := range wins {
		series[i] = make([]*float64, len(w.values))
		for t, v := range w.values {
			if !math.IsNaN(v) {
				series[i][t] = &v
			}
		}
	}
	if err := json.NewEncoder(f).Encode(map[string]any{"series": series, "context": l, "quantiles": qs,
		"score_horizon": 1, "future_horizon": futureH}); err != nil {
		return err
	}
	return f.Close()
}

// pyWorker is libtorch/bench_chronos_python.py, started once, driven line
// by line.
type pyWorker struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	torch string
}

func startPython(ctx context.Context, o options, data string) (*pyWorker, error) {
	cmd := exec.CommandContext(ctx, o.python, o.script, "--model-id", o.modelID, "--context", strconv.Itoa(o.context),
		"--seed", strconv.Itoa(o.seed), "--file", o.model, "--data", data, "--threads", strconv.Itoa(o.threads),
		"--batch-size", strconv.Itoa(o.batch))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	w := &pyWorker{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}
	var ready struct {
		Torch   string `json:"torch"`
		Threads int    `json:"threads"`
		Interop int    `json:"interop_threads"`
		Series  int    `json:"series"`
	}
	if err := w.read(&ready); err != nil {
		w.close()
		return nil, fmt.Errorf("%s: %w", o.script, err)
	}
	if ready.Threads != o.threads || ready.Interop != 1 || ready.Series != o.series {
		w.close()
		return nil, fmt.Errorf("%s runs %d threads, %d interop threads, %d series; want %d, 1, %d", o.script, ready.Threads, ready.Interop, ready.Series, o.threads, o.series)
	}
	w.torch = ready.Torch
	return w, nil
}

func (w *pyWorker) read(v any) error {
	line, err := w.out.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("python side: %w", err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(line, &e) == nil && e.Error != "" {
		return fmt.Errorf("python side: %s", e.Error)
	}
	return json.Unmarshal(line, v)
}

func (w *pyWorker) run(k, n int) (pythonRun, error) {
	if _, err := fmt.Fprintf(w.in, "run %d %d\n", k, n); err != nil {
		return pythonRun{}, err
	}
	var r pythonRun
	err := w.read(&r)
	return r, err
}

func (w *pyWorker) check(k int) (score, future [][][]float64, err error) {
	if _, err := fmt.Fprintf(w.in, "check %d\n", k); err != nil {
		return nil, nil, err
	}
	var r struct {
		Score  [][][]float64 `json:"score"`
		Future [][][]float64 `json:"future"`
	}
	if err := w.read(&r); err != nil {
		return nil, nil, err
	}
	return r.Score, r.Future, nil
}

func (w *pyWorker) close() {
	fmt.Fprintln(w.in, "quit")
	w.in.Close()
	done := make(chan struct{})
	go func() { w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		w.cmd.Process.Kill()
		<-done
	}
}

func (r *report) markdown() string {
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w("Machine: %s. Commit %s. libtorch %s (sidecar), torch %s (Python). CPU, %d intra-op threads on both sides (Python: 1 interop thread), GOMAXPROCS %d.\n",
		r.Machine, r.Commit, r.Torch, r.PyTorch, r.Threads, r.GoMaxProcs)
	w("Model: %s with random weights (seed %d), context %d, file horizon %d: `%s`; batch size %d on both sides.\n",
		r.ModelID, r.Seed, r.Context, r.Horizon, r.Model, r.Batch)
	w("Data: %s. Pipeline: `%s`. Model requests: %s.\n", r.Data, r.Rule, r.Requests)
	w("Check: %s.\n", r.Agreement)
	var loads []string
	for _, rd := range r.Rounds {
		loads = append(loads, rd.LoadAvg)
	}
	w("1-minute load average: %s at the start, %s after each round (this benchmark adds about 2).\n", r.LoadStart, strings.Join(loads, ", "))
	w("Cold first evaluation of the sidecar (full read of the context): %.2f s (fetch %.3f s, model %.2f s).\n", r.Cold.Seconds, r.Cold.Fetch, r.Cold.Model)
	w("Each round: both sides evaluate the same %d evaluation times, A B A (the side that goes first alternates; it runs half before the other side and half after); %d rounds. Series/s = series × evaluations / seconds.\n\n", r.Evals, len(r.Rounds))

	w("| round | first | sidecar s/evaluation | Python s/evaluation | sidecar series/s | Python series/s | sidecar/Python | load |\n")
	w("| --: | --- | --: | --: | --: | --: | --: | --: |\n")
	var ratios, ss, ps []float64
	for _, rd := range r.Rounds {
		first := "Python"
		if rd.SidecarFirst {
			first = "sidecar"
		}
		w("| %d | %s | %.3f | %.3f | %.2f | %.2f | %.3f | %s |\n", rd.Round, first, rd.Sidecar.Seconds/float64(rd.Sidecar.Evaluations),
			rd.Python.Seconds/float64(rd.Python.Evaluations), rd.SidecarSPS, rd.PythonSPS, rd.Ratio, rd.LoadAvg)
		ratios, ss, ps = append(ratios, rd.Ratio), append(ss, rd.SidecarSPS), append(ps, rd.PythonSPS)
	}
	w("| **median** | | | | %.2f | %.2f | **%.3f** | |\n\n", benchinfo.Median(ss), benchinfo.Median(ps), benchinfo.Median(ratios))

	// Breakdown: per evaluation, medians over the rounds of each part.
	per := func(f func(rd round) float64) float64 {
		var xs []float64
		for _, rd := range r.Rounds {
			xs = append(xs, f(rd))
		}
		return benchinfo.Median(xs)
	}
	se := func(rd round) float64 { return float64(rd.Sidecar.Evaluations) }
	pe := func(rd round) float64 { return float64(rd.Python.Evaluations) }
	sTot := per(func(rd round) float64 { return rd.Sidecar.Seconds / se(rd) })
	pTot := per(func(rd round) float64 { return rd.Python.Seconds / pe(rd) })
	row := func(side, part string, f func(rd round) float64, tot float64) {
		v := per(f)
		w("| %s | %s | %.1f | %.1f %% |\n", side, part, 1e3*v, 100*v/tot)
	}
	w("Where the time goes, per evaluation (ms; medians over the rounds of each part, so the parts need not add up exactly):\n\n")
	w("| side | part | ms | share |\n| --- | --- | --: | --: |\n")
	row("sidecar", "fetch: query_range through the PromQL engine (stage `fetch`)", func(rd round) float64 { return rd.Sidecar.Fetch / se(rd) }, sTot)
	row("sidecar", "prepare: merge into the history, gone/new points, keys, rows (between the stages)", func(rd round) float64 {
		s := rd.Sidecar
		return (s.Seconds - s.Fetch - s.Model - s.Emit) / se(rd)
	}, sTot)
	row("sidecar", "model (stage `model`, both requests)", func(rd round) float64 { return rd.Sidecar.Model / se(rd) }, sTot)
	row("sidecar", "· shim forward (module.forward)", func(rd round) float64 { return rd.Sidecar.ShimForward / se(rd) }, sTot)
	row("sidecar", "· shim around the forward (input tensor, output copies, hand-over)", func(rd round) float64 {
		return (rd.Sidecar.ShimCall - rd.Sidecar.ShimForward) / se(rd)
	}, sTot)
	row("sidecar", "· Go outside the shim (windows to float32, batcher, adapter, quantile sort and map)", func(rd round) float64 {
		return (rd.Sidecar.Model - rd.Sidecar.ShimCall) / se(rd)
	}, sTot)
	row("sidecar", "emit: score, labels, exposition, appender (stage `emit`)", func(rd round) float64 { return rd.Sidecar.Emit / se(rd) }, sTot)
	row("sidecar", "**total** (Rule.Eval)", func(rd round) float64 { return rd.Sidecar.Seconds / se(rd) }, sTot)
	row("Python", "tensors from the lists (torch.tensor per row)", func(rd round) float64 { return rd.Python.Prep / pe(rd) }, pTot)
	row("Python", "predict_quantiles before the forward (left_pad_and_stack_1D, truncation, to device)", func(rd round) float64 { return rd.Python.PipelinePre / pe(rd) }, pTot)
	row("Python", "model forward (ChronosBoltModelForForecasting, eager)", func(rd round) float64 { return rd.Python.Forward / pe(rd) }, pTot)
	row("Python", "predict_quantiles after the forward (cast, swapaxes, levels)", func(rd round) float64 { return rd.Python.Post / pe(rd) }, pTot)
	row("Python", "rest of the loop (slicing, chunking, torch.cat)", func(rd round) float64 {
		p := rd.Python
		return (p.Seconds - p.Prep - p.PipelinePre - p.Forward - p.Post) / pe(rd)
	}, pTot)
	row("Python", "**total**", func(rd round) float64 { return rd.Python.Seconds / pe(rd) }, pTot)
	w("\nForwards per evaluation: sidecar %.1f (%.1f ms each, shim-timed), Python %.1f (%.1f ms each); samples emitted per evaluation: %.0f.\n",
		per(func(rd round) float64 { return float64(rd.Sidecar.ShimCalls) / se(rd) }),
		per(func(rd round) float64 { return 1e3 * rd.Sidecar.ShimForward / float64(max(1, rd.Sidecar.ShimCalls)) }),
		per(func(rd round) float64 { return float64(rd.Python.Forwards) / pe(rd) }),
		per(func(rd round) float64 { return 1e3 * rd.Python.Forward / float64(max(1, rd.Python.Forwards)) }),
		per(func(rd round) float64 { return float64(rd.Sidecar.Samples) / se(rd) }))
	return sb.String()
}
