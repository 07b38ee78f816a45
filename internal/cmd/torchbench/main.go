//go:build libtorch

// Command torchbench is the TorchScript throughput and overhead benchmark
// of issue 4 (BENCHMARKS.md, "TorchScript throughput"): the sidecar's Go
// path, (*torch.Model).Forecast, against a Python loop calling the same
// TorchScript file (libtorch/bench_python.py), interleaved, for a few batch
// sizes, on the same real-looking histories (NAB files, some short, some
// with NaNs). It also reads the C++ shim's own timing of forward
// (torch.ShimForwardStats) to split the Go path's time into the graph's
// forward and everything around it.
//
//	make bench-torch
//	go run -tags libtorch ./internal/cmd/torchbench -python PY [-model FILE.pt] [-rounds 5] ...
//
// Without -model it writes the benchmark's file first, with
// libtorch/make_bench_fixture.py and the same python. Needs the libtorch
// environment of the Makefile's test-libtorch target (CGO_* flags).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/openanomaly/openanomaly/internal/benchinfo"
	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/torch"
)

type options struct {
	model, python, script, fixtureScript, data, device, jsonOut string
	compareDevice                                               string
	pyProbe                                                     bool
	batches                                                     []int
	threads, rounds, horizon                                    int
	seconds                                                     float64
	seed                                                        uint64
}

func main() {
	var o options
	var batches string
	py := os.Getenv("OPENANOMALY_TORCH_PYTHON")
	if py == "" {
		py = "python3"
	}
	flag.StringVar(&o.model, "model", "", "the tsfm/v1 file; empty: write one with -fixture-script into a temporary folder")
	flag.StringVar(&o.python, "python", py, "Python with the same torch as the linked libtorch (default $OPENANOMALY_TORCH_PYTHON or python3)")
	flag.StringVar(&o.script, "script", "libtorch/bench_python.py", "the Python side")
	flag.StringVar(&o.fixtureScript, "fixture-script", "libtorch/make_bench_fixture.py", "writes the file when -model is empty")
	flag.StringVar(&o.data, "data", "", "NAB folder (default $OPENANOMALY_DATA_DIR/nab, or ../shared/data/nab), or \"synthetic\" (seasonal series with noise and spikes, for machines without the data set)")
	flag.StringVar(&o.device, "device", "cpu", "device of both sides: cpu, cuda, cuda:N")
	flag.StringVar(&batches, "batches", "1,32,256", "batch sizes")
	flag.IntVar(&o.threads, "threads", 2, "intra-op threads of both sides (Python: interop threads 1)")
	flag.IntVar(&o.rounds, "rounds", 5, "measured rounds; each runs every batch size on both sides")
	flag.IntVar(&o.horizon, "horizon", 64, "steps forecast (at most the file's)")
	flag.Float64Var(&o.seconds, "seconds", 2, "target length of one measurement (one side, one batch size, one round)")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the history windows")
	flag.StringVar(&o.jsonOut, "json", "", "also write the measurements to this file")
	flag.StringVar(&o.compareDevice, "compare-device", "", "also load the file on this device and compare the Go path's forecasts there (e.g. cpu, with -device cuda)")
	flag.BoolVar(&o.pyProbe, "python-probe", false, "the Python side first runs the Go loader's probe batch ([2, L], one row half NaN), as the Go side does at load")
	version := flag.Bool("version", false, "print the libtorch version and exit (make bench-torch TORCHBENCH_FLAGS=-version only builds bin/torchbench)")
	flag.Parse()
	if *version {
		fmt.Println("torchbench, libtorch", torch.Version())
		return
	}
	for _, s := range strings.Split(batches, ",") {
		b, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || b < 1 {
			fatal(fmt.Errorf("-batches: bad batch size %q", s))
		}
		o.batches = append(o.batches, b)
	}
	if o.data == "" {
		if d := os.Getenv("OPENANOMALY_DATA_DIR"); d != "" {
			o.data = filepath.Join(d, "nab")
		} else {
			o.data = filepath.Join("..", "shared", "data", "nab")
		}
	}
	// Interrupted: the Python side is killed and the temporary files go.
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
	fmt.Fprintln(os.Stderr, "torchbench:", err)
	os.Exit(1)
}

