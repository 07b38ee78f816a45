package unittest

import (
	"bytes"
	"context"
	"math"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"go.uber.org/goleak"

	"github.com/openanomaly/openanomaly/pkg/datasource"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testdata(name string) string { return filepath.Join("testdata", name) }

func TestRunFilePasses(t *testing.T) {
	for _, f := range []string{"good.test.yml", "stale.test.yml", "spike.test.yml"} {
		t.Run(f, func(t *testing.T) {
			if errs := RunFile(context.Background(), testdata(f), Options{}); len(errs) > 0 {
				t.Fatalf("RunFile(%s) failed:\n%v", f, joinErrs(errs))
			}
		})
	}
}

func TestRunFileFailures(t *testing.T) {
	// Each failure with the lines its message must contain, in order.
	// Values that depend on the model's arithmetic (a yhat of 9.9999…,
	// scores) are matched loosely; everything else exactly.
	want := [][]string{
		{
			`    test "wrong expectations": pipeline job:http_requests:rate5m at 2h: output samples differ:`,
			`        openanomaly_y{job="api", pipeline="job:http_requests:rate5m"}: got 10, want 11 ± 0.01 (off by 1)`,
			`        openanomaly_yhat{job="db", pipeline="job:http_requests:rate5m"}: missing, want 10`,
			`        openanomaly_yhat{job="api", pipeline="job:http_requests:rate5m"}: unexpected, got 9.99999`,
		},
		{
			`    test "wrong expectations": pipeline job:http_requests:rate5m at 2h: anomalies (score > 1) differ:`,
			`        exp: {job="api", pipeline="job:http_requests:rate5m"}`,
			`        got: none`,
			`        scores:`,
			`          {job="api", pipeline="job:http_requests:rate5m"} `,
			`          {job="web", pipeline="job:http_requests:rate5m"} `,
		},
		{
			`    test "wrong expectations": pipeline job:http_requests:rate5m at 2h5m: anomalies (score > 1) differ:`,
			`        exp: none`,
			`        got: {job="api", pipeline="job:http_requests:rate5m"}`,
			`        scores:`,
			// 100 req/s above the median, with the band's half-width
			// at its floor of min_deviation (1 req/s): a score of 100.
			`          {job="api", pipeline="job:http_requests:rate5m"} 99.9`,
			`          {job="web", pipeline="job:http_requests:rate5m"} 0`,
		},
		{
			`    test "nothing emitted yet": pipeline instance:up at 5m: output samples differ:`,
			`        openanomaly_y{instance="a", pipeline="instance:up"}: missing, want 1`,
			`        the evaluation skipped 1 input series: 1 insufficient_data`,
		},
	}
	errs := RunFile(context.Background(), testdata("fail.test.yml"), Options{})
	if len(errs) != len(want) {
		t.Fatalf("got %d failures, want %d:\n%s", len(errs), len(want), joinErrs(errs))
	}
	for i, err := range errs {
		lines := strings.Split(err.Error(), "\n")
		if len(lines) != len(want[i]) {
			t.Errorf("failure %d has %d lines, want %d:\n%s", i, len(lines), len(want[i]), err)
			continue
		}
		for j, w := range want[i] {
			if !strings.HasPrefix(lines[j], w) {
				t.Errorf("failure %d line %d:\n got: %s\nwant: %s…", i, j, lines[j], w)
			}
		}
	}
}

func TestRunFileBadInput(t *testing.T) {
	tests := []struct {
		file string
		want []string // exact messages, after the file name
	}{
		{"bad_series.test.yml", []string{
			`:4:33: tests[0].input_series[0].series: parse error at character 16: unexpected end of input inside braces`,
			`:7:25: tests[0].input_series[1].values: parse error at character 8: unexpected identifier "foo" in series values, expected number or "stale"`,
			`:9:20: tests[0].input_series[2].values: parse error at character 3: unexpected end of input in series values`,
			`:10:17: tests[0].input_series[3].series: series up{instance="b"} is already defined in input_series[1]`,
			`:13:17: tests[0].input_series[4].values: values is empty`,
		}},
		{"unknown_key.test.yml", []string{
			`:2:1: unknown key "evaluation_intervl"; did you mean "evaluation_interval"?`,
			`:8:9: tests[0].input_series[0]: unknown key "interval"`,
			`:12:9: tests[0].output_test[0]: unknown key "exp_sample"; did you mean "exp_samples"?`,
		}},
		{"unknown_pipeline.test.yml", []string{
			`:8:19: tests[0].output_test[0].pipeline: unknown pipeline "instance:down"; the rule files define instance:up, job:http_requests:rate5m, load:every1m, load:every5m, queue:length`,
			`:12:19: tests[0].anomaly_test[0].pipeline: pipeline "instance:up" has no anomaly section: it emits no anomaly score`,
		}},
		{"broken_rules.test.yml", []string{
			// Only the rule file's own error: the check naming its pipeline
			// adds no "unknown pipeline".
			`testdata/broken_rules.yml:5:30: group "g", rule "room:temperature:avg": could not parse expression: unclosed left parenthesis`,
		}},
		{"bad_checks.test.yml", []string{
			`:1:29: rule_files[1]: "missing/*.yml" matches no file`,
			`:9:20: tests[0].output_test[0].tolerance: tolerance -0.1 must be a finite number >= 0`,
			`:11:21: tests[0].output_test[0].exp_samples[0].labels: pipeline "instance:up" emits no openanomaly_yhat_lower: it has no anomaly section`,
			`:13:21: tests[0].output_test[0].exp_samples[1].labels: pipelines emit no series named "openanomaly_yhat_low"; want one of openanomaly_anomaly_score, openanomaly_forecast, openanomaly_y, openanomaly_yhat, openanomaly_yhat_lower, openanomaly_yhat_upper`,
			`:15:21: tests[0].output_test[0].exp_samples[2].labels: labels "{instance=\"a\"}" have no metric name; want one of openanomaly_anomaly_score, openanomaly_forecast, openanomaly_y, openanomaly_yhat, openanomaly_yhat_lower, openanomaly_yhat_upper`,
			`:17:21: tests[0].output_test[0].exp_samples[3].labels: label pipeline="other" differs from the test's pipeline "instance:up"`,
			`:21:21: tests[0].output_test[0].exp_samples[5].labels: sample openanomaly_y{instance="a", pipeline="instance:up"} is already expected in exp_samples[4]`,
			`:26:20: tests[0].anomaly_test[0].threshold: threshold -1 must be a finite number >= 0`,
			`:28:21: tests[0].anomaly_test[0].exp_anomalies[0].labels: labels "openanomaly_anomaly_score{instance=\"a\"}" have a metric name; an anomaly is named by the labels of its series alone, like '{job="api"}'`,
			`:29:9: tests[0].anomaly_test[1].pipeline: pipeline is required`,
			`:31:5: tests[1]: the test checks nothing: add output_test or anomaly_test`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := testdata(tt.file)
			errs := RunFile(context.Background(), path, Options{})
			var got []string
			for _, err := range errs {
				got = append(got, strings.TrimPrefix(err.Error(), path))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestRunFileModelNeedsConfig(t *testing.T) {
	errs := RunFile(context.Background(), testdata("model.test.yml"), Options{})
	want := testdata("models.yml") + `:6:16: group "g", rule "uses_hw": model "hw" is not the built-in default; name the config file that defines it with config_file in the test file`
	if len(errs) != 1 || errs[0].Error() != want {
		t.Errorf("errors: %v\nwant: %s", errs, want)
	}
}

func TestRunFilesOutput(t *testing.T) {
	var out bytes.Buffer
	good, bad := testdata("good.test.yml"), testdata("unknown_pipeline.test.yml")
	if RunFiles(context.Background(), &out, Options{}, good) != true {
		t.Errorf("RunFiles(good) = false, output:\n%s", out.String())
	}
	if want := "Unit Testing: " + good + "\n  SUCCESS\n\n"; out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if RunFiles(context.Background(), &out, Options{}, good, bad) != false {
		t.Errorf("RunFiles(good, bad) = true, output:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "Unit Testing: "+bad+"\n  FAILED:\n"+bad+":8:19: ") {
		t.Errorf("output lacks the failure of %s:\n%s", bad, out.String())
	}
}

func TestRunSelectsTests(t *testing.T) {
	// Only the second test of fail.test.yml runs.
	errs := RunFile(context.Background(), testdata("fail.test.yml"), Options{Run: regexp.MustCompile("^nothing")})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `test "nothing emitted yet"`) {
		t.Errorf("errors: %v", errs)
	}
	// Tests left out are still checked for mistakes.
	errs = RunFile(context.Background(), testdata("bad_series.test.yml"), Options{Run: regexp.MustCompile("^no such test$")})
	if len(errs) != 5 {
		t.Errorf("got %d errors, want the 5 of bad_series.test.yml: %v", len(errs), errs)
	}
	// A --run that matches no test fails, rather than pass having tested
	// nothing.
	var out strings.Builder
	if RunFiles(context.Background(), &out, Options{Run: regexp.MustCompile("^no such test$")}, testdata("good.test.yml")) {
		t.Errorf("a --run matching no test passed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), `FAILED: no test matched --run "^no such test$"`) {
		t.Errorf("output:\n%s", out.String())
	}
}

// TestQuerierStaleMarkers checks the querier against the engine's own
// semantics on stored samples: the 5m lookback fills a gap, a stale marker
// ends the series at once, and a range query returns step-aligned points.
func TestQuerierStaleMarkers(t *testing.T) {
	start := time.Unix(0, 0).UTC()
	min := func(m int) int64 { return start.Add(time.Duration(m) * time.Minute).UnixMilli() }
	stale := math.Float64frombits(value.StaleNaN)
	series := []inputSeries{
		{lset: labels.FromStrings("__name__", "up", "instance", "gap"),
			samples: []inputSample{{t: min(0), f: 1}, {t: min(1), f: 2}}},
		{lset: labels.FromStrings("__name__", "up", "instance", "stale"),
			samples: []inputSample{{t: min(0), f: 1}, {t: min(1), f: 2}, {t: min(2), f: stale}}},
		// Appended only once the store reaches 20m.
		{lset: labels.FromStrings("__name__", "up", "instance", "late"),
			samples: []inputSample{{t: min(20), f: 5}}},
	}
	st, err := openStore(series)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	engine := NewEngine(time.Minute)
	defer engine.Close()
	q := &Querier{Engine: engine, Queryable: st.db}
	ctx := context.Background()
	if err := st.appendUntil(ctx, min(10)); err != nil {
		t.Fatal(err)
	}
	res, err := q.QueryRange(ctx, "up", start, start.Add(10*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]datasource.Sample{
		// The lookback repeats the sample at 1m up to 5m (exclusive).
		"gap": {{T: min(0), V: 1}, {T: min(1), V: 2}, {T: min(2), V: 2}, {T: min(3), V: 2}, {T: min(4), V: 2}, {T: min(5), V: 2}},
		// The stale marker ends the series at 2m.
		"stale": {{T: min(0), V: 1}, {T: min(1), V: 2}},
	}
	if len(res.Series) != len(want) {
		t.Fatalf("got %d series, want %d: %v", len(res.Series), len(want), res.Series)
	}
	for i, name := range []string{"gap", "stale"} { // sorted by labels
		s := res.Series[i]
		if got := s.Labels.Get("instance"); got != name {
			t.Errorf("series %d is %s, want instance %q", i, s.Labels, name)
			continue
		}
		if !samplesEqual(s.Samples, want[name]) {
			t.Errorf("%s: samples %v, want %v", s.Labels, s.Samples, want[name])
		}
	}

	if err := st.appendUntil(ctx, min(20)); err != nil {
		t.Fatal(err)
	}
	res, err = q.QueryRange(ctx, `sum(up)`, start.Add(20*time.Minute), start.Add(20*time.Minute), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Series) != 1 || !samplesEqual(res.Series[0].Samples, []datasource.Sample{{T: min(20), V: 5}}) {
		t.Errorf("sum(up) at 20m = %v, want 5 from the late series alone", res.Series)
	}

	if _, err := q.QueryRange(ctx, "up{", start, start, time.Minute); err == nil {
		t.Error("a bad query gave no error")
	}
}

func samplesEqual(a, b []datasource.Sample) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].T != b[i].T || math.Float64bits(a[i].V) != math.Float64bits(b[i].V) {
			return false
		}
	}
	return true
}

func joinErrs(errs []error) string {
	s := make([]string, len(errs))
	for i, e := range errs {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}
