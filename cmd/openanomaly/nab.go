package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/alecthomas/kingpin/v2"

	"github.com/openanomaly/openanomaly/pkg/nab"
)

func init() { commands = append(commands, addNABCommand) }

// nabConfig holds the flags of `openanomaly nab score`.
type nabConfig struct {
	dataDir, resultsDir string
	threshold           float64
	thresholdSet        bool
	profile             string
	jsonFile            string
	subset              bool
}

// addNABCommand adds `nab score`, which scores a detector's output on the
// NAB corpus the way NAB does and prints the three profiles' scores.
func addNABCommand(app *kingpin.Application) (string, func() int) {
	cfg, name := defineNABScore(app)
	return name, func() int { return nabScore(os.Stdout, os.Stderr, *cfg) }
}

// defineNABScore defines the command and its flags and returns where the
// flags land and the command's full name.
func defineNABScore(app *kingpin.Application) (*nabConfig, string) {
	cfg := &nabConfig{}
	cmd := app.Command("nab", "Numenta Anomaly Benchmark tools.").Command("score",
		"Score a detector's output on the NAB corpus as NAB does: per profile, the normalised score "+
			"(0 never fires, 100 perfect) at the threshold that is best over the corpus, or at --threshold.")
	cmd.Flag("data", "NAB corpus folder (data CSVs, labels/combined_windows.json, config/profiles.json).").
		Required().PlaceHolder("DIR").StringVar(&cfg.dataDir)
	cmd.Flag("results", "Detector output: <category>/[<detector>_]<file>.csv files with timestamp and anomaly_score columns, "+
		"one row per data row (a NAB results/<detector> folder works as is).").
		Required().PlaceHolder("DIR").StringVar(&cfg.resultsDir)
	cmd.Flag("threshold", "Score at this fixed threshold (a row with anomaly_score >= X is a detection) instead of the corpus-optimised one.").
		PlaceHolder("X").IsSetByUser(&cfg.thresholdSet).Float64Var(&cfg.threshold)
	cmd.Flag("profile", "Score only this profile (standard, reward_low_FP_rate, reward_low_FN_rate); default all.").
		PlaceHolder("P").StringVar(&cfg.profile)
	cmd.Flag("json", "Also write every number (per profile and per file) as JSON to this file.").
		PlaceHolder("FILE").StringVar(&cfg.jsonFile)
	cmd.Flag("subset", "Score only the files found under --results, normalised over their windows alone (not comparable with NAB's scoreboard); without it a missing file is an error.").
		BoolVar(&cfg.subset)
	return cfg, cmd.FullCommand()
}

// nabReport is the JSON written by --json.
type nabReport struct {
	Detector string        `json:"detector"`
	Data     string        `json:"data"`
	Results  string        `json:"results"`
	Files    int           `json:"files"`
	Windows  int           `json:"windows"`
	Subset   bool          `json:"subset"`
	Fixed    bool          `json:"fixed_threshold"`
	Profiles []*nab.Result `json:"profiles"`
}

// nabScore runs `nab score`: it prints a table of the profiles to stdout and
// errors to stderr, and returns the exit code.
func nabScore(stdout, stderr io.Writer, cfg nabConfig) int {
	rep, err := scoreNAB(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "nab score: %v\n", err)
		return 1
	}
	printNAB(stdout, rep)
	if cfg.jsonFile != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(cfg.jsonFile, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "nab score: writing --json: %v\n", err)
			return 1
		}
	}
	return 0
}

func scoreNAB(cfg nabConfig) (*nabReport, error) {
	if cfg.thresholdSet && (math.IsNaN(cfg.threshold) || math.IsInf(cfg.threshold, 0)) {
		return nil, fmt.Errorf("--threshold %v is not a finite number", cfg.threshold)
	}
	corpus, err := nab.LoadCorpus(cfg.dataDir)
	if err != nil {
		return nil, fmt.Errorf("loading the corpus: %w", err)
	}
	profiles := corpus.Profiles
	if cfg.profile != "" {
		p, err := corpus.Profile(cfg.profile)
		if err != nil {
			return nil, err
		}
		profiles = []nab.Profile{p}
	}
	d, err := nab.ReadResults(cfg.resultsDir, corpus)
	if err != nil {
		return nil, fmt.Errorf("reading results: %w", err)
	}
	if len(d) == 0 {
		return nil, fmt.Errorf("no results for any corpus file under %s (want <category>/[<detector>_]<file>.csv)", cfg.resultsDir)
	}
	if cfg.subset {
		keys := make([]string, 0, len(d))
		for k := range d {
			keys = append(keys, k)
		}
		if corpus, err = corpus.Subset(keys...); err != nil {
			return nil, err
		}
	}
	rep := &nabReport{
		Detector: filepath.Base(filepath.Clean(cfg.resultsDir)),
		Data:     cfg.dataDir, Results: cfg.resultsDir,
		Files: len(corpus.Files), Windows: corpus.Windows(),
		Subset: cfg.subset, Fixed: cfg.thresholdSet,
	}
	for _, p := range profiles {
		var r *nab.Result
		if cfg.thresholdSet {
			r, err = corpus.Score(d, p.Name, cfg.threshold)
		} else {
			r, err = corpus.Optimize(d, p.Name)
		}
		if err != nil {
			return nil, err
		}
		rep.Profiles = append(rep.Profiles, r)
	}
	if len(rep.Profiles) == 0 {
		return nil, errors.New("no profiles")
	}
	return rep, nil
}

// printNAB writes the table of profiles, like NAB's final results.
func printNAB(w io.Writer, rep *nabReport) {
	how := "threshold optimised per profile over the corpus"
	if rep.Fixed {
		how = "fixed threshold"
	}
	scope := "full corpus"
	if rep.Subset {
		scope = "subset, normalised over its windows"
	}
	fmt.Fprintf(w, "NAB scores of %s: %d files, %d windows (%s), %s\n\n", rep.Detector, rep.Files, rep.Windows, scope, how)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Right-aligned numbers; profile names padded to one width so that
	// they read left-aligned.
	width := len("profile")
	for _, r := range rep.Profiles {
		width = max(width, len(r.Profile))
	}
	fmt.Fprintf(tw, "%-*s\tscore\tthreshold\traw\tdetected\tFP\tprecision\trecall\tF1\t\n", width, "profile")
	for _, r := range rep.Profiles {
		fmt.Fprintf(tw, "%-*s\t%.2f\t%.6g\t%.3f\t%d/%d\t%d\t%.3f\t%.3f\t%.3f\t\n", width, r.Profile, r.Score, r.Threshold, r.Raw,
			r.Detected, r.Windows, r.FalsePositives, r.Precision, r.Recall, r.F1)
	}
	tw.Flush()
}