// measurement is one side's run of one batch size in one round.
type measurement struct {
	Iterations int     `json:"iterations"`
	Seconds    float64 `json:"seconds"` // the whole loop
	SeriesPerS float64 `json:"series_per_s"`
	// Go: the shim's forward and whole-call time (ShimStats); Python: the
	// module call (forward) only.
	ForwardSeconds float64 `json:"forward_seconds"`
	CallSeconds    float64 `json:"call_seconds,omitempty"`
	ShimCalls      int64   `json:"shim_calls,omitempty"`
}

func (m measurement) overhead() float64 { return 1 - m.ForwardSeconds/m.Seconds }

// add sums two runs of batch size b.
func (m measurement) add(o measurement, b int) measurement {
	s := measurement{Iterations: m.Iterations + o.Iterations, Seconds: m.Seconds + o.Seconds,
		ForwardSeconds: m.ForwardSeconds + o.ForwardSeconds, CallSeconds: m.CallSeconds + o.CallSeconds,
		ShimCalls: m.ShimCalls + o.ShimCalls}
	s.SeriesPerS = float64(b*s.Iterations) / s.Seconds
	return s
}

type round struct {
	Batch    int         `json:"batch"`
	Round    int         `json:"round"`
	GoFirst  bool        `json:"go_first"`
	Go       measurement `json:"go"`
	Python   measurement `json:"python"`
	LoadAvg  string      `json:"loadavg"`     // /proc/loadavg after the round
	Ratio    float64     `json:"ratio"`       // Go series/s over Python's
	Overhead float64     `json:"go_overhead"` // 1 - shim forward / Go end-to-end
}

type report struct {
	Machine         string   `json:"machine"`
	LoadStart       string   `json:"loadavg_start"`
	LoadEnd         string   `json:"loadavg_end"`
	Commit          string   `json:"commit"`
	Torch           string   `json:"libtorch"`
	PyTorch         string   `json:"python_torch"`
	Model           string   `json:"model"`
	Params          string   `json:"model_description"`
	Device          string   `json:"device"`
	Threads         int      `json:"threads"`
	Horizon         int      `json:"horizon"`
	Quantiles       int      `json:"quantiles"`
	Histories       string   `json:"histories"`
	Agreement       string   `json:"agreement"`
	DeviceAgreement string   `json:"device_agreement,omitempty"`
	Batches         []int    `json:"batches"`
	Rounds          []round  `json:"rounds"`
	Command         []string `json:"command"`
	TargetSecs      float64  `json:"target_seconds"`
	GoMaxProcs      int      `json:"gomaxprocs"`
	Iterations      []int    `json:"iterations"` // per batch size and side, per round
}

