// Command openanomaly is the OpenAnomaly sidecar: it runs forecasting and
// anomaly pipelines over a Prometheus-compatible store and writes the results
// back as ordinary metrics. This file only wires the parts together.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	toolkitweb "github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/builtin"
	"github.com/openanomaly/openanomaly/pkg/pipeline"
	"github.com/openanomaly/openanomaly/pkg/remotewrite"
	"github.com/openanomaly/openanomaly/pkg/web"
)

func main() {
	app := kingpin.New("openanomaly", "Forecasting and anomaly detection next to Prometheus.")
	app.Version(version.Print("openanomaly"))
	app.HelpFlag.Short('h')

	runCmd := app.Command("run", "Run the sidecar.")
	var rc runConfig
	runCmd.Flag("config.file", "Configuration file path.").Default("openanomaly.yml").StringVar(&rc.configFile)
	// --web.listen-address (repeatable), --web.config.file (TLS and basic
	// auth) and, on Linux, --web.systemd-socket, as every exporter has them.
	rc.web = kingpinflag.AddFlags(runCmd, ":9095")
	runCmd.Flag("web.metrics.outputs", "Serve the pipelines' outputs on /metrics next to the sidecar's own metrics. Turn off (--no-web.metrics.outputs) when the outputs go by remote-write, so that scraping the sidecar's health does not render every output series.").
		Default("true").BoolVar(&rc.exposeOutputs)
	runCmd.Flag("shutdown.timeout", "How long to wait for running evaluations at shutdown (remote-write queues have their own flush_deadline).").
		Default("30s").DurationVar(&rc.shutdownTimeout)
	rc.log = &promslog.Config{}
	promslogflag.AddFlags(app, rc.log)

	checkCmd := app.Command("check", "Check the syntax and semantics of files.")
	checkConfigCmd := checkCmd.Command("config", "Check a config file and the pipeline files it names.")
	checkConfigFiles := checkConfigCmd.Arg("config-files", "The config files to check.").Required().ExistingFiles()
	checkRulesCmd := checkCmd.Command("rules", "Check pipeline files.")
	checkRulesFiles := checkRulesCmd.Arg("rule-files", "The pipeline files to check.").Required().ExistingFiles()

	testCmd := app.Command("test", "Unit testing.")
	testRulesCmd := testCmd.Command("rules", "Unit tests for pipelines, in the style of promtool test rules.")
	testRulesRun := testRulesCmd.Flag("run", "Run only the tests whose name matches this regular expression.").Regexp()
	testRulesFiles := testRulesCmd.Arg("test-rule-file", "The unit-test files.").Required().ExistingFiles()

	extra := map[string]func() int{}
	for _, add := range commands {
		name, run := add(app)
		extra[name] = run
	}

	cmd := kingpin.MustParse(app.Parse(os.Args[1:]))
	if run, ok := extra[cmd]; ok {
		os.Exit(run())
	}
	switch cmd {
	case runCmd.FullCommand():
		os.Exit(runSidecar(rc))
	case checkConfigCmd.FullCommand():
		os.Exit(checkConfig(os.Stdout, *checkConfigFiles...))
	case checkRulesCmd.FullCommand():
		os.Exit(checkRules(os.Stdout, *checkRulesFiles...))
	case testRulesCmd.FullCommand():
		os.Exit(testRules(context.Background(), os.Stdout, *testRulesRun, *testRulesFiles...))
	}
}

// commands holds the subcommands that live in their own files (backtest,
// nab): each adds its command and flags to app in an init function and
// returns the command's full name and what runs it, returning the exit code.
var commands []func(app *kingpin.Application) (fullCommand string, run func() int)

type runConfig struct {
	configFile      string
	web             *toolkitweb.FlagConfig
	shutdownTimeout time.Duration
	exposeOutputs   bool
	log             *promslog.Config
}

