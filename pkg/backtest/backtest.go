// Package backtest replays pipelines over a past range, evaluating them at
// every interval exactly as the sidecar would (pkg/pipeline's Rule.Eval,
// with its history, scoring and labels), with nothing after the evaluation
// time visible, and writes what they emitted: OpenMetrics text for
// `promtool tsdb create-blocks-from openmetrics`, optionally remote-write,
// per-file `timestamp,anomaly_score` CSVs for the NAB scorer, and a report
// (report.json, report.html) with forecast accuracy per horizon.
//
// History comes from a store through a datasource.Querier (the daemon's
// query_range or remote-read client) or from CSV files, each loaded into its
// own in-process Prometheus TSDB under a metric name and a `file` label, so
// that expr is evaluated by the real PromQL engine.
//
// Evaluation times. From a store, every group interval from start
// (rounded up to a multiple of the interval) to end. From CSV, every row's
// timestamp in the range, so each row gets the score of the evaluation that
// first saw it: the interval is the file's own step, and the rows of
// irregular files each get their own evaluation (Options.Interval sets a
// fixed interval instead). Evaluations run at row time + query_offset, so
// outputs are stamped at the row's time.
//
// Step and irregular data. A pipeline reads its history on a grid of its
// step, aligned to multiples of the step, whose newest point is at or
// before the stamp; a grid point takes the newest sample at or before it
// within the 5m lookback, as in Prometheus. A row on the grid (the regular
// NAB, BOOM files with step = their sampling step) is therefore the newest
// point of its own evaluation. A row between grid points is seen at the next
// grid point: its own evaluation scores the grid point before it. Choose the
// step to be a divisor of the data's spacing, and a lookback (5m) at least
// the spacing, or gaps become missing points.
package backtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/nab"
	"github.com/openanomaly/openanomaly/pkg/pipeline"
	"github.com/openanomaly/openanomaly/pkg/report"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// DefaultMetric is the metric name CSV values are loaded under.
const DefaultMetric = "value"

// DefaultSeason is the season of MASE's seasonal-naive scale.
const DefaultSeason = 24 * time.Hour

// Group is one group of a pipeline file, with the config's defaults
// applied, as the sidecar would run it.
type Group struct {
	File, Name  string
	Interval    time.Duration
	QueryOffset time.Duration
	Limit       int
	Rules       []rulefmt.Rule
}

// Options configure a backtest. Exactly one of CSV and Querier is set.
type Options struct {
	Groups       []Group
	MetricPrefix string
	// Models are the models pipelines name. NewModels, when set, builds a
	// registry like it for each worker: models that keep per-series state
	// aged by the evaluation time (the built-in model's fitted parameters)
	// must not be shared by replays that run at different replayed times
	// at once, or one replay's clock expires another's state (the daemon
	// has one clock for all). Without it, Models is shared.
	Models    *forecast.Registry
	NewModels func() (*forecast.Registry, error)

	// CSV lists CSV files and directories (FindCSV); Metric is the metric
	// name their values get (default DefaultMetric).
	CSV    []string
	Metric string
	// Files are more CSV files, each with its `file` label: [path, name]
	// (a NAB replay names them by their corpus keys).
	Files [][2]string
	// Querier reads from a store: every group interval from Start to End.
	Querier datasource.Querier

	// Start and End bound the replay (inclusive). For CSV, zero values
	// mean each file's first and last row; for a store both are required.
	Start, End time.Time
	// Interval, when set, replaces the evaluation times: every Interval
	// from Start for CSV (instead of every row), for every group of a
	// store (instead of the group's interval).
	Interval time.Duration

	// OutputDir receives everything written. Resume skips the units (CSV
	// files, or pipelines of a store) whose outputs a previous run with
	// the same inputs finished.
	OutputDir string
	Resume    bool
	// Parallelism is how many units run at once; default GOMAXPROCS.
	Parallelism int
	// Appender, when set, also receives every emitted sample, stale
	// markers included (remote-write). It must not drop samples.
	Appender pipeline.Appender
	// Season is MASE's seasonal lag (default DefaultSeason).
	Season time.Duration
	// NAB, when set, scores the CSV replay's anomaly scores with NAB
	// (the CSV files must be NAB's, named by their corpus keys, e.g.
	// --csv of the corpus folder) and shades its windows on the charts.
	NAB *nab.Corpus

	// Logger defaults to discarding; Progress, when set, gets a progress
	// bar (TTY true) or a line every few seconds.
	Logger   *slog.Logger
	Progress io.Writer
	TTY      bool
	// Title and Command go into the report.
	Title, Command string
	// Fingerprint names inputs that Options does not hold but the
	// outputs depend on (the config's models), so that --resume replays
	// again when they change.
	Fingerprint string
}