func run(ctx context.Context, o options) (*report, error) {
	rep := &report{LoadStart: benchinfo.LoadAvg(), Machine: benchinfo.Machine(), Commit: benchinfo.Commit(), Torch: torch.Version(), Device: o.device,
		Threads: o.threads, Horizon: o.horizon, Batches: o.batches, Command: os.Args,
		TargetSecs: o.seconds, GoMaxProcs: runtime.GOMAXPROCS(0)}
	if o.model == "" {
		dir, err := os.MkdirTemp("", "torchbench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.model = filepath.Join(dir, "bench.pt")
		out, err := exec.Command(o.python, o.fixtureScript, o.model).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v\n%s", o.python, o.fixtureScript, err, out)
		}
		rep.Params = strings.TrimSpace(string(out))
		fmt.Fprintln(os.Stderr, rep.Params)
	}
	rep.Model = o.model

	maxB := slices.Max(o.batches)
	model, err := torch.New(config.TorchScriptConfig{Path: o.model, Device: o.device, BatchSize: maxB, Threads: o.threads})
	if err != nil {
		return nil, err
	}
	defer model.Close()
	md := model.Metadata()
	if o.horizon > md.Horizon {
		return nil, fmt.Errorf("-horizon %d: the file's horizon is %d", o.horizon, md.Horizon)
	}
	rep.Quantiles = len(md.Quantiles)

	hists, desc, err := histories(o.data, maxB, md.ContextLength, o.seed)
	if err != nil {
		return nil, err
	}
	rep.Histories = desc
	hfile, err := os.CreateTemp("", "torchbench-histories-*.json")
	if err != nil {
		return nil, err
	}
	defer os.Remove(hfile.Name())
	if err := writeHistories(hfile, hists); err != nil {
		return nil, err
	}

	py, err := startPython(ctx, o, hfile.Name())
	if err != nil {
		return nil, err
	}
	defer py.close()
	rep.PyTorch = py.torch

	goRun := func(b, n int) (measurement, error) {
		req := forecast.Request{Histories: hists[:b], Step: 5 * time.Minute, Horizon: o.horizon, Quantiles: md.Quantiles}
		before, ok := torch.ShimForwardStats(model)
		if !ok {
			return measurement{}, fmt.Errorf("no shim statistics")
		}
		start := time.Now()
		for range n {
			fc, err := model.Forecast(ctx, req)
			if err != nil {
				return measurement{}, err
			}
			for i := range fc {
				if fc[i].Err != nil {
					return measurement{}, fmt.Errorf("series %d: %w", i, fc[i].Err)
				}
			}
		}
		secs := time.Since(start).Seconds()
		after, _ := torch.ShimForwardStats(model)
		d := after.Sub(before)
		return measurement{Iterations: n, Seconds: secs, SeriesPerS: float64(b*n) / secs,
			ForwardSeconds: d.Forward.Seconds(), CallSeconds: d.Call.Seconds(), ShimCalls: d.Calls}, nil
	}
	pyRun := func(b, n int) (measurement, error) {
		m, err := py.run(b, n, o.horizon)
		if err != nil {
			return m, err
		}
		m.SeriesPerS = float64(b*n) / m.Seconds
		return m, nil
	}

	// The same numbers on both sides, before timing anything.
	agree, err := agreement(ctx, model, py, hists[:min(32, maxB)], md.Quantiles, o.horizon)
	if err != nil {
		return nil, err
	}
	rep.Agreement = agree
	fmt.Fprintln(os.Stderr, "agreement:", agree)
	if o.compareDevice != "" {
		other, err := torch.New(config.TorchScriptConfig{Path: o.model, Device: o.compareDevice, BatchSize: maxB, Threads: o.threads})
		if err != nil {
			return nil, err
		}
		cmp, err := compareDevices(ctx, model, other, hists[:min(32, maxB)], md.Quantiles, o.horizon)
		other.Close()
		if err != nil {
			return nil, err
		}
		rep.DeviceAgreement = cmp
		fmt.Fprintln(os.Stderr, "devices:", cmp)
	}

	// Warm-up, and the iteration count of each batch size: about -seconds
	// of the Go path, the same count on both sides.
	for _, b := range o.batches {
		if _, err := goRun(b, 2); err != nil {
			return nil, err
		}
		if _, err := pyRun(b, 2); err != nil {
			return nil, err
		}
		// Calibrate on at least 0.5 s of iterations: one alone can land
		// on a busy moment.
		var per float64
		for k, spent := 0, 0.0; ; {
			m, err := goRun(b, 1)
			if err != nil {
				return nil, err
			}
			k, spent = k+1, spent+m.Seconds
			if spent >= 0.5 || spent >= o.seconds {
				per = spent / float64(k)
				break
			}
		}
		n := max(2, int(math.Ceil(o.seconds/per)))
		rep.Iterations = append(rep.Iterations, n)
		if _, err := goRun(b, max(1, n/4)); err != nil {
			return nil, err
		}
		if _, err := pyRun(b, max(1, n/4)); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "batch %d: %d iterations per measurement\n", b, n)
	}

	for r := range o.rounds {
		for bi, b := range o.batches {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			n := rep.Iterations[bi]
			// A B A: the side that goes first (alternating) runs half its
			// iterations before the other side's and half after, so that
			// a load that changes steadily during the round hits both
			// sides alike.
			rd := round{Batch: b, Round: r + 1, GoFirst: (r+bi)%2 == 0}
			first, second := goRun, pyRun
			if !rd.GoFirst {
				first, second = pyRun, goRun
			}
			a1, err := first(b, n/2)
			if err != nil {
				return nil, err
			}
			mid, err := second(b, n)
			if err != nil {
				return nil, err
			}
			a2, err := first(b, n-n/2)
			if err != nil {
				return nil, err
			}
			a := a1.add(a2, b)
			if rd.GoFirst {
				rd.Go, rd.Python = a, mid
			} else {
				rd.Go, rd.Python = mid, a
			}
			rd.LoadAvg = benchinfo.LoadAvg()
			rd.Ratio = rd.Go.SeriesPerS / rd.Python.SeriesPerS
			rd.Overhead = rd.Go.overhead()
			rep.Rounds = append(rep.Rounds, rd)
			fmt.Fprintf(os.Stderr, "round %d batch %d: go %.1f series/s, python %.1f series/s, ratio %.3f, go overhead %.2f%%; forward %.2f ms (go), %.2f ms (python); load %s\n",
				r+1, b, rd.Go.SeriesPerS, rd.Python.SeriesPerS, rd.Ratio, 100*rd.Overhead,
				1e3*rd.Go.ForwardSeconds/float64(rd.Go.Iterations), 1e3*rd.Python.ForwardSeconds/float64(rd.Python.Iterations), rd.LoadAvg)
		}
	}
	rep.LoadEnd = benchinfo.LoadAvg()
	return rep, nil
}

