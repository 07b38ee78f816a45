package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alecthomas/kingpin/v2"

	"github.com/openanomaly/openanomaly/internal/shareddata"
)

// runNABArgs parses args as the openanomaly command line would and runs
// `nab score`, returning the exit code, stdout and stderr.
func runNABArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	app := kingpin.New("openanomaly", "")
	cfg, name := defineNABScore(app)
	cmd, err := app.Parse(args)
	if err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	if cmd != name || name != "nab score" {
		t.Fatalf("parsed command %q, defined %q; want nab score", cmd, name)
	}
	var out, errOut bytes.Buffer
	code := nabScore(&out, &errOut, *cfg)
	return code, out.String(), errOut.String()
}

func TestNABCommandRegistered(t *testing.T) {
	app := kingpin.New("openanomaly", "")
	found := false
	for _, add := range commands {
		if name, _ := add(app); name == "nab score" {
			found = true
		}
	}
	if !found {
		t.Fatal("nab score is not in commands")
	}
}

// TestNABScoreRelativeEntropy prints NAB's published scores for the Relative
// Entropy detector: 54.6 / 47.6 / 58.8.
func TestNABScoreRelativeEntropy(t *testing.T) {
	data := shareddata.Path(t, "nab")
	results := shareddata.Path(t, "nab", "results", "relativeEntropy")
	jsonFile := filepath.Join(t.TempDir(), "nab.json")
	code, out, errOut := runNABArgs(t, "nab", "score", "--data", data, "--results", results, "--json", jsonFile)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	t.Logf("output:\n%s", out)
	if !strings.HasPrefix(out, "NAB scores of relativeEntropy: 58 files, 116 windows (full corpus), threshold optimised per profile over the corpus\n") {
		t.Errorf("heading of %q", out)
	}
	for _, want := range []string{
		`(?m)^\s*standard\s+54\.6\d\s+1\s`,
		`(?m)^\s*reward_low_FP_rate\s+47\.6\d\s+1\s`,
		`(?m)^\s*reward_low_FN_rate\s+58\.8\d\s+1\s`,
		`(?m)^\s*profile\s+score\s+threshold\s+raw\s+detected\s+FP\s+precision\s+recall\s+F1$`,
		`(?m)^\s*standard\s.*\s78/116\s+156\s`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}

	b, err := os.ReadFile(jsonFile)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Detector string `json:"detector"`
		Files    int    `json:"files"`
		Windows  int    `json:"windows"`
		Profiles []struct {
			Profile   string            `json:"profile"`
			Score     float64           `json:"score"`
			Threshold float64           `json:"threshold"`
			Files     []json.RawMessage `json:"files"`
		} `json:"profiles"`
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"standard": 54.6, "reward_low_FP_rate": 47.6, "reward_low_FN_rate": 58.8}
	if rep.Detector != "relativeEntropy" || rep.Files != 58 || rep.Windows != 116 || len(rep.Profiles) != 3 {
		t.Fatalf("JSON %+v", rep)
	}
	for _, p := range rep.Profiles {
		if math.Round(p.Score*10)/10 != want[p.Profile] || len(p.Files) != 58 {
			t.Errorf("JSON %s: score %v with %d files, want %v with 58", p.Profile, p.Score, len(p.Files), want[p.Profile])
		}
	}

	// One profile at a fixed threshold.
	code, out, errOut = runNABArgs(t, "nab", "score", "--data", data, "--results", results, "--profile", "reward_low_FN_rate", "--threshold", "0.5")
	if code != 0 || !strings.Contains(out, "fixed threshold") || !regexp.MustCompile(`(?m)^\s*reward_low_FN_rate\s+58\.84\s+0\.5\s`).MatchString(out) ||
		strings.Contains(out, "standard") {
		t.Errorf("fixed threshold: exit %d, output:\n%s\nstderr %s", code, out, errOut)
	}
}

func TestNABScoreErrors(t *testing.T) {
	data := shareddata.Path(t, "nab")
	results := shareddata.Path(t, "nab", "results", "relativeEntropy")

	// Two files of the Relative Entropy output, one of them broken on its
	// line 3.
	dir := t.TempDir()
	copyFile := func(cat, name string) string {
		b, err := os.ReadFile(filepath.Join(results, cat, "relativeEntropy_"+name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, cat, "relativeEntropy_"+name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	copyFile("realKnownCause", "nyc_taxi.csv")
	copyFile("artificialNoAnomaly", "art_flatline.csv")

	// A subset is an error without --subset, naming what is missing.
	code, _, errOut := runNABArgs(t, "nab", "score", "--data", data, "--results", dir)
	if code != 1 || !strings.Contains(errOut, "no scores for 56 of 58 files: artificialNoAnomaly/art_daily_no_noise.csv,") {
		t.Errorf("subset without --subset: exit %d, stderr %s", code, errOut)
	}
	code, out, errOut := runNABArgs(t, "nab", "score", "--data", data, "--results", dir, "--subset")
	if code != 0 || !strings.Contains(out, "2 files, 5 windows (subset, normalised over its windows)") {
		t.Errorf("--subset: exit %d, output %s, stderr %s", code, out, errOut)
	}

	bad := copyFile("realTraffic", "speed_7578.csv")
	b, _ := os.ReadFile(bad)
	lines := strings.Split(string(b), "\n")
	lines[2] = strings.Replace(lines[2], ",0.0,", ",oops,", 1)
	if err := os.WriteFile(bad, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--results", dir, "--subset"}, bad + `:3: anomaly_score "oops" is not a number`},
		{[]string{"--results", filepath.Join(dir, "nope")}, filepath.Join(dir, "nope")},
		{[]string{"--results", t.TempDir()}, "no results for any corpus file"},
		{[]string{"--results", results, "--profile", "strict"}, `unknown profile "strict"`},
		{[]string{"--results", results, "--threshold", "NaN"}, "--threshold NaN is not a finite number"},
	} {
		code, _, errOut := runNABArgs(t, append([]string{"nab", "score", "--data", data}, tc.args...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 1 and %q", tc.args, code, errOut, tc.want)
		}
	}
	code, _, errOut = runNABArgs(t, "nab", "score", "--data", t.TempDir(), "--results", results)
	if code != 1 || !strings.Contains(errOut, "loading the corpus") || !strings.Contains(errOut, "combined_windows.json") {
		t.Errorf("empty data folder: exit %d, stderr %q", code, errOut)
	}
}
