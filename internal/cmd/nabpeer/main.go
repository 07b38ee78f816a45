// Command nabpeer runs the vmalert z-score peer on the NAB corpus (see
// internal/nabpeer and BENCHMARKS.md, "NAB: vmalert z-score peer"): it
// starts VictoriaMetrics, imports the 58 NAB files, replays
// internal/nabpeer/peer-rules.yml with vmalert, writes the per-row scores
// as timestamp,anomaly_score CSVs and prints their NAB scores as markdown.
//
//	go run ./internal/cmd/nabpeer -out bin/nabpeer
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/openanomaly/openanomaly/internal/nabpeer"
)

func main() {
	var o nabpeer.Options
	var files, jsonOut string
	flag.StringVar(&o.DataDir, "data", "../shared/data/nab", "the NAB corpus folder")
	flag.StringVar(&files, "files", "", "comma-separated corpus keys to run (default: all; scores are then normalised over those files)")
	flag.StringVar(&o.OutDir, "out", "bin/nabpeer", "results folder: <out>/recorded/<category>/<file>.csv and <out>/clamped/...")
	flag.StringVar(&o.WorkDir, "workdir", "", "VictoriaMetrics data, rendered rules and logs (default: a temporary folder)")
	flag.BoolVar(&o.Keep, "keep", false, "keep the temporary work folder")
	flag.StringVar(&o.VictoriaMetrics, "victoria-metrics", "victoria-metrics", "the VictoriaMetrics binary")
	flag.StringVar(&o.VMAlert, "vmalert", "vmalert", "the vmalert binary")
	flag.IntVar(&o.Parallel, "parallel", 3, "replays run at once")
	flag.DurationVar(&o.RulesDelay, "rules-delay", 3*time.Second, "vmalert's -replay.rulesDelay")
	flag.StringVar(&jsonOut, "json", "", "also write the report (every NAB result) as JSON to this file")
	flag.Parse()
	if files != "" {
		o.Files = strings.Split(files, ",")
	}
	o.Logf = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, time.Now().UTC().Format("15:04:05 ")+format+"\n", args...)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := nabpeer.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nabpeer:", err)
		os.Exit(1)
	}
	fmt.Printf("Machine: %s, %d cores, %s, linux/%s. %s\n\n", cpuModel(), runtime.NumCPU(), memTotal(), runtime.GOARCH, versions())
	fmt.Println(rep.Markdown())
	if jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "nabpeer:", err)
			os.Exit(1)
		}
	}
	if err := rep.Check(); err != nil {
		fmt.Fprintln(os.Stderr, "nabpeer:", err)
		os.Exit(1)
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown memory"
	}
	for _, line := range strings.Split(string(b), "\n") {
		var kb int64
		if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
			return fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
		}
	}
	return "unknown memory"
}

// versions names the VictoriaMetrics package (Debian's 1.79 binaries print
// no -version).
func versions() string {
	out, err := execOutput("dpkg-query", "-W", "-f=${Version}", "victoria-metrics")
	if err != nil || strings.TrimSpace(out) == "" {
		return "victoria-metrics and vmalert from PATH."
	}
	return "victoria-metrics and vmalert: Debian package victoria-metrics " + strings.TrimSpace(out) + "."
}
