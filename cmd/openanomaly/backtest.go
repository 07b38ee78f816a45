package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"

	"github.com/openanomaly/openanomaly/pkg/backtest"
	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/nab"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

func init() { commands = append(commands, addBacktestCommand) }

// backtestConfig holds the backtest command's flags.
type backtestConfig struct {
	configFile     string
	csv            []string
	metric         string
	start, end     string
	interval       time.Duration
	outputDir      string
	remoteWriteURL string
	resume         bool
	parallelism    int
	season         time.Duration
	progress       string
	nabData        string
	nabFiles       *regexp.Regexp
	files          []string
}

func addBacktestCommand(app *kingpin.Application) (string, func() int) {
	cmd := app.Command("backtest", "Replay pipelines over a past range, from the store or from CSV files, and measure them.")
	bc := backtestFlags(cmd)
	return cmd.FullCommand(), func() int {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runBacktest(ctx, *bc, os.Stdout, os.Stderr, strings.Join(os.Args, " "))
	}
}

// backtestFlags defines the command's flags and arguments on cmd.
func backtestFlags(cmd *kingpin.CmdClause) *backtestConfig {
	var bc backtestConfig
	cmd.Flag("config.file", "Configuration file: the datasource to read history from (unless --csv is given), the models, global settings, and the rule_files when no pipeline file is given.").StringVar(&bc.configFile)
	cmd.Flag("csv", "CSV file (timestamp,value) or directory of them to read history from instead of the store; repeatable. Each file is one series {__name__=<--csv.metric>, file=<path relative to the directory>}.").StringsVar(&bc.csv)
	cmd.Flag("csv.metric", "Metric name of the CSV series.").Default(backtest.DefaultMetric).StringVar(&bc.metric)
	cmd.Flag("start", "Start of the replay: RFC 3339, Unix seconds or YYYY-MM-DD HH:MM:SS (UTC). Default for CSV: each file's first row.").StringVar(&bc.start)
	cmd.Flag("end", "End of the replay (inclusive): RFC 3339, Unix seconds or YYYY-MM-DD HH:MM:SS (UTC). Default for CSV: each file's last row.").StringVar(&bc.end)
	cmd.Flag("interval", "Evaluate every interval instead of each group's interval (store) or every row's timestamp (CSV).").DurationVar(&bc.interval)
	cmd.Flag("output.dir", "Directory for the outputs: series.om, scores/, report.json, report.html.").Default("backtest").StringVar(&bc.outputDir)
	cmd.Flag("output.remote-write-url", "Also remote-write the emitted series here (e.g. VictoriaMetrics' http://host:8428/api/v1/write).").StringVar(&bc.remoteWriteURL)
	cmd.Flag("resume", "Skip the files (CSV) or pipelines (store) that a previous run into --output.dir finished with the same inputs.").BoolVar(&bc.resume)
	cmd.Flag("parallelism", "How many files or pipelines to replay at once; default GOMAXPROCS.").IntVar(&bc.parallelism)
	cmd.Flag("metrics.season", "Seasonal lag of MASE's seasonal-naive scale.").Default("1d").DurationVar(&bc.season)
	cmd.Flag("progress", "Progress on stderr: auto (a bar on a terminal, a line every 10s otherwise), bar, log or none.").Default("auto").EnumVar(&bc.progress, "auto", "bar", "log", "none")
	cmd.Flag("nab.data", "NAB corpus folder (data, labels/, config/): replay its 58 files (named by their corpus keys, realKnownCause/nyc_taxi.csv) unless --csv is given, score the anomaly scores with NAB per profile with the corpus-optimised threshold and with the product's threshold 1, and shade the labelled windows on the charts.").StringVar(&bc.nabData)
	cmd.Flag("nab.files", "With --nab.data: replay only the corpus files whose key matches this regular expression (NAB's score is then over their windows alone).").RegexpVar(&bc.nabFiles)
	cmd.Arg("pipeline-files", "Pipeline files to replay; default: the config's rule_files.").ExistingFilesVar(&bc.files)
	return &bc
}

// runBacktest runs the command and returns its exit code: 0 on success, 1
// when it failed (every problem printed to stderr).
func runBacktest(ctx context.Context, bc backtestConfig, stdout, stderr io.Writer, command string) int {
	logger := promslog.New(&promslog.Config{Writer: stderr})
	o, closeFn, err := backtestOptions(bc, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "backtest:", err)
		return 1
	}
	o.Logger, o.Command = logger, command
	res, err := backtest.Run(ctx, o)
	if cerr := closeFn(); err == nil {
		err = cerr
	}
	if res == nil {
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "backtest: interrupted; rerun the same command with --resume to keep the units that finished")
			return 1
		}
		fmt.Fprintln(stderr, "backtest:", err)
		return 1
	}
	if n := len(res.Warnings); n > 0 {
		// Each was logged when the input was read.
		fmt.Fprintf(stderr, "%d input problems were fixed (duplicated or backward timestamps); the log lines \"Fixed input\" above name them\n", n)
	}
	fmt.Fprintf(stdout, "Replayed %d of %d units (%d resumed, %d failed): %d evaluations, %d failed, %d points in %s (%.0f points/s)\n",
		res.Units, res.Units+res.Failed+res.Resumed, res.Resumed, res.Failed, res.Evaluations, res.FailedEvaluations, res.Points,
		res.Elapsed.Round(time.Millisecond), float64(res.Points)/res.Elapsed.Seconds())
	fmt.Fprintf(stdout, "Outputs in %s: %s, %s, %s, %s/\n", o.OutputDir, backtest.SeriesFile, backtest.ReportJSON, backtest.ReportHTML, backtest.ScoresDir)
	if err != nil {
		fmt.Fprintln(stderr, "backtest:", err)
		return 1
	}
	return 0
}

