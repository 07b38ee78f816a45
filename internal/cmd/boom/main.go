// Command boom runs the BOOM forecasting-accuracy benchmark (see
// BENCHMARKS.md, "BOOM forecasting accuracy", and internal/boom) and prints
// its report as markdown.
//
//	go run ./internal/cmd/boom -json /tmp/boom.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/openanomaly/openanomaly/internal/boom"
)

func main() {
	var (
		dir, models, jsonOut string
		o                    boom.Options
		perSeries            bool
	)
	var names []string
	for _, s := range boom.Specs {
		names = append(names, s.Name)
	}
	flag.StringVar(&dir, "data", "../shared/data/boom", "the BOOM folder (manifest.csv and series/)")
	flag.StringVar(&models, "models", strings.Join(boom.DefaultModels, ","), "comma-separated models, of: "+strings.Join(names, ", "))
	flag.StringVar(&jsonOut, "json", "", "also write every number to this file")
	flag.IntVar(&o.Parallelism, "parallelism", 0, "series forecast at once (0: GOMAXPROCS)")
	flag.IntVar(&o.Rounds, "rounds", 5, "passes over every series per model, for the timing (medians)")
	flag.IntVar(&o.Origins, "origins", 0, "origins per series instead of the protocol's K (0: the protocol's)")
	flag.IntVar(&o.Context, "context", 0, "context points per forecast instead of the protocol's C (0: the protocol's; a diagnostic outside the protocol)")
	flag.BoolVar(&perSeries, "per-series", true, "print the per-series table")
	flag.Parse()

	for _, n := range strings.Split(models, ",") {
		spec, ok := boom.SpecByName(strings.TrimSpace(n))
		if !ok {
			fmt.Fprintf(os.Stderr, "boom: unknown model %q, want one of %s\n", n, strings.Join(names, ", "))
			os.Exit(2)
		}
		o.Models = append(o.Models, spec)
	}
	var err error
	if o.Series, err = boom.LoadDir(dir); err != nil {
		fmt.Fprintln(os.Stderr, "boom:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := boom.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "boom:", err)
		os.Exit(1)
	}
	fmt.Print(rep.Markdown(perSeries))
	if jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(jsonOut, b, 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "boom:", err)
			os.Exit(1)
		}
	}
}