// agreement compares the Go path's forecasts with Python's for the same
// rows: the largest difference relative to each series' scale (its largest
// |value|, at least 1).
func agreement(ctx context.Context, model *torch.Model, py *pyWorker, hists [][]float64, qs []float64, h int) (string, error) {
	fc, err := model.Forecast(ctx, forecast.Request{Histories: hists, Step: 5 * time.Minute, Horizon: h, Quantiles: qs})
	if err != nil {
		return "", err
	}
	ref, err := py.check(len(hists), h)
	if err != nil {
		return "", err
	}
	worst := 0.0
	for r := range hists {
		if fc[r].Err != nil {
			return "", fmt.Errorf("series %d: %w", r, fc[r].Err)
		}
		scale := 1.0
		for k := range qs {
			for s := range h {
				scale = max(scale, math.Abs(ref[r][k][s]))
			}
		}
		for k := range qs {
			for s := range h {
				worst = max(worst, math.Abs(fc[r].Values[k][s]-ref[r][k][s])/scale)
			}
		}
	}
	return fmt.Sprintf("batch %d, %d quantiles × %d steps: Go and Python differ by at most %.2g of each series' scale", len(hists), len(qs), h, worst), nil
}

// compareDevices runs the same rows through the Go path on two devices and
// returns their largest difference relative to each series' scale.
func compareDevices(ctx context.Context, a, b *torch.Model, hists [][]float64, qs []float64, h int) (string, error) {
	req := forecast.Request{Histories: hists, Step: 5 * time.Minute, Horizon: h, Quantiles: qs}
	fa, err := a.Forecast(ctx, req)
	if err != nil {
		return "", err
	}
	fb, err := b.Forecast(ctx, req)
	if err != nil {
		return "", err
	}
	worst := 0.0
	for r := range hists {
		if fa[r].Err != nil || fb[r].Err != nil {
			return "", fmt.Errorf("series %d: %v / %v", r, fa[r].Err, fb[r].Err)
		}
		scale := 1.0
		for k := range qs {
			for s := range h {
				scale = max(scale, math.Abs(fb[r].Values[k][s]))
			}
		}
		for k := range qs {
			for s := range h {
				worst = max(worst, math.Abs(fa[r].Values[k][s]-fb[r].Values[k][s])/scale)
			}
		}
	}
	return fmt.Sprintf("batch %d: the Go path on %s and on %s differs by at most %.2g of each series' scale", len(hists), a.Device(), b.Device(), worst), nil
}

// pyWorker is libtorch/bench_python.py, started once, driven line by line.
type pyWorker struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	torch string
}