// Result is what Run did.
type Result struct {
	Report *report.Report
	// Units ran, Failed failed and Resumed were skipped as finished;
	// Evaluations and Points
	// (input points scored, one per evaluation and series) of this run.
	Units, Failed     int
	Resumed           int
	Evaluations       int64
	Points            int64
	FailedEvaluations int64
	Elapsed           time.Duration
	// Warnings are the problems fixed in the input (duplicated or
	// backwards timestamps), one line each.
	Warnings []string
}

// unit is one piece of independent work: a CSV file with every pipeline,
// or one pipeline over a store.
type unit struct {
	id    string
	file  *CSVFile // CSV units
	rules []unitRule
	// stamps are the output stamps (ms) for CSV units, rows the
	// timestamps of the file's rows in the range, in file order (with
	// duplicates); store units use evaluation times from the range.
	stamps, rows []int64
	evals        int // evaluations this unit makes, for progress
	// Store units: the querier, and the pipeline's shard when its series
	// are split over several units (shard.go).
	querier       datasource.Querier
	shard, shards int
	shared        *sharedQuerier
}

type unitRule struct {
	group Group
	spec  rulefmt.Rule
}

// Run replays the pipelines. Bad inputs (unreadable or empty files, a
// range outside a file's data, an empty range) fail before anything runs,
// all of them reported together.
func Run(ctx context.Context, o Options) (*Result, error) {
	start := time.Now()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metric == "" {
		o.Metric = DefaultMetric
	}
	if o.Parallelism <= 0 {
		o.Parallelism = runtime.GOMAXPROCS(0)
	}
	if o.Season <= 0 {
		o.Season = DefaultSeason
	}
	if o.Models == nil {
		return nil, errors.New("no models")
	}
	csvMode := len(o.CSV)+len(o.Files) > 0
	if csvMode == (o.Querier != nil) {
		return nil, errors.New("give either CSV files or a store to read from, not both or neither")
	}
	if o.OutputDir == "" {
		return nil, errors.New("no output directory")
	}
	if !o.End.IsZero() && !o.Start.IsZero() && o.End.Before(o.Start) {
		return nil, fmt.Errorf("end %s is before start %s", fmtTime(o.End), fmtTime(o.Start))
	}
	var rules []unitRule
	for _, g := range o.Groups {
		if g.Interval <= 0 {
			return nil, fmt.Errorf("%s: group %s: no interval", g.File, g.Name)
		}
		for _, r := range g.Rules {
			fm, ok := o.Models.Get(r.Model)
			if !ok {
				return nil, fmt.Errorf("%s: group %s: pipeline %s: model %q is not configured", g.File, g.Name, r.Forecast, r.Model)
			}
			if err := pipeline.CheckCovariates(r, fm); err != nil {
				return nil, fmt.Errorf("%s: group %s: %w", g.File, g.Name, err)
			}
			rules = append(rules, unitRule{group: g, spec: r})
		}
	}
	if len(rules) == 0 {
		return nil, errors.New("no pipelines to replay")
	}

	res := &Result{}
	var units []*unit
	if o.Querier != nil {
		if o.Start.IsZero() || o.End.IsZero() {
			return nil, errors.New("a backtest over a store needs --start and --end")
		}
		for _, r := range rules {
			if err := checkNoLookAhead(r.spec.Expr); err != nil {
				return nil, fmt.Errorf("%s: group %s: pipeline %s: %w", r.group.File, r.group.Name, r.spec.Forecast, err)
			}
			// remote_read takes plain selectors only, as the daemon checks.
			if ec, ok := o.Querier.(datasource.ExprChecker); ok {
				if err := ec.CheckExpr(r.spec.Expr); err != nil {
					return nil, fmt.Errorf("%s: group %s: pipeline %s: %w", r.group.File, r.group.Name, r.spec.Forecast, err)
				}
			}
			evals := len(storeTimes(o.Start, o.End, o.interval(r.group)))
			if evals == 0 {
				return nil, fmt.Errorf("pipeline %s: no evaluation time between %s and %s", r.spec.Forecast, fmtTime(o.Start), fmtTime(o.End))
			}
			// Fewer pipelines than workers: split each one's series.
			shards := max(1, o.Parallelism/len(rules))
			for i := range shards {
				id := r.group.File + ";" + r.group.Name + ";" + r.spec.Forecast
				if shards > 1 {
					id += fmt.Sprintf("#%d/%d", i+1, shards)
				}
				units = append(units, &unit{id: id, rules: []unitRule{r}, evals: evals, querier: o.Querier, shard: i, shards: shards})
			}
		}
	} else {
		var errs []error
		var files [][2]string
		if len(o.CSV) > 0 {
			var err error
			if files, err = FindCSV(o.CSV); err != nil {
				return nil, err
			}
		}
		files = append(files, o.Files...)
		for _, pf := range files {
			f, err := ReadCSV(pf[0], pf[1])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if f.Duplicates > 0 {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s:%d: %d duplicated timestamps; kept the last row of each", f.Path, f.FirstDuplicateLine, f.Duplicates))
			}
			if f.Backwards > 0 {
				res.Warnings = append(res.Warnings, fmt.Sprintf("%s:%d: timestamps go backwards (%d rows); sorted by time", f.Path, f.FirstBackwardsLine, f.Backwards))
			}
			stamps, rows, err := csvStamps(f, o.Start, o.End, o.Interval)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			units = append(units, &unit{id: f.Name, file: f, rules: rules, stamps: stamps, rows: rows, evals: len(stamps) * len(rules)})
		}
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
	}
	for _, w := range res.Warnings {
		o.Logger.Warn("Fixed input", "problem", w)
	}
	if err := os.MkdirAll(o.OutputDir, 0o755); err != nil {
		return nil, err
	}
	fp := o.fingerprint()

	// Finished units of an earlier run are skipped with --resume; without
	// it everything runs again and replaces what is there.
	done := make([]*marker, len(units))
	var todo []int
	total := 0
	for i, u := range units {
		if o.Resume {
			if m, err := readMarker(o.OutputDir, u.id); err == nil && m.Fingerprint == fp(u) {
				done[i] = m
				res.Resumed++
				continue
			} else if err == nil {
				o.Logger.Warn("Inputs changed since the finished run; replaying again", "unit", u.id)
			}
		}
		todo = append(todo, i)
		total += u.evals
	}
	// The shards of one pipeline that run share its queries.
	shared := map[string]*sharedQuerier{}
	for _, i := range todo {
		u := units[i]
		if u.shards <= 1 {
			continue
		}
		key := u.id[:strings.LastIndexByte(u.id, '#')]
		sq, ok := shared[key]
		if !ok {
			sq = newSharedQuerier(o.Querier, u.shards, 0, u.rules[0].group.Limit)
			shared[key] = sq
		}
		sq.active++
		u.shared, u.querier = sq, sq.shard(u.shard)
	}
	o.Logger.Info("Backtest", "units", len(units), "resumed", res.Resumed, "evaluations", total, "parallelism", o.Parallelism)

	engine := NewEngine(time.Minute)
	defer engine.Close()
	prog := newProgress(o.Progress, o.TTY, total)
	var evals, points, failed atomic.Int64
	jobs := make(chan int)
	errc := make(chan error, len(todo))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for w := 0; w < min(o.Parallelism, max(1, len(todo))); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			models := o.Models
			if o.NewModels != nil {
				var err error
				if models, err = o.NewModels(); err != nil {
					for i := range jobs {
						if u := units[i]; u.shared != nil {
							u.shared.leave(u.shard)
						}
						errc <- fmt.Errorf("%s: models: %w", units[i].id, err)
					}
					return
				}
			}
			for i := range jobs {
				st, err := o.runUnit(ctx, engine, models, units[i], fp(units[i]), prog)
				if units[i].shard == 0 { // every shard makes the same evaluations
					evals.Add(st.evals)
					failed.Add(st.failed)
				}
				points.Add(st.points)
				if err != nil {
					// The other units go on: their markers let a rerun
					// with --resume redo only the failed ones.
					errc <- fmt.Errorf("%s: %w", units[i].id, err)
					continue
				}
				done[i] = st.marker
			}
		}()
	}
