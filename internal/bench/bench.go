// Package bench is the 10,000-series engine benchmark of
// ../shared/bench/README.md: it generates the data, loads one day of history
// into a real VictoriaMetrics (import API) and a real Prometheus 2.x
// (promtool blocks), serves the live tail from an exporter both scrape, runs
// the sidecar over all series reading from each store in turn, and measures
// the peer recording rules in Prometheus and in VictoriaMetrics + vmalert in
// the gaps between the sidecar's evaluations.
package bench

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/openanomaly/openanomaly/internal/osproc"
)

// Modes name how the sidecar reads.
const (
	ModeVM             = "vm"         // VictoriaMetrics, query_range
	ModePromQueryRange = "prom"       // Prometheus, query_range
	ModePromRemoteRead = "prom-rr"    // Prometheus, remote_read
	pipelineName       = "bench:load" // the forecast name of the benchmark's pipeline
	groupName          = "bench"
)

// Options configure a run; zero values take the defaults of the full
// benchmark.
type Options struct {
	Series         int           // 10000
	History        time.Duration // 24h; also the pipeline's context
	Evals          int           // sidecar evaluations per mode, the cold one included (5)
	Interval       time.Duration // the sidecar group's interval (1m)
	ScrapeInterval time.Duration // how often the stores scrape the live tail (1m)
	PeerInterval   time.Duration // the peer groups' interval (5s; the file says 15s)
	PeerEvals      int           // evaluations per peer group and engine to reach (10)
	Seed           uint64        // 1
	Modes          []string      // vm, prom, prom-rr

	Sidecar         string // bin/openanomaly
	Prometheus      string // prometheus in PATH
	Promtool        string
	VictoriaMetrics string
	VMAlert         string

	WorkDir string    // parent of the temporary directory (os.TempDir())
	Keep    bool      // keep the temporary directory
	Log     io.Writer // progress (os.Stderr)
}

func (o *Options) defaults() {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	defd := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&o.Series, 10000)
	defd(&o.History, 24*time.Hour)
	def(&o.Evals, 5)
	defd(&o.Interval, time.Minute)
	defd(&o.ScrapeInterval, time.Minute)
	defd(&o.PeerInterval, 5*time.Second)
	def(&o.PeerEvals, 10)
	if o.Seed == 0 {
		o.Seed = 1
	}
	if len(o.Modes) == 0 {
		o.Modes = []string{ModeVM, ModePromQueryRange, ModePromRemoteRead}
	}
	defs := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	defs(&o.Sidecar, "bin/openanomaly")
	defs(&o.Prometheus, envOr("OPENANOMALY_PROMETHEUS", "prometheus"))
	defs(&o.Promtool, "promtool")
	defs(&o.VictoriaMetrics, envOr("OPENANOMALY_VICTORIAMETRICS", "victoria-metrics"))
	defs(&o.VMAlert, "vmalert")
	if o.Log == nil {
		o.Log = os.Stderr
	}
}

func envOr(k, v string) string {
	if s := os.Getenv(k); s != "" {
		return s
	}
	return v
}

