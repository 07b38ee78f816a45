package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTestRulesShipped runs the unit tests of the shipped pipeline packs and
// of the examples, as `make test-rules` does, and checks the packs.
func TestTestRulesShipped(t *testing.T) {
	var out bytes.Buffer
	packs, err := filepath.Glob("../../rules/*.yml")
	if err != nil || len(packs) < 2 {
		t.Fatalf("rules/*.yml: %v %v", packs, err)
	}
	if code := checkRules(&out, packs...); code != 0 {
		t.Fatalf("checkRules = %d:\n%s", code, out.String())
	}

	tests, err := filepath.Glob("../../rules/tests/*.yml")
	if err != nil || len(tests) < 2 {
		t.Fatalf("rules/tests/*.yml: %v %v", tests, err)
	}
	tests = append(tests, "../../examples/tests/pipelines.test.yml")
	out.Reset()
	if code := testRules(context.Background(), &out, nil, tests...); code != 0 {
		t.Fatalf("testRules = %d:\n%s", code, out.String())
	}
	for _, f := range tests {
		if want := "Unit Testing: " + f + "\n  SUCCESS\n"; !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

const seasonalConfig = `datasource:
  url: http://localhost:9090
global:
  metric_prefix: oa_
  evaluation_interval: 5m
models:
  - name: naive
    builtin:
      algorithm: seasonal_naive
      season: 10m
rule_files: [pipelines.yml]
`

const seasonalRules = `groups:
  - name: g
    interval: 1m
    rules:
      - forecast: sawtooth
        expr: sawtooth
        model: naive
        context: 1h
`

// TestTestRulesConfigFile checks that a test file's config_file brings its
// models (built by buildModels, as the sidecar builds them) and its
// metric_prefix: seasonal_naive with a 10m season forecasts a sawtooth of
// period 10m exactly, which the built-in default would not.
func TestTestRulesConfigFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "openanomaly.yml", seasonalConfig)
	writeFile(t, dir, "pipelines.yml", seasonalRules)
	test := writeFile(t, dir, "tests/sawtooth.test.yml", `rule_files: [../pipelines.yml]
config_file: ../openanomaly.yml
tests:
  - input_series:
      - series: sawtooth
        values: '0+1x9 0+1x9 0+1x9 0+1x9 0+1x9'
    output_test:
      - eval_time: 35m
        pipeline: sawtooth
        tolerance: 0
        relative_tolerance: 0
        exp_samples:
          - labels: 'oa_y'
            value: 5
          # One season earlier, at 25m, the value was 5 too.
          - labels: 'oa_yhat'
            value: 5
`)
	var out bytes.Buffer
	if code := testRules(context.Background(), &out, nil, test); code != 0 {
		t.Fatalf("testRules = %d:\n%s", code, out.String())
	}

	// Without config_file the model is unknown.
	noConfig := writeFile(t, dir, "tests/noconfig.test.yml", `rule_files: [../pipelines.yml]
tests:
  - input_series:
      - series: sawtooth
        values: '0+1x9'
    output_test:
      - eval_time: 5m
        pipeline: sawtooth
        exp_samples: []
`)
	out.Reset()
	if code := testRules(context.Background(), &out, nil, noConfig); code != 1 {
		t.Errorf("testRules without config_file = %d, want 1:\n%s", code, out.String())
	}
	if want := `pipelines.yml:7:16: group "g", rule "sawtooth": model "naive" is not the built-in default`; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

// TestTestRulesModelErrors checks that a model the binary cannot build
// fails the test file at its config_file key.
func TestTestRulesModelErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "openanomaly.yml", `datasource:
  url: http://localhost:9090
models:
  - name: chronos
    torchscript:
      path: chronos.pt
`)
	writeFile(t, dir, "pipelines.yml", goodRules)
	test := writeFile(t, dir, "t.test.yml", `rule_files: [pipelines.yml]
config_file: openanomaly.yml
tests:
  - input_series:
      - series: up
        values: '1'
    output_test:
      - eval_time: 0s
        pipeline: a
        exp_samples: []
`)
	var out bytes.Buffer
	if code := testRules(context.Background(), &out, nil, test); code != 1 {
		t.Errorf("testRules = %d, want 1:\n%s", code, out.String())
	}
	want := test + `:2:14: config_file: models: model "chronos": ` + wantTorchScriptErr
	if !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

func TestTestRulesFailure(t *testing.T) {
	f := "../../pkg/unittest/testdata/fail.test.yml"
	var out bytes.Buffer
	if code := testRules(context.Background(), &out, nil, f); code != 1 {
		t.Errorf("testRules = %d, want 1", code)
	}
	if !strings.HasPrefix(out.String(), "Unit Testing: "+f+"\n  FAILED:\n    test \"wrong expectations\"") {
		t.Errorf("output:\n%s", out.String())
	}
	// --run selects tests by name; one that matches none fails, so that a
	// typo in CI does not pass having tested nothing.
	out.Reset()
	if code := testRules(context.Background(), &out, regexp.MustCompile("^no such test$"), f); code != 1 {
		t.Errorf("testRules --run matching nothing = %d, want 1:\n%s", code, out.String())
	}
}