feed:
	for _, i := range todo {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	prog.finish()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var runErr error
	if len(errs) > 0 {
		// The report and series.om still cover the finished units.
		runErr = fmt.Errorf("%d of %d units failed (the report covers the others; rerun with --resume to redo only these): %w", len(errs), len(todo), errors.Join(errs...))
		var fu []*unit
		var fd []*marker
		for i, m := range done {
			if m != nil {
				fu, fd = append(fu, units[i]), append(fd, m)
			}
		}
		units, done = fu, fd
	}

	res.Units, res.Failed = len(todo)-len(errs), len(errs)
	res.Evaluations, res.Points, res.FailedEvaluations = evals.Load(), points.Load(), failed.Load()
	rep := o.buildReport(done)
	if o.NAB != nil && csvMode {
		emitted := map[string]bool{}
		inCorpus := 0
		for _, s := range rep.Series {
			emitted[s.Rule] = true
			if o.NAB.File(s.Labels["file"]) != nil {
				inCorpus++
			}
		}
		if inCorpus == 0 && len(rep.Series) > 0 {
			o.Logger.Warn("No replayed file is a NAB corpus file by its key (<category>/<file>.csv, relative to the --csv directory), so nothing is NAB-scored; replay the corpus with --nab.data (and --nab.files) instead of --csv")
		}
		var anomaly []string
		for _, r := range rules {
			switch {
			case r.spec.Anomaly == nil:
			case !emitted[r.spec.Forecast]:
				// Its score files are all zeros: a NAB table of them
				// would read as a detector that never fires.
				o.Logger.Warn("Pipeline matched no series of the replayed files; it is left out of the NAB scores", "pipeline", r.spec.Forecast)
			default:
				anomaly = append(anomaly, r.spec.Forecast)
			}
		}
		tables, err := nabTables(o.OutputDir, o.NAB, rep, anomaly)
		if err != nil {
			return nil, err
		}
		rep.Summary = append(rep.Summary, tables...)
	}
	if err := writeOutputs(o.OutputDir, rep, units, done, o.MetricPrefix); err != nil {
		return nil, err
	}
	res.Report = rep
	res.Elapsed = time.Since(start)
	return res, runErr
}

