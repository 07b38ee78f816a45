package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kingpin/v2"

	"github.com/openanomaly/openanomaly/internal/testenv"
)

// backtestCLI parses args as the backtest command's and runs it.
func backtestCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	app := kingpin.New("openanomaly", "")
	bc := backtestFlags(app.Command("backtest", ""))
	if _, err := app.Parse(append([]string{"backtest"}, args...)); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	var stdout, stderr bytes.Buffer
	code := runBacktest(context.Background(), *bc, &stdout, &stderr, "openanomaly backtest "+strings.Join(args, " "))
	return code, stdout.String(), stderr.String()
}

const backtestPipelines = `groups:
  - name: nab
    interval: 5m
    rules:
      - forecast: nab:value
        expr: value
        step: 5m
        context: 6h
        horizons: [1h]
        anomaly: {}
`

func TestBacktestCommandCSV(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "nab.yml")
	if err := os.WriteFile(rules, []byte(backtestPipelines), 0o644); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(testenv.DataDir(t), "nab", "realAWSCloudwatch", "ec2_cpu_utilization_24ae8d.csv")
	out := filepath.Join(dir, "out")
	code, stdout, stderr := backtestCLI(t, "--csv", csv, "--start", "2014-02-14T14:30:00Z", "--end", "1392480000",
		"--output.dir", out, "--parallelism", "1", "--progress", "log", rules)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// 14:30 to 16:00 the next day at 5 minutes: 307 rows.
	if !strings.Contains(stdout, "Replayed 1 of 1 units (0 resumed, 0 failed): 307 evaluations, 0 failed") {
		t.Errorf("stdout:\n%s", stdout)
	}
	if !strings.Contains(stderr, "backtest: 307/307 evaluations (100.0%)") {
		t.Errorf("no progress line in stderr:\n%s", stderr)
	}
	for _, f := range []string{"series.om", "report.json", "report.html", "scores/nab:value/ec2_cpu_utilization_24ae8d.csv"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	rep, _ := os.ReadFile(filepath.Join(out, "report.json"))
	if !strings.Contains(string(rep), `"command": "openanomaly backtest --csv`) {
		t.Error("report.json lacks the command line")
	}

	code, stdout, _ = backtestCLI(t, "--csv", csv, "--start", "2014-02-14T14:30:00Z", "--end", "1392480000",
		"--output.dir", out, "--resume", "--progress", "none", rules)
	if code != 0 || !strings.Contains(stdout, "Replayed 0 of 1 units (1 resumed, 0 failed)") {
		t.Errorf("resume: exit %d, stdout:\n%s", code, stdout)
	}
}

func TestBacktestCommandErrors(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "nab.yml")
	if err := os.WriteFile(rules, []byte(backtestPipelines), 0o644); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(dir, "a.csv")
	if err := os.WriteFile(csv, []byte("timestamp,value\n2014-01-01 00:00:00,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("groups:\n  - name: g\n    rules:\n      - forecast: x\n        expr: 'sum('\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{rules}, "give --config.file (to read from its datasource), --csv or --nab.data"},
		{[]string{"--csv", csv, "--start", "noon", rules}, `--start: timestamp "noon"`},
		{[]string{"--csv", csv, "--start", "2015-01-01T00:00:00Z", rules}, "is after the file's last row"},
		{[]string{"--csv", csv, bad}, "bad.yml:5:"},
		{[]string{"--csv", csv}, "no pipeline files given"},
		{[]string{"--csv", csv, "--output.remote-write-url", "nope", rules}, `remote-write url "nope" is not an absolute URL`},
	} {
		code, _, stderr := backtestCLI(t, append(tc.args, "--output.dir", filepath.Join(dir, "out"))...)
		if code != 1 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 1 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestBacktestCommandStore: with only --config.file the command reads the
// config's datasource and its rule_files. (A real store is replayed in
// pkg/backtest's tests; starting one here would install testenv's SIGTERM
// handler in this test binary, which TestRunWebConfig signals.) The
// datasource here refuses connections, so every evaluation fails, which the
// error reports with the datasource's address.
func TestBacktestCommandStore(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := "datasource:\n  url: http://" + addr + "\nglobal:\n  evaluation_interval: 1m\nrule_files: [pipelines.yml]\n"
	rules := "groups:\n  - name: g\n    rules:\n      - forecast: load:x\n        expr: load\n        step: 1m\n        context: 1h\n        anomaly: {}\n"
	for name, content := range map[string]string{"openanomaly.yml": cfg, "pipelines.yml": rules} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "out")
	end := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	code, stdout, stderr := backtestCLI(t, "--config.file", filepath.Join(dir, "openanomaly.yml"),
		"--start", end.Add(-4*time.Minute).Format(time.RFC3339), "--end", strconv.FormatInt(end.Unix(), 10), "--output.dir", out, "--progress", "none", "--parallelism", "1")
	if code != 1 || !strings.Contains(stderr, "pipeline load:x: every evaluation failed") || !strings.Contains(stderr, addr) {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	// 5 evaluations (minutes -4 to 0), every one attempted.
	if !strings.Contains(stdout, "Replayed 0 of 1 units (0 resumed, 1 failed): 5 evaluations, 5 failed") || !strings.Contains(stderr, "1 of 1 units failed") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}

	code, _, stderr = backtestCLI(t, "--config.file", filepath.Join(dir, "openanomaly.yml"), "--output.dir", out)
	if code != 1 || !strings.Contains(stderr, "needs --start and --end") {
		t.Errorf("no range: exit %d, stderr %q", code, stderr)
	}
}