func startPython(ctx context.Context, o options, histories string) (*pyWorker, error) {
	args := []string{o.script, "--model", o.model, "--histories", histories, "--threads", strconv.Itoa(o.threads), "--device", o.device}
	if o.pyProbe {
		args = append(args, "--probe")
	}
	cmd := exec.CommandContext(ctx, o.python, args...)
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
	}
	if err := w.read(&ready); err != nil {
		w.close()
		return nil, fmt.Errorf("%s: %w", o.script, err)
	}
	if ready.Threads != o.threads || ready.Interop != 1 {
		w.close()
		return nil, fmt.Errorf("%s runs %d threads, %d interop threads; want %d, 1", o.script, ready.Threads, ready.Interop, o.threads)
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

func (w *pyWorker) run(b, n, h int) (measurement, error) {
	if _, err := fmt.Fprintf(w.in, "run %d %d %d\n", b, n, h); err != nil {
		return measurement{}, err
	}
	var r struct {
		Iterations     int     `json:"iterations"`
		Seconds        float64 `json:"seconds"`
		ForwardSeconds float64 `json:"forward_seconds"`
	}
	if err := w.read(&r); err != nil {
		return measurement{}, err
	}
	return measurement{Iterations: r.Iterations, Seconds: r.Seconds, ForwardSeconds: r.ForwardSeconds}, nil
}

func (w *pyWorker) check(b, h int) ([][][]float64, error) {
	if _, err := fmt.Fprintf(w.in, "check %d %d\n", b, h); err != nil {
		return nil, err
	}
	var r struct {
		Quantiles [][][]float64 `json:"quantiles"`
	}
	if err := w.read(&r); err != nil {
		return nil, err
	}
	return r.Quantiles, nil
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

// histories cuts n histories out of the NAB files: most exactly l points
// long, every 16th of them shorter (100 or 300: left padding) or longer
// (700: truncation); every 4th with 2 % of its points NaN, every 16th with a
// gap of 40 NaNs. Windows start at random offsets (seed).
func histories(dir string, n, l int, seed uint64) ([][]float64, string, error) {
	if dir == "synthetic" {
		series := synthetic(53, 4*l, seed)
		return windows(series, n, l, seed, fmt.Sprintf("%d synthetic series (daily season, noise, spikes)", len(series)))
	}
	var files []string
	for _, sub := range []string{"realKnownCause", "realAWSCloudwatch", "realAdExchange", "realTraffic", "realTweets", "artificialWithAnomaly"} {
		fs, _ := filepath.Glob(filepath.Join(dir, sub, "*.csv"))
		files = append(files, fs...)
	}
	if len(files) == 0 {
		return nil, "", fmt.Errorf("no NAB files in %s (set -data or OPENANOMALY_DATA_DIR)", dir)
	}
	slices.Sort(files)
	series := make([][]float64, 0, len(files))
	for _, f := range files {
		vs, err := loadCSV(f)
		if err != nil {
			return nil, "", err
		}
		if len(vs) >= 2*l {
			series = append(series, vs)
		}
	}
	if len(series) == 0 {
		return nil, "", fmt.Errorf("no NAB file in %s has %d points", dir, 2*l)
	}
	return windows(series, n, l, seed, fmt.Sprintf("%d NAB files (%s)", len(series), dir))
}

// synthetic makes n series of the given length in 5-minute steps: a level
// log-uniform in 0.5…500, a daily sinusoid of 5–60 % of it, Gaussian noise
// of 1–8 %, a spike of 2–4× the level now and then.
func synthetic(n, length int, seed uint64) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 5))
	out := make([][]float64, n)
	for i := range out {
		level := 0.5 * math.Pow(1000, rng.Float64())
		amp, noise, phase := level*(0.05+0.55*rng.Float64()), level*(0.01+0.07*rng.Float64()), 2*math.Pi*rng.Float64()
		vs := make([]float64, length)
		for t := range vs {
			vs[t] = level + amp*math.Sin(2*math.Pi*float64(t)/288+phase) + noise*rng.NormFloat64()
			if rng.Float64() < 0.002 {
				vs[t] += level * (2 + 2*rng.Float64())
			}
		}
		out[i] = vs
	}
	return out
}

// windows cuts the n histories out of the source series (see histories).
func windows(series [][]float64, n, l int, seed uint64, source string) ([][]float64, string, error) {
	rng := rand.New(rand.NewPCG(seed, 4))
	out := make([][]float64, n)
	short, long, nans := 0, 0, 0
	for i := range out {
		vs := series[i%len(series)]
		size := l
		switch i % 16 {
		case 3:
			size, short = 100, short+1
		case 7:
			size, short = 300, short+1
		case 11:
			size, long = 700, long+1
		}
		size = min(size, len(vs))
		off := rng.IntN(len(vs) - size + 1)
		h := slices.Clone(vs[off : off+size])
		if i%4 == 1 {
			for t := range h {
				if rng.Float64() < 0.02 {
					h[t] = math.NaN()
				}
			}
			nans++
		}
		if i%16 == 9 && len(h) > 100 {
			g := rng.IntN(len(h) - 60)
			for t := g; t < g+40; t++ {
				h[t] = math.NaN()
			}
			nans++
		}
		out[i] = h
	}
	desc := fmt.Sprintf("%d histories from %s, float64; %d of %d points, %d shorter (left padding), %d longer (truncated), %d with NaNs",
		n, source, n-short-long, l, short, long, nans)
	return out, desc, nil
}

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
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, i+1, err)
		}
		vs = append(vs, x)
	}
	return vs, nil
}