func (o Options) interval(g Group) time.Duration {
	if o.Interval > 0 {
		return o.Interval
	}
	return g.Interval
}

// storeTimes are the evaluation times of a store replay: multiples of the
// interval from start to end.
func storeTimes(start, end time.Time, iv time.Duration) []time.Time {
	var out []time.Time
	t := start.Truncate(iv)
	if t.Before(start) {
		t = t.Add(iv)
	}
	for ; !t.After(end); t = t.Add(iv) {
		out = append(out, t)
	}
	return out
}

// csvStamps are the output stamps of a CSV file in the range: its rows'
// timestamps, or multiples of interval; and its rows' timestamps.
func csvStamps(f *CSVFile, start, end time.Time, iv time.Duration) (stamps, rows []int64, err error) {
	first, last := f.Rows[0].T, f.Rows[len(f.Rows)-1].T
	lo, hi := first, last
	if !start.IsZero() {
		lo = start.UnixMilli()
	}
	if !end.IsZero() {
		hi = end.UnixMilli()
	}
	switch {
	case lo > last && end.IsZero():
		return nil, nil, fmt.Errorf("%s: the start %s is after the file's last row (%s to %s)", f.Path,
			fmtTime(time.UnixMilli(lo)), fmtTime(time.UnixMilli(first)), fmtTime(time.UnixMilli(last)))
	case hi < first && start.IsZero():
		return nil, nil, fmt.Errorf("%s: the end %s is before the file's first row (%s to %s)", f.Path,
			fmtTime(time.UnixMilli(hi)), fmtTime(time.UnixMilli(first)), fmtTime(time.UnixMilli(last)))
	}
	if lo > last || hi < first {
		return nil, nil, fmt.Errorf("%s: the range %s to %s is outside the file's data (%s to %s)", f.Path,
			fmtTime(time.UnixMilli(lo)), fmtTime(time.UnixMilli(hi)), fmtTime(time.UnixMilli(first)), fmtTime(time.UnixMilli(last)))
	}
	for _, t := range f.Times {
		if t >= lo && t <= hi {
			rows = append(rows, t)
		}
	}
	if iv > 0 {
		for _, t := range storeTimes(time.UnixMilli(max(lo, first)), time.UnixMilli(min(hi, last)+iv.Milliseconds()-1), iv) {
			stamps = append(stamps, t.UnixMilli())
		}
	} else {
		for _, r := range f.Rows {
			if r.T >= lo && r.T <= hi {
				stamps = append(stamps, r.T)
			}
		}
	}
	if len(rows) == 0 || len(stamps) == 0 {
		return nil, nil, fmt.Errorf("%s: no row in the range %s to %s", f.Path, fmtTime(time.UnixMilli(lo)), fmtTime(time.UnixMilli(hi)))
	}
	return stamps, rows, nil
}