// bench is one run's state.
type bench struct {
	o     Options
	start time.Time
	dir   string
	gen   *generator
	exp   *exporter

	prom       *osproc.Proc
	promURL    string
	promDir    string
	vm         *osproc.Proc
	vmURL      string
	vmalert    *osproc.Proc
	vmalertURL string
	vmalertDir string

	peers  *peerRunner
	report *Report
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.o.Log, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// Run runs the benchmark and returns its report. Everything it starts is
// stopped and its temporary directory removed before it returns.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	if o.History%time.Minute != 0 || o.History < 10*time.Minute {
		return nil, fmt.Errorf("history must be whole minutes, at least 10m")
	}
	for _, m := range o.Modes {
		switch m {
		case ModeVM, ModePromQueryRange, ModePromRemoteRead:
		default:
			return nil, fmt.Errorf("unknown mode %q (vm, prom, prom-rr)", m)
		}
	}
	bins := map[string]*string{"sidecar": &o.Sidecar, "prometheus": &o.Prometheus, "promtool": &o.Promtool,
		"victoria-metrics": &o.VictoriaMetrics, "vmalert": &o.VMAlert}
	for name, p := range bins {
		path, err := exec.LookPath(*p)
		if err != nil {
			return nil, fmt.Errorf("%s: %v (make build; apt-get install -y prometheus victoria-metrics)", name, err)
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		*p = path
	}
	b := &bench{o: o, start: time.Now()}
	dir, err := os.MkdirTemp(o.WorkDir, "openanomaly-bench-")
	if err != nil {
		return nil, err
	}
	b.dir = dir
	defer func() {
		if o.Keep {
			b.logf("kept %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	defer b.stopAll()
	b.report = newReport(o)
	// A private copy of the sidecar, so that a rebuild of bin/ during the
	// run cannot change the binary between the phases.
	if err := copyFile(o.Sidecar, filepath.Join(dir, "openanomaly")); err != nil {
		return nil, err
	}
	b.o.Sidecar = filepath.Join(dir, "openanomaly")
	if v, err := version(b.o.Sidecar); err == nil {
		b.report.SidecarVersion = v
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		b.report.Revision = strings.TrimSpace(string(out))
	}
	if err := b.run(ctx); err != nil {
		return b.report, err
	}
	return b.report, nil
}

func (b *bench) stopAll() {
	b.vmalert.Stop()
	b.vm.Stop()
	b.prom.Stop()
	b.exp.stop()
	b.vmalert, b.vm, b.prom, b.exp = nil, nil, nil, nil
}

func (b *bench) run(ctx context.Context) error {
	o := b.o
	r := b.report
	// The history ends at the start of the run, on a whole minute.
	end := b.start.Truncate(time.Minute)
	nMin := int(o.History / time.Minute)
	first, last := historyMinutes(end, nMin)
	total := o.Series * nMin
	b.logf("%d series x %d minutes = %d samples, history %s .. %s",
		o.Series, nMin, total, time.Unix(first*60, 0).UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	b.gen = newGenerator(o.Seed, o.Series)

	var err error
	if b.exp, err = startExporter(b.gen); err != nil {
		return err
	}
	scrapeCfg := scrapeConfig(b.exp.addr, o.ScrapeInterval)

	// Prometheus: blocks for the history, written before it starts.
	t := time.Now()
	om := filepath.Join(b.dir, "history.om")
	every := max(o.Series/10, 1)
	if err := writeOpenMetrics(om, b.gen, first, last, func(done int) {
		if done%every == 0 {
			b.logf("OpenMetrics for promtool: %d/%d series", done, o.Series)
		}
	}); err != nil {
		return err
	}
	b.promDir = filepath.Join(b.dir, "prometheus")
	if err := os.MkdirAll(filepath.Join(b.promDir, "data"), 0o755); err != nil {
		return err
	}
	b.logf("promtool tsdb create-blocks-from openmetrics (%d samples) ...", total)
	if err := createBlocks(ctx, o.Promtool, om, filepath.Join(b.promDir, "data"), b.logf); err != nil {
		return err
	}
	_ = os.Remove(om)
	r.Load.PromtoolSeconds = time.Since(t).Seconds()
	b.logf("Prometheus blocks ready in %.1fs", r.Load.PromtoolSeconds)

	if _, err := writeFile(b.promDir, "rules.yml", emptyRules); err != nil {
		return err
	}
	promCfg := fmt.Sprintf("global:\n  evaluation_interval: %s\n%srule_files:\n  - %s\n",
		o.PeerInterval, scrapeCfg, filepath.Join(b.promDir, "rules.yml"))
	if _, err := writeFile(b.promDir, "prometheus.yml", promCfg); err != nil {
		return err
	}
	t = time.Now()
	b.prom, b.promURL, err = startServer(ctx, "prometheus", b.promDir, o.Prometheus, "/-/ready", func(addr string) []string {
		return []string{
			"--config.file=" + filepath.Join(b.promDir, "prometheus.yml"),
			"--web.listen-address=" + addr,
			"--storage.tsdb.path=" + filepath.Join(b.promDir, "data"),
			"--storage.tsdb.retention.time=30d",
			"--web.enable-lifecycle",
			"--web.enable-remote-write-receiver",
		}
	})
	if err != nil {
		return err
	}
	b.logf("Prometheus ready at %s in %.1fs", b.promURL, time.Since(t).Seconds())

	// VictoriaMetrics: the import API.
	vmDir := filepath.Join(b.dir, "victoriametrics")
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		return err
	}
	if _, err := writeFile(vmDir, "scrape.yml", scrapeCfg); err != nil {
		return err
	}
	b.vm, b.vmURL, err = startServer(ctx, "victoria-metrics", vmDir, o.VictoriaMetrics, "/health", func(addr string) []string {
		return []string{
			"-httpListenAddr=" + addr,
			"-storageDataPath=" + filepath.Join(vmDir, "data"),
			"-retentionPeriod=100y",
			"-search.latencyOffset=0s",
			"-search.disableCache",
			"-promscrape.config=" + filepath.Join(vmDir, "scrape.yml"),
		}
	})
	if err != nil {
		return err
	}
	t = time.Now()
	b.logf("VictoriaMetrics ready at %s; importing %d samples ...", b.vmURL, total)
	if err := importVM(ctx, b.vmURL, b.gen, first, last, func(done int) {
		if done%every == 0 {
			b.logf("VictoriaMetrics import: %d/%d series", done, o.Series)
		}
	}); err != nil {
		return err
	}
	r.Load.VMImportSeconds = time.Since(t).Seconds()
	b.logf("VictoriaMetrics import done in %.1fs", r.Load.VMImportSeconds)

	// vmalert, with no rules until a peer group is loaded.
	b.vmalertDir = filepath.Join(b.dir, "vmalert")
	if err := os.MkdirAll(b.vmalertDir, 0o755); err != nil {
		return err
	}
	if _, err := writeFile(b.vmalertDir, "rules.yml", emptyRules); err != nil {
		return err
	}
	b.vmalert, b.vmalertURL, err = startServer(ctx, "vmalert", b.vmalertDir, o.VMAlert, "/health", func(addr string) []string {
		return []string{
			"-httpListenAddr=" + addr,
			"-rule=" + filepath.Join(b.vmalertDir, "rules.yml"),
			"-datasource.url=" + b.vmURL,
			"-remoteWrite.url=" + b.vmURL,
			"-evaluationInterval=" + o.PeerInterval.String(),
		}
	})
	if err != nil {
		return err
	}

	// Both stores hold the whole history.
	for _, s := range []struct{ name, url string }{{"Prometheus", b.promURL}, {"VictoriaMetrics", b.vmURL}} {
		// Imported data becomes searchable shortly after the import
		// (VictoriaMetrics flushes its in-memory parts every second):
		// ask again for a few seconds before calling a count short.
		var n float64
		for try := 0; ; try++ {
			n, err = countSamples(s.url, end, o.History)
			if err != nil {
				return fmt.Errorf("%s: count samples: %w", s.name, err)
			}
			if int(n) == total || try == 20 {
				break
			}
			sleepCtx(ctx, 500*time.Millisecond)
		}
		b.logf("%s holds %.0f history samples (want %d)", s.name, n, total)
		if int(n) != total {
			return fmt.Errorf("%s holds %.0f history samples, want %d", s.name, n, total)
		}
	}
	r.Load.HistorySamples = total
	// And the live tail is being scraped by both.
	if err := b.waitScraped(ctx, end); err != nil {
		return err
	}

	names, files, err := peerGroups(peerRulesYAML, o.PeerInterval)
	if err != nil {
		return err
	}
	b.peers = newPeerRunner(b, names, files, o.PeerInterval)

	for _, m := range o.Modes {
		run, err := b.sidecarPhase(ctx, m)
		r.Sidecar = append(r.Sidecar, run)
		if err != nil {
			return fmt.Errorf("sidecar (%s): %w", m, err)
		}
	}
	// Top up the peers to PeerEvals each, bounded in time.
	deadline := time.Now().Add(time.Duration(len(b.peers.combos)*(o.PeerEvals/2+2)) * b.peers.need(peerKey{}))
	b.logf("peers: topping up to %d evaluations each (at most until %s)", o.PeerEvals, deadline.Format(time.TimeOnly))
	if err := b.peers.runUntil(ctx, deadline, o.PeerEvals, true); err != nil {
		return err
	}
	for _, k := range b.peers.combos {
		r.Peers = append(r.Peers, PeerResult{Engine: k.engine, Group: k.group, Evals: b.peers.results[k]})
	}
	for _, s := range []struct {
		name string
		p    *osproc.Proc
	}{{"prometheus", b.prom}, {"victoria-metrics", b.vm}, {"vmalert", b.vmalert}} {
		hwm, _, _ := memStatus(s.p.Pid())
		r.StoreHWM = append(r.StoreHWM, NamedBytes{s.name, hwm})
	}
	r.Finished = time.Now()
	return nil
}

// waitScraped waits until both stores have scraped the exporter since end.
func (b *bench) waitScraped(ctx context.Context, end time.Time) error {
	deadline := time.Now().Add(b.o.ScrapeInterval + time.Minute)
	q := fmt.Sprintf("count(timestamp(load) > %d)", end.Unix())
	for _, s := range []struct{ name, url string }{{"Prometheus", b.promURL}, {"VictoriaMetrics", b.vmURL}} {
		for {
			body, err := httpGet(s.url + "/api/v1/query?query=" + urlEscape(q))
			if err != nil {
				return err
			}
			n, err := scalarFromQuery(body)
			if err != nil {
				return err
			}
			if int(n) >= b.o.Series {
				b.logf("%s scrapes the live tail", s.name)
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s has not scraped the exporter at %s (%v series live)", s.name, b.exp.addr, n)
			}
			sleepCtx(ctx, time.Second)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return nil
}

// slot is the sidecar's scheduled slot at or after now for a group key: the
// same rule as pkg/pipeline (an FNV-64a offset inside the interval).
func slot(key string, iv time.Duration, now time.Time) time.Time {
	h := fnv.New64a()
	h.Write([]byte(key))
	off := int64(h.Sum64()%uint64(iv)) / 1e6 * 1e6
	adj := now.UnixNano() - off
	base := adj - adj%int64(iv)
	return time.Unix(0, base+off).Add(iv)
}

func (b *bench) sidecarPhase(ctx context.Context, mode string) (SidecarRun, error) {
	o := b.o
	run := SidecarRun{Mode: mode}
	var storeURL, rwURL string
	var store *osproc.Proc
	readMethod := "query_range"
	switch mode {
	case ModeVM:
		storeURL, store, rwURL = b.vmURL, b.vm, b.vmURL+"/api/v1/write"
		run.Store, run.Read = "VictoriaMetrics 1.79", "query_range"
	case ModePromQueryRange:
		storeURL, store, rwURL = b.promURL, b.prom, b.promURL+"/api/v1/write"
		run.Store, run.Read = "Prometheus 2.42", "query_range"
	case ModePromRemoteRead:
		storeURL, store, rwURL = b.promURL, b.prom, b.promURL+"/api/v1/write"
		run.Store, run.Read = "Prometheus 2.42", "remote_read"
		readMethod = "remote_read"
	}
	dir := filepath.Join(b.dir, "sidecar-"+mode)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return run, err
	}
	rules := fmt.Sprintf(`groups:
  - name: %s
    interval: %s
    rules:
      - forecast: %s
        expr: load
        model: default
        step: 1m
        context: %s
        horizons: [15m, 1h]
        quantiles: [0.05, 0.5, 0.95]
        anomaly: {}
`, groupName, o.Interval, pipelineName, modelDuration(o.History))
	rulesPath, err := writeFile(dir, "pipelines.yml", rules)
	if err != nil {
		return run, err
	}
	rr := ""
	if readMethod == "remote_read" {
		rr = fmt.Sprintf("  remote_read_url: %s/api/v1/read\n", storeURL)
	}
	// Outputs go back to the store they were read from: 11 series per
	// input (y, yhat, band, score, 2 horizons x 3 quantiles).
	cfg := fmt.Sprintf(`global:
  evaluation_interval: %s
datasource:
  url: %s
  read_method: %s
%s  query_timeout: 5m
remote_write:
  - url: %s
    name: store
    queue_config:
      capacity: %d
      max_shards: 4
      max_samples_per_send: 10000
      batch_send_deadline: 1s
rule_files:
  - %s
`, o.Interval, storeURL, readMethod, rr, rwURL, max(200000, 15*o.Series), rulesPath)
	cfgPath, err := writeFile(dir, "openanomaly.yml", cfg)
	if err != nil {
		return run, err
	}
	side, sideURL, err := startServer(ctx, "openanomaly-"+mode, dir, o.Sidecar, "/-/ready", func(addr string) []string {
		// The outputs go by remote-write and the harness polls /metrics
		// for the self-metrics: rendering 110,000 outputs at each poll
		// would be measured as the sidecar's cost.
		return []string{"run", "--config.file=" + cfgPath, "--web.listen-address=" + addr, "--no-web.metrics.outputs"}
	})
	if err != nil {
		return run, err
	}
	defer side.Stop()
	b.logf("sidecar (%s) started at %s", mode, sideURL)

	key := rulesPath + ";" + groupName
	next := slot(key, o.Interval, time.Now())
	sideCPU0, _ := cpuSeconds(side.Pid())
	var lastTS float64
	stages0 := map[string]float64{}
	reads0 := map[string]float64{}
	for i := 0; i < o.Evals; i++ {
		cold := i == 0
		if !cold {
			next = time.Unix(0, int64(lastTS*1e9)).Add(o.Interval)
			for time.Until(next) < 2*time.Second {
				next = next.Add(o.Interval) // the evaluation overran: slots were missed
			}
		}
		// Peers in the gap, unloaded a margin before the sidecar's slot.
		if err := b.peers.runUntil(ctx, next.Add(-2*time.Second), o.PeerEvals, false); err != nil {
			return run, err
		}
		sleepUntil(ctx, next.Add(-time.Second))
		storeCPU0, _ := cpuSeconds(store.Pid())
		if !cold {
			sideCPU0, _ = cpuSeconds(side.Pid())
		}
		b.logf("sidecar (%s): evaluation %d/%d at %s ...", mode, i+1, o.Evals, next.Format(time.TimeOnly))
		ms, ts, err := b.waitSidecarEval(ctx, sideURL, side, lastTS, 2*o.Interval+time.Minute)
		if err != nil {
			return run, err
		}
		ms, err = b.waitDrained(ctx, sideURL, ms)
		if err != nil {
			return run, err
		}
		sideCPU, _ := cpuSeconds(side.Pid())
		storeCPU, _ := cpuSeconds(store.Pid())
		hwm, _, _ := memStatus(side.Pid())
		e := SidecarEval{
			Cold:     cold,
			Slot:     time.Unix(0, int64(ts*1e9)),
			CPU:      sideCPU - sideCPU0,
			StoreCPU: storeCPU - storeCPU0,
			HWM:      hwm,
		}
		e.Wall, _ = find(ms, "openanomaly_group_last_duration_seconds", nil)
		e.Stages = map[string]float64{}
		for _, st := range []string{"fetch", "model", "emit"} {
			v, _ := find(ms, "openanomaly_pipeline_evaluation_duration_seconds_sum", map[string]string{"pipeline": pipelineName, "stage": st})
			e.Stages[st] = v - stages0[st]
			stages0[st] = v
		}
		e.Read = ""
		for _, kind := range []string{"full", "incremental"} {
			v, _ := find(ms, "openanomaly_pipeline_reads_total", map[string]string{"pipeline": pipelineName, "kind": kind})
			if v > reads0[kind] {
				e.Read = kind
			}
			reads0[kind] = v
		}
		e.InputSeries, _ = find(ms, "openanomaly_pipeline_input_series", map[string]string{"pipeline": pipelineName})
		e.OutputSeries, _ = find(ms, "openanomaly_pipeline_output_series", map[string]string{"pipeline": pipelineName})
		fails, _ := find(ms, "openanomaly_pipeline_evaluation_failures_total", map[string]string{"pipeline": pipelineName})
		e.Failed = fails > run.Failures
		run.Failures = fails
		if d := e.Slot.Sub(next); cold && (d > 10*time.Millisecond || d < -10*time.Millisecond) {
			b.logf("warning: cold evaluation at %s, predicted %s: its store CPU may include peer work", e.Slot.Format(time.TimeOnly), next.Format(time.TimeOnly))
			e.Note = "slot mispredicted"
		}
		run.Evals = append(run.Evals, e)
		lastTS = ts
		b.logf("sidecar (%s): evaluation %d: %.2fs (fetch %.2fs, model %.2fs, emit %.2fs), CPU %.2fs, store CPU %.2fs, %.0f in / %.0f out series, VmHWM %s%s",
			mode, i+1, e.Wall, e.Stages["fetch"], e.Stages["model"], e.Stages["emit"], e.CPU, e.StoreCPU,
			e.InputSeries, e.OutputSeries, fmtBytes(e.HWM), map[bool]string{true: " FAILED", false: ""}[e.Failed])
		if e.Failed {
			b.logf("sidecar log:\n%s", side.LogTail(3000))
		}
	}
	for _, name := range []string{"openanomaly_remote_write_sent_samples_total", "openanomaly_remote_write_dropped_samples_total", "openanomaly_remote_write_failed_samples_total"} {
		ms, err := scrape(sideURL + "/metrics")
		if err != nil {
			return run, err
		}
		v := 0.0
		for _, s := range ms {
			if s.name == name {
				v += s.value
			}
		}
		switch {
		case strings.Contains(name, "sent"):
			run.SentSamples = v
		case strings.Contains(name, "dropped"):
			run.DroppedSamples = v
		default:
			run.FailedSamples = v
		}
	}
	return run, nil
}

func version(bin string) (string, error) {
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]), nil
}

// waitSidecarEval waits until the group's last evaluation timestamp moves
// past prev and returns the metrics then.
func (b *bench) waitSidecarEval(ctx context.Context, url string, side *osproc.Proc, prev float64, timeout time.Duration) ([]metricSample, float64, error) {
	deadline := time.Now().Add(timeout)
	for {
		ms, err := scrape(url + "/metrics")
		if err != nil {
			return nil, 0, err
		}
		ts, ok := find(ms, "openanomaly_group_last_evaluation_timestamp_seconds", nil)
		if ok && ts > prev {
			return ms, ts, nil
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("no evaluation within %v; log:\n%s", timeout, side.LogTail(3000))
		}
		sleepCtx(ctx, 100*time.Millisecond)
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
	}
}

// waitDrained waits until the remote-write queue has sent what the
// evaluation emitted, so the CPU windows hold the sending too.
func (b *bench) waitDrained(ctx context.Context, url string, ms []metricSample) ([]metricSample, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		pending := 0.0
		for _, s := range ms {
			if s.name == "openanomaly_remote_write_pending_samples" {
				pending += s.value
			}
		}
		if pending == 0 {
			return ms, nil
		}
		if time.Now().After(deadline) {
			b.logf("warning: %v samples still pending after a minute", pending)
			return ms, nil
		}
		sleepCtx(ctx, 100*time.Millisecond)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var err error
		if ms, err = scrape(url + "/metrics"); err != nil {
			return nil, err
		}
	}
}

func modelDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	default:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
}

func median(xs []float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sortFloats(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

var errIncomplete = errors.New("report incomplete")

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