// backtestOptions turns the flags into backtest options: config, pipeline
// files with the config's defaults, models, the source and the sinks.
func backtestOptions(bc backtestConfig, stderr io.Writer) (backtest.Options, func() error, error) {
	noop := func() error { return nil }
	o := backtest.Options{
		CSV: bc.csv, Metric: bc.metric, Interval: bc.interval, OutputDir: bc.outputDir,
		Resume: bc.resume, Parallelism: bc.parallelism, Season: bc.season,
	}
	var err error
	if bc.start != "" {
		if o.Start, err = backtest.ParseTimestamp(bc.start); err != nil {
			return o, noop, fmt.Errorf("--start: %w", err)
		}
	}
	if bc.end != "" {
		if o.End, err = backtest.ParseTimestamp(bc.end); err != nil {
			return o, noop, fmt.Errorf("--end: %w", err)
		}
	}
	if len(bc.csv) == 0 && bc.configFile == "" && bc.nabData == "" {
		return o, noop, errors.New("give --config.file (to read from its datasource), --csv or --nab.data")
	}

	// Without a config file (CSV only): the defaults, the built-in models.
	def := config.DefaultConfig
	cfg, errs := &def, []error(nil)
	if bc.configFile != "" {
		cfg, errs = config.LoadFile(bc.configFile)
	}
	if len(errs) > 0 {
		return o, noop, errors.Join(errs...)
	}
	files := bc.files
	if len(files) == 0 {
		if bc.configFile == "" {
			return o, noop, errors.New("no pipeline files given")
		}
		if files, err = cfg.RuleFilePaths(); err != nil {
			return o, noop, err
		}
		if len(files) == 0 {
			return o, noop, fmt.Errorf("%s: rule_files matches no pipeline file", bc.configFile)
		}
	}
	var parsed []*rulefmt.RuleGroups
	for _, f := range files {
		rg, ferrs := rulefmt.ParseFile(f)
		errs = append(errs, ferrs...)
		if rg != nil {
			parsed = append(parsed, rg)
		}
	}
	errs = append(errs, config.CheckModels(cfg, parsed...)...)
	errs = append(errs, rulefmt.CheckUnique(parsed...)...)
	if len(errs) > 0 {
		return o, noop, errors.Join(errs...)
	}
	for _, f := range parsed {
		for _, rg := range f.Groups {
			g := backtest.Group{
				File: f.File(), Name: rg.Name, Limit: rg.Limit, Rules: rg.Rules,
				Interval:    time.Duration(cfg.Global.EvaluationInterval),
				QueryOffset: time.Duration(cfg.Global.QueryOffset),
			}
			if rg.Interval > 0 {
				g.Interval = time.Duration(rg.Interval)
			}
			if rg.QueryOffset != nil {
				g.QueryOffset = time.Duration(*rg.QueryOffset)
			}
			o.Groups = append(o.Groups, g)
		}
	}
	o.MetricPrefix = cfg.Global.MetricPrefix
	// --resume replays again when the models change.
	if b, err := json.Marshal(cfg.Models); err == nil {
		o.Fingerprint = string(b)
	}
	if o.Models, err = buildModels(cfg); err != nil {
		return o, noop, err
	}
	// One set of models per worker: the built-in model's fitted state is
	// aged by the replayed time, which differs between workers.
	o.NewModels = func() (*forecast.Registry, error) { return buildModels(cfg) }
	if bc.nabData != "" {
		if o.NAB, err = nab.LoadCorpus(bc.nabData); err != nil {
			return o, noop, fmt.Errorf("--nab.data: %w", err)
		}
		if len(bc.csv) == 0 {
			for _, f := range o.NAB.Files {
				if bc.nabFiles == nil || bc.nabFiles.MatchString(f.Key) {
					o.Files = append(o.Files, [2]string{filepath.Join(bc.nabData, filepath.FromSlash(f.Key)), f.Key})
				}
			}
			if len(o.Files) == 0 {
				return o, noop, fmt.Errorf("--nab.files %q matches no file of the corpus", bc.nabFiles)
			}
		}
	}
	if len(bc.csv) == 0 && bc.nabData == "" {
		if o.Querier, err = datasource.FromConfig(cfg.Datasource, "openanomaly/"+version.Version); err != nil {
			return o, noop, fmt.Errorf("datasource: %w", err)
		}
	}
	o.Title = "Backtest of " + strings.Join(files, ", ")

	switch bc.progress {
	case "auto":
		o.Progress, o.TTY = stderr, isTerminal(stderr)
	case "bar":
		o.Progress, o.TTY = stderr, true
	case "log":
		o.Progress = stderr
	}
	closeFn := noop
	if bc.remoteWriteURL != "" {
		rw, err := backtest.NewRemoteWriter(bc.remoteWriteURL, nil)
		if err != nil {
			return o, noop, err
		}
		o.Appender = rw
		closeFn = func() error {
			_, err := rw.Close(context.Background())
			return err
		}
	}
	return o, closeFn, nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
