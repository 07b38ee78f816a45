// Command bench runs the 10,000-series engine benchmark (see BENCHMARKS.md
// and internal/bench) and prints its report as markdown.
//
//	go run ./internal/cmd/bench -series=10000 -history=24h -evals=5
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
	"time"

	"github.com/openanomaly/openanomaly/internal/bench"
)

func main() {
	var o bench.Options
	var modes, jsonOut string
	flag.IntVar(&o.Series, "series", 10000, "number of series")
	flag.DurationVar(&o.History, "history", 24*time.Hour, "history length (and the pipeline's context)")
	flag.IntVar(&o.Evals, "evals", 5, "sidecar evaluations per store, the cold one included")
	flag.DurationVar(&o.Interval, "interval", time.Minute, "the sidecar group's interval")
	flag.DurationVar(&o.ScrapeInterval, "scrape-interval", time.Minute, "how often the stores scrape the live tail")
	flag.DurationVar(&o.PeerInterval, "peer-interval", 5*time.Second, "interval of the peer rule groups")
	flag.IntVar(&o.PeerEvals, "peer-evals", 10, "evaluations per peer group and engine to reach")
	flag.Uint64Var(&o.Seed, "seed", 1, "data seed")
	flag.StringVar(&modes, "modes", "vm,prom,prom-rr", "sidecar runs: vm (VictoriaMetrics query_range), prom (Prometheus query_range), prom-rr (Prometheus remote_read)")
	flag.StringVar(&o.Sidecar, "sidecar", "bin/openanomaly", "the sidecar binary")
	flag.StringVar(&o.WorkDir, "workdir", "", "parent of the temporary directory")
	flag.BoolVar(&o.Keep, "keep", false, "keep the temporary directory (logs, data)")
	flag.StringVar(&jsonOut, "json", "", "also write the raw measurements to this file")
	flag.Parse()
	o.Modes = strings.Split(modes, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, o)
	if rep != nil {
		fmt.Println(rep.Markdown())
		if jsonOut != "" {
			b, _ := json.MarshalIndent(rep, "", "  ")
			if werr := os.WriteFile(jsonOut, b, 0o644); werr != nil {
				fmt.Fprintln(os.Stderr, werr)
			}
		}
	}
	if err == nil && rep != nil {
		err = rep.Check()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
