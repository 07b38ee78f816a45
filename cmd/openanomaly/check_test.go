package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckExamples(t *testing.T) {
	var out bytes.Buffer
	if code := checkConfig(&out, "../../examples/openanomaly.yml"); code != 0 {
		t.Fatalf("checkConfig = %d, output:\n%s", code, out.String())
	}
	want := "Checking ../../examples/openanomaly.yml\n" +
		"  SUCCESS: 1 rule file found\n" +
		"Checking ../../examples/pipelines.yml\n" +
		"  SUCCESS: 2 groups, 3 pipelines found\n"
	if out.String() != want {
		t.Errorf("checkConfig output:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	if code := checkRules(&out, "../../examples/pipelines.yml"); code != 0 {
		t.Fatalf("checkRules = %d, output:\n%s", code, out.String())
	}
	want = "Checking ../../examples/pipelines.yml\n  SUCCESS: 2 groups, 3 pipelines found\n"
	if out.String() != want {
		t.Errorf("checkRules output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const goodRules = `groups:
  - name: g
    rules:
      - forecast: a
        expr: up
`

func TestCheckRulesFailures(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yml", goodRules)
	bad := writeFile(t, dir, "bad.yml", `groups:
  - name: g
    rules:
      - forecast: b
        expr: up
        step: 5m
        horizons: [7m]
        colour: red
`)
	dup := writeFile(t, dir, "dup.yml", goodRules)
	missing := filepath.Join(dir, "missing.yml")

	var out bytes.Buffer
	code := checkRules(&out, good, bad, dup, missing)
	if code != 1 {
		t.Errorf("checkRules = %d, want 1", code)
	}
	want := "Checking " + good + "\n" +
		"  SUCCESS: 1 group, 1 pipeline found\n" +
		"Checking " + bad + "\n" +
		"  FAILED:\n" +
		bad + `:7:20: group "g", rule "b": horizon 7m is not a multiple of step 5m` + "\n" +
		bad + `:8:9: group "g", rule "b": unknown key "colour"` + "\n" +
		"Checking " + dup + "\n" +
		"  FAILED:\n" +
		dup + `:4:19: group "g", rule "a": forecast "a" is already defined at ` + good + ":4:19\n" +
		"Checking " + missing + "\n" +
		"  FAILED:\n"
	if got := out.String(); !strings.HasPrefix(got, want) || !strings.Contains(got[len(want):], "no such file or directory") {
		t.Errorf("output:\n%s\nwant:\n%s%s: open … no such file or directory", got, want, missing)
	}
}

func TestCheckConfigFailures(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "openanomaly.yml", `datasource:
  url: http://localhost:9090
models:
  - name: hw
    builtin: {}
rule_files: [rules/*.yml]
`)
	a := writeFile(t, dir, "rules/a.yml", `groups:
  - name: g
    rules:
      - forecast: a
        expr: up
        model: hw
      - forecast: b
        expr: up
        model: bolt
      - forecast: d
        expr: up
        model: hw
        covariates:
          - {name: planned, expr: planned_load, known_future: true}
`)
	b := writeFile(t, dir, "rules/b.yml", `groups:
  - name: h
    rules:
      - forecast: a
        expr: up
`)
	c := writeFile(t, dir, "rules/c.yml", `groups:
  - name: g
    rules:
      - forecast: c
        expr: sum(up
`)

	var out bytes.Buffer
	if code := checkConfig(&out, cfg); code != 1 {
		t.Errorf("checkConfig = %d, want 1", code)
	}
	want := "Checking " + cfg + "\n" +
		"  SUCCESS: 3 rule files found\n" +
		"Checking " + a + "\n" +
		"  FAILED:\n" +
		a + `:9:16: group "g", rule "b": model "bolt" is not defined in the config's models` + "\n" +
		a + `:14:11: group "g", rule "d": pipeline "d" has covariates, and its model "hw" (a built-in model) takes none: covariates need a torchscript model whose file takes them (Chronos-2 exported with libtorch/export.py --covariates)` + "\n" +
		"Checking " + b + "\n" +
		"  FAILED:\n" +
		b + `:4:19: group "h", rule "a": forecast "a" is already defined at ` + a + ":4:19\n" +
		"Checking " + c + "\n" +
		"  FAILED:\n" +
		c + `:5:21: group "g", rule "c": could not parse expression: unclosed left parenthesis` + "\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestCheckConfigBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "openanomaly.yml", `datasource:
  url: ftp://localhost:9090
  basic_auth: {usrname: x}
rule_files: [rules/*.yml]
`)
	// Not checked: the config itself is invalid.
	writeFile(t, dir, "rules/a.yml", "groups: []\n")

	var out bytes.Buffer
	if code := checkConfig(&out, cfg, filepath.Join(dir, "nope.yml")); code != 1 {
		t.Errorf("checkConfig = %d, want 1", code)
	}
	got := out.String()
	want := "Checking " + cfg + "\n" +
		"  FAILED:\n" +
		cfg + `:2:8: datasource.url: scheme "ftp" is not http or https` + "\n" +
		cfg + `:3:16: datasource.basic_auth: unknown key "usrname"; did you mean "username"?` + "\n" +
		"Checking " + filepath.Join(dir, "nope.yml") + "\n" +
		"  FAILED:\n"
	if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "no such file or directory\n") {
		t.Errorf("output:\n%s\nwant:\n%s…no such file or directory", got, want)
	}
}

// TestCheckConfigMissingFiles: files the HTTP clients would read are
// checked, as promtool checks them.
func TestCheckConfigMissingFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "ca.pem", "not checked here, only that it exists")
	cfg := writeFile(t, dir, "openanomaly.yml", `datasource:
  url: https://localhost:9090
  tls_config:
    ca_file: ca.pem
    cert_file: client.pem
    key_file: ca.pem
remote_write:
  - url: http://localhost:9090/api/v1/write
    name: prom
    basic_auth:
      username: oa
      password_file: secrets/pw
`)
	var out bytes.Buffer
	if code := checkConfig(&out, cfg); code != 1 {
		t.Errorf("checkConfig = %d, want 1", code)
	}
	for _, want := range []string{
		"datasource: tls_config.cert_file: stat " + filepath.Join(dir, "client.pem") + ": no such file or directory",
		"remote_write[0] (prom): basic_auth.password_file: stat " + filepath.Join(dir, "secrets", "pw") + ": no such file or directory",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "ca_file") {
		t.Errorf("the CA file exists but is reported:\n%s", out.String())
	}
}

// TestCheckRulesSameFileTwice: overlapping globs name a file twice; it is
// checked once, not reported as a duplicate of itself.
func TestCheckRulesSameFileTwice(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yml", goodRules)
	var out bytes.Buffer
	if code := checkRules(&out, good, filepath.Join(dir, ".", "good.yml")); code != 0 {
		t.Errorf("checkRules = %d, want 0:\n%s", code, out.String())
	}
	if n := strings.Count(out.String(), "Checking "); n != 1 {
		t.Errorf("checked %d times:\n%s", n, out.String())
	}
}