// fingerprint returns a function giving each unit a hash of everything its
// outputs depend on, so that --resume only skips work done with the same
// inputs.
func (o Options) fingerprint() func(*unit) string {
	base := struct {
		Version          int
		Prefix, Metric   string
		Start, End       time.Time
		Interval, Season time.Duration
		Store            bool
		RemoteWrite      bool
		Groups           []Group
		Extra            string
	}{
		Version: 1, Prefix: o.MetricPrefix, Metric: o.Metric, Start: o.Start, End: o.End,
		Interval: o.Interval, Season: o.Season, Store: o.Querier != nil, Groups: o.Groups,
		RemoteWrite: o.Appender != nil, Extra: o.Fingerprint,
	}
	b, _ := json.Marshal(base)
	return func(u *unit) string {
		h := sha256.New()
		h.Write(b)
		h.Write([]byte(u.id))
		for _, r := range u.rules {
			rb, _ := json.Marshal(r.spec)
			h.Write(rb)
		}
		if u.file != nil {
			if st, err := os.Stat(u.file.Path); err == nil {
				fmt.Fprintf(h, "%d %d", st.Size(), st.ModTime().UnixNano())
			}
		}
		return hex.EncodeToString(h.Sum(nil))
	}
}

// unitStats is what one unit's run counted.
type unitStats struct {
	evals, points, failed int64
	marker                *marker
}

// runUnit evaluates every pipeline of a unit over its times and writes its
// outputs and then its done-marker.
func (o Options) runUnit(ctx context.Context, engine *promql.Engine, models *forecast.Registry, u *unit, fp string, prog *progress) (st unitStats, err error) {
	// A panic in a model fails this unit with a message that names it,
	// not the whole process without one.
	defer func() {
		if r := recover(); r != nil {
			o.Logger.Error("Panic in a replay", "unit", u.id, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("panic: %v (the stack is in the log)", r)
		}
	}()
	var q *replayQuerier
	storeQ := u.querier
	limitOf := func(g Group) int { return g.Limit }
	if u.shared != nil {
		// The shared querier applies the limit to the whole answer; a
		// shard sees only its part of it.
		defer u.shared.leave(u.shard)
		limitOf = func(Group) int { return 0 }
	}
	if u.file != nil {
		cs, err := openCSVStore(ctx, u.file, o.Metric)
		if err != nil {
			return st, err
		}
		defer cs.Close()
		q = &replayQuerier{engine: engine, db: cs}
	}
	metrics := pipeline.NewMetrics(nil)
	var outs []*ruleOut
	for _, ur := range u.rules {
		rule := pipeline.NewRule(ur.spec, o.MetricPrefix)
		ro := newRuleOut(ur, o.MetricPrefix)
		rec := &recorder{out: ro, next: o.Appender}
		var times []time.Time
		if u.file != nil {
			for _, s := range u.stamps {
				times = append(times, time.UnixMilli(s).Add(ur.group.QueryOffset))
			}
		} else {
			times = storeTimes(o.Start, o.End, o.interval(ur.group))
		}
		var firstErr error
		for _, ts := range times {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			querier := storeQ
			if q != nil {
				q.now = ts.UnixMilli()
				querier = q
			}
			ro.begin(ts.Add(-ur.group.QueryOffset).UnixMilli())
			err := rule.Eval(ctx, ts, pipeline.EvalOptions{
				Querier: querier, Models: models, Appender: rec,
				QueryOffset: ur.group.QueryOffset, Limit: limitOf(ur.group), Metrics: metrics,
			})
			st.evals++
			prog.add(1)
			if err != nil {
				if ctx.Err() != nil {
					return st, ctx.Err()
				}
				st.failed++
				ro.failed++
				if firstErr == nil {
					firstErr = err
					o.Logger.Warn("Pipeline evaluation failed", "unit", u.id, "pipeline", ur.spec.Forecast, "eval_time", fmtTime(ts), "err", err)
				}
				continue
			}
			st.points += int64(ro.evalSeries)
		}
		if firstErr != nil {
			ro.firstErr = firstErr.Error()
			if ro.failed == int64(len(times)) {
				return st, fmt.Errorf("pipeline %s: every evaluation failed, the first with: %w", ur.spec.Forecast, firstErr)
			}
			o.Logger.Warn("Some evaluations failed", "unit", u.id, "pipeline", ur.spec.Forecast, "failed", ro.failed, "of", len(times))
		}
		outs = append(outs, ro)
	}
	m, err := writeUnit(o.OutputDir, u, outs, o.Season, fp)
	if err != nil {
		return st, err
	}
	st.marker = m
	return st, nil
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// safeName turns a unit id into a file name.
func safeName(id string) string {
	r := strings.NewReplacer("/", "__", "\\", "__", ";", "__", ":", "_", " ", "_")
	return r.Replace(id)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