func runSidecar(rc runConfig) int {
	logger := promslog.New(rc.log)
	logger.Info("Starting OpenAnomaly", "version", version.Info(), "build_context", version.BuildContext())
	// A broken web config fails at startup, not on the first request.
	if err := toolkitweb.Validate(*rc.web.WebConfigFile); err != nil {
		logger.Error("Unable to validate web configuration file", "file", *rc.web.WebConfigFile, "err", err)
		return 1
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("openanomaly"),
	)
	reloadOK := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "openanomaly", Name: "config_last_reload_successful",
		Help: "Whether the last configuration reload attempt was successful.",
	})
	reloadTime := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "openanomaly", Name: "config_last_reload_success_timestamp_seconds",
		Help: "Timestamp of the last successful configuration reload.",
	})
	reg.MustRegister(reloadOK, reloadTime)
	registerModelMetrics(reg) // openanomaly_torch_* in a libtorch build

	remote := remotewrite.NewStorage(reg, logger.With("component", "remote_write"))
	manager := pipeline.NewManager(pipeline.ManagerOptions{
		Appender: remote, Registerer: reg, Logger: logger.With("component", "pipeline"),
	})

	var reloadMtx sync.Mutex
	started := false
	reload := func() error {
		reloadMtx.Lock()
		defer reloadMtx.Unlock()
		err := applyConfig(rc.configFile, remote, manager, logger)
		if err != nil {
			reloadOK.Set(0)
			if !started {
				logger.Error("Error loading config, exiting", "file", rc.configFile, "err", err)
				return err
			}
			logger.Error("Error loading config, keeping the running one", "file", rc.configFile, "err", err)
			return err
		}
		started = true
		reloadOK.Set(1)
		reloadTime.SetToCurrentTime()
		logger.Info("Completed loading of configuration file", "file", rc.configFile)
		return nil
	}

	var gatherer prometheus.Gatherer = reg
	if rc.exposeOutputs {
		gatherer = prometheus.Gatherers{reg, manager.Exposition()}
	}
	handler := web.New(web.Options{
		Gatherer: gatherer,
		Manager:  manager,
		Reload:   reload,
		Logger:   logger.With("component", "web"),
	})

	if err := reload(); err != nil {
		return 1
	}
	handler.SetReady(true)

	var g run.Group
	{
		term := make(chan os.Signal, 1)
		signal.Notify(term, os.Interrupt, syscall.SIGTERM)
		cancel := make(chan struct{})
		g.Add(func() error {
			select {
			case s := <-term:
				logger.Info("Received signal, exiting gracefully...", "signal", s.String())
			case <-cancel:
			}
			return nil
		}, func(error) { close(cancel) })
	}
	{
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		cancel := make(chan struct{})
		g.Add(func() error {
			for {
				select {
				case <-hup:
					_ = reload()
				case <-cancel:
					return nil
				}
			}
		}, func(error) { close(cancel) })
	}
	{
		srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
		g.Add(func() error {
			if err := toolkitweb.ListenAndServe(srv, rc.web, logger.With("component", "web")); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("web server: %w", err)
			}
			return nil
		}, func(error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(ctx)
		})
	}
	{
		cancel := make(chan struct{})
		g.Add(func() error {
			<-cancel
			return nil
		}, func(error) {
			handler.SetReady(false)
			stopped := make(chan struct{})
			go func() { manager.Stop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(rc.shutdownTimeout):
				logger.Warn("Evaluations still running at shutdown timeout")
			}
			remote.Close()
			close(cancel)
		})
	}
	if err := g.Run(); err != nil {
		logger.Error("Fatal error", "err", err)
		return 1
	}
	logger.Info("See you next time!")
	return 0
}

// applyConfig loads the config and every pipeline file, builds the querier
// and the models, and only when all of that worked swaps them in.
func applyConfig(file string, remote *remotewrite.Storage, manager *pipeline.Manager, logger *slog.Logger) error {
	cfg, errs := config.LoadFile(file)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	groups, err := loadGroups(cfg)
	if err != nil {
		return err
	}
	models, err := buildModels(cfg)
	if err != nil {
		return err
	}
	q, err := datasource.FromConfig(cfg.Datasource, "openanomaly/"+version.Version)
	if err != nil {
		return fmt.Errorf("datasource: %w", err)
	}
	if err := remote.ApplyConfig(cfg.RemoteWrite, cfg.ExternalLabels()); err != nil {
		return fmt.Errorf("remote_write: %w", err)
	}
	n := 0
	for _, g := range groups {
		n += len(g.Rules)
	}
	logger.Info("Loaded pipelines", "groups", len(groups), "pipelines", n)
	return manager.Update(pipeline.UpdateOptions{Groups: groups, Querier: q, Models: models})
}

func loadGroups(cfg *config.Config) ([]pipeline.GroupOptions, error) {
	files, errs := cfg.LoadRuleFiles()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var out []pipeline.GroupOptions
	for _, f := range files {
		for _, rg := range f.Groups {
			o := pipeline.GroupOptions{
				Name: rg.Name, File: f.File(), Limit: rg.Limit, Concurrency: rg.Concurrency,
				Interval:    time.Duration(cfg.Global.EvaluationInterval),
				QueryOffset: time.Duration(cfg.Global.QueryOffset),
			}
			if rg.Interval > 0 {
				o.Interval = time.Duration(rg.Interval)
			}
			if rg.QueryOffset != nil {
				o.QueryOffset = time.Duration(*rg.QueryOffset)
			}
			for _, r := range rg.Rules {
				o.Rules = append(o.Rules, pipeline.NewRule(r, cfg.Global.MetricPrefix))
			}
			out = append(out, o)
		}
	}
	return out, nil
}

func buildModels(cfg *config.Config) (*forecast.Registry, error) {
	reg := forecast.NewRegistry()
	if err := reg.Register("default", builtin.Default()); err != nil {
		return nil, err
	}
	for _, mc := range cfg.Models {
		var (
			m   forecast.Model
			err error
		)
		switch {
		case mc.Builtin != nil:
			m, err = builtin.New(*mc.Builtin)
		case mc.TorchScript != nil:
			m, err = newTorchScriptModel(mc.Name, *mc.TorchScript)
		}
		if err != nil {
			return nil, fmt.Errorf("model %q: %w", mc.Name, err)
		}
		if err := reg.Register(mc.Name, m); err != nil {
			return nil, err
		}
	}
	return reg, nil
}