func writeHistories(f *os.File, hists [][]float64) error {
	js := make([][]*float64, len(hists))
	for i, h := range hists {
		js[i] = make([]*float64, len(h))
		for t, v := range h {
			if !math.IsNaN(v) {
				js[i][t] = &v
			}
		}
	}
	if err := json.NewEncoder(f).Encode(map[string]any{"histories": js}); err != nil {
		return err
	}
	return f.Close()
}

func (r *report) markdown() string {
	var sb strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	w("Machine: %s. Commit %s. libtorch %s (Go), torch %s (Python). Device %s, %d intra-op threads (Python: 1 interop thread), GOMAXPROCS %d.\n",
		r.Machine, r.Commit, r.Torch, r.PyTorch, r.Device, r.Threads, r.GoMaxProcs)
	if r.Params != "" {
		w("Model: %s.\n", r.Params)
	} else {
		w("Model: %s.\n", r.Model)
	}
	w("Request: horizon %d, the file's %d quantiles. Data: %s.\n", r.Horizon, r.Quantiles, r.Histories)
	var loads []string
	for _, rd := range r.Rounds {
		if rd.Batch == r.Batches[len(r.Batches)-1] {
			loads = append(loads, rd.LoadAvg)
		}
	}
	w("1-minute load average: %s at the start, %s after each round (this benchmark's own two threads add about 2; the rest is other work on the machine).\n",
		r.LoadStart, strings.Join(loads, ", "))
	w("Check: %s.\n", r.Agreement)
	if r.DeviceAgreement != "" {
		w("Devices: %s.\n", r.DeviceAgreement)
	}
	w("Each round and batch size: the same iteration count on both sides (about %.3g s of the Go path), run A B A: the side that goes first (alternating) runs half before the other side, half after; %d rounds.\n\n",
		r.TargetSecs, len(r.Rounds)/max(1, len(r.Batches)))
	w("| batch | iterations | Go series/s | Python series/s | Go/Python per round | median ratio | Go overhead (median) | in the shim | in Go | Python overhead | forward ms, Go / Python |\n")
	w("| --: | --: | --: | --: | --- | --: | --: | --: | --: | --: | --: |\n")
	for bi, b := range r.Batches {
		var gs, ps, ratios, ov, shim, gov, pov, gf, pf []float64
		var per []string
		for _, rd := range r.Rounds {
			if rd.Batch != b {
				continue
			}
			gs = append(gs, rd.Go.SeriesPerS)
			ps = append(ps, rd.Python.SeriesPerS)
			ratios = append(ratios, rd.Ratio)
			per = append(per, fmt.Sprintf("%.3f", rd.Ratio))
			ov = append(ov, rd.Overhead)
			shim = append(shim, (rd.Go.CallSeconds-rd.Go.ForwardSeconds)/rd.Go.Seconds)
			gov = append(gov, 1-rd.Go.CallSeconds/rd.Go.Seconds)
			pov = append(pov, rd.Python.overhead())
			gf = append(gf, 1e3*rd.Go.ForwardSeconds/float64(rd.Go.Iterations))
			pf = append(pf, 1e3*rd.Python.ForwardSeconds/float64(rd.Python.Iterations))
		}
		w("| %d | %d | %.1f | %.1f | %s | **%.3f** | **%.2f %%** | %.2f %% | %.2f %% | %.2f %% | %.4g / %.4g |\n",
			b, r.Iterations[bi], benchinfo.Median(gs), benchinfo.Median(ps), strings.Join(per, ", "), benchinfo.Median(ratios),
			100*benchinfo.Median(ov), 100*benchinfo.Median(shim), 100*benchinfo.Median(gov), 100*benchinfo.Median(pov), benchinfo.Median(gf), benchinfo.Median(pf))
	}
	w("\nGo overhead = 1 − (the shim's forward time) / (Go end-to-end time), per round; \"in the shim\" is the shim call around the forward (input tensor, output copies), \"in Go\" the rest of Forecast (float64→float32 windows, cgo, quantile sorting and mapping, allocation). Python overhead = 1 − (module call time) / (loop time). Forward ms: one forward as the shim times it / as Python times the module call. Series/s, overheads and forward times are medians over the rounds.\n")
	return sb.String()
}
