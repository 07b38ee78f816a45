package rulefmt

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func dur(s string) model.Duration {
	d, err := model.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

func durp(s string) *model.Duration {
	d := dur(s)
	return &d
}

func TestParseGood(t *testing.T) {
	tests := []struct {
		file string
		want []RuleGroup
	}{
		{
			file: "minimal.good.yaml",
			want: []RuleGroup{{
				Name: "api",
				Rules: []Rule{{
					Forecast:  "job:http_requests:rate5m",
					Expr:      "sum by (job) (rate(http_requests_total[5m]))",
					Model:     "default",
					Step:      dur("1m"),
					Context:   dur("24h"),
					Quantiles: []float64{0.05, 0.5, 0.95},
				}},
			}},
		},
		{
			file: "full.good.yaml",
			want: []RuleGroup{
				{
					Name:        "api",
					Interval:    dur("30s"),
					QueryOffset: durp("15s"),
					Limit:       5000,
					Rules: []Rule{{
						Forecast:  "job:http_requests:rate5m",
						Expr:      "sum by (job) (rate(http_requests_total[5m]))",
						Model:     "hw",
						Step:      dur("5m"),
						Context:   dur("2d"),
						Horizons:  []model.Duration{dur("15m"), dur("1h")},
						Quantiles: []float64{0.01, 0.1, 0.5, 0.9, 0.99},
						Anomaly: &Anomaly{
							Band:         []float64{0.01, 0.99},
							Direction:    DirectionAbove,
							MinDeviation: 0.5,
						},
						Covariates: []Covariate{
							{Name: "planned_load", Expr: "sum by (job) (planned_requests)", KnownFuture: true},
							{Name: "temperature", Expr: "outside_temperature_celsius"},
						},
						Labels: map[string]string{"team": "platform", "severity": "page"},
					}},
				},
				{
					Name:        "forecast-only",
					QueryOffset: durp("0s"),
					Rules: []Rule{
						{
							Forecast:  "instance:node_memory_available:bytes",
							Expr:      "sum by (instance) (\n  node_memory_MemAvailable_bytes\n)\n",
							Model:     "default",
							Step:      dur("1m"),
							Context:   dur("1d"),
							Horizons:  []model.Duration{dur("1h")},
							Quantiles: []float64{0.05, 0.5, 0.95},
						},
						{
							// `anomaly:` with nothing under it turns scoring on.
							Forecast:  "scoring_with_defaults",
							Expr:      "up",
							Model:     "default",
							Step:      dur("1m"),
							Context:   dur("1d"),
							Quantiles: []float64{0.05, 0.5, 0.95},
							Anomaly:   &Anomaly{Band: []float64{0.05, 0.95}, Direction: DirectionBoth},
						},
					},
				},
			},
		},
		{
			file: "anchors.good.yaml",
			want: []RuleGroup{{
				Name: "node",
				Rules: []Rule{
					{
						Forecast:  "instance:cpu:rate5m",
						Expr:      "sum by (instance) (rate(node_cpu_seconds_total[5m]))",
						Model:     "default",
						Step:      dur("30s"),
						Context:   dur("1h"),
						Quantiles: []float64{0.05, 0.5, 0.95},
						Anomaly:   &Anomaly{Band: []float64{0.05, 0.95}, Direction: DirectionAbove},
					},
					{
						Forecast:  "instance:cpu_user:rate5m",
						Expr:      `sum by (instance) (rate(node_cpu_seconds_total{mode="user"}[5m]))`,
						Model:     "default",
						Step:      dur("30s"),
						Context:   dur("1h"),
						Quantiles: []float64{0.05, 0.5, 0.95},
						Anomaly:   &Anomaly{Band: []float64{0.05, 0.95}, Direction: DirectionAbove},
					},
				},
			}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			rgs, errs := ParseFile(path)
			if len(errs) > 0 {
				t.Fatalf("ParseFile: %v", errs)
			}
			if rgs.File() != path {
				t.Errorf("File() = %q, want %q", rgs.File(), path)
			}
			if !reflect.DeepEqual(rgs.Groups, tc.want) {
				t.Errorf("groups:\n got %+v\nwant %+v", rgs.Groups, tc.want)
			}
		})
	}
}

// TestParseGoodDefaultsNotShared makes sure that filling in defaults never
// hands out the package's default slices, which a caller could then modify.
func TestParseGoodDefaultsNotShared(t *testing.T) {
	rgs, errs := Parse([]byte("groups: [{name: a, rules: [{forecast: a, expr: up, anomaly: {}}]}]"), "x.yml")
	if errs != nil {
		t.Fatal(errs)
	}
	r := rgs.Groups[0].Rules[0]
	r.Quantiles[0] = 42
	r.Anomaly.Band[0] = 42
	if DefaultQuantiles[0] != 0.05 || DefaultBand[0] != 0.05 {
		t.Fatalf("defaults modified through a parsed rule: %v %v", DefaultQuantiles, DefaultBand)
	}
}

func TestParseBad(t *testing.T) {
	type want struct {
		pos string // line:col, or "" for an error about the whole file
		msg string // substring of the message after the position
	}
	tests := []struct {
		file string
		want []want
	}{
		{"syntax.bad.yaml", []want{{"3", "did not find expected '-' indicator"}}},
		{"unknown_keys.bad.yaml", []want{
			{"3:5", `group "api": unknown key "intervall"; did you mean "interval"?`},
			{"7:9", `group "api", rule "a": unknown key "horizon"; did you mean "horizons"?`},
			{"9:11", `group "api", rule "a": anomaly: unknown key "bands"; did you mean "band"?`},
			{"10:11", `rule "a": anomaly: unknown key "severity"`},
			{"11:9", `group "api", rule 2: unknown key "record"`},
			{"11:9", `group "api", rule 2: forecast is required`},
			{"13:1", `unknown key "alerting"`},
		}},
		{"types.bad.yaml", []want{
			{"3:15", `group "api": interval: not a valid duration string: "5"`},
			{"4:12", "limit: cannot unmarshal !!str `many` into int"},
			{"8:15", `rule "a": step: unknown unit " minute" in duration "1 minute"`},
			{"9:19", `rule "a": horizons: expected a list, got "15m"`},
			{"10:26", "quantiles[1]: cannot unmarshal !!str `high` into float64"},
			{"11:17", "labels: expected a mapping, got a list"},
			{"13:12", `group "b": rules: expected a list, got a mapping`},
		}},
		{"names.bad.yaml", []want{
			{"2:5", "group 1: group name is required"},
			{"3:9", "group 1, rule 1: forecast is required"},
			{"8:19", `group "api", rule "9to5": forecast "9to5" is not a valid metric name`},
			{"10:11", `group "api": group name "api" is already used at line 4`},
			{"12:19", `forecast "job:ok" is already defined in group "api" at line 6`},
		}},
		{"expr.bad.yaml", []want{
			// The column is that of the error inside the expression.
			{"5:30", `rule "a": could not parse expression: unclosed left parenthesis`},
			{"7:29", `rule "b": could not parse expression: unexpected end of input`},
			{"11:26", `rule "c": could not parse expression: unexpected <op:*>`},
			// Escapes hide the position in the file: the expression's own is given.
			{"14:15", `rule "d": could not parse expression: 1:10: parse error: unexpected ")"`},
			{"16:15", `rule "e": expr is required`},
			// Parses, but a range query cannot evaluate it.
			{"18:15", `rule "f": expr is a range vector; it must be an instant vector or a scalar`},
			{"20:15", `rule "g": expr is a string; it must be an instant vector or a scalar`},
		}},
		{"durations.bad.yaml", []want{
			{"3:12", `group "api": limit -1 must not be negative`},
			{"7:15", `rule "a": step 0s must be greater than 0`},
			{"8:20", `rule "a": horizon 0s must be greater than 0`},
			{"12:18", `rule "b": context 7m is not a multiple of step 5m`},
			{"13:20", `group "api", rule "b": horizon 7m is not a multiple of step 5m`},
			{"13:29", `rule "b": horizon 10m is listed twice`},
			{"17:18", `rule "c": context 5m must be at least 10 steps (50m)`},
			{"20:15", `rule "d": context 1d (the default) is not a multiple of step 7m`},
			// A step that does not decode is reported once; the checks
			// against it are skipped.
			{"23:15", `rule "e": step: not a valid duration string: "5"`},
			{"27:18", `group "conc": concurrency -2 must not be negative`},
			{"34:20", `rule "n": anomaly novelty window must be set and greater than 0, e.g. 7d`},
			{"34:28", `rule "n": anomaly novelty floor -1 must be finite and greater than 0`},
		}},
		{"quantiles.bad.yaml", []want{
			{"6:21", "quantile 0 is not between 0 and 1"},
			{"6:29", "quantile 1 is not between 0 and 1"},
			{"6:32", "quantile 0.5 is listed twice"},
			{"6:37", "quantile -0.1 is not between 0 and 1"},
			{"6:43", "quantile NaN is not between 0 and 1"},
			{"10:17", `rule "b": anomaly band needs exactly two levels, got 1`},
			{"14:17", `rule "c": anomaly band [0.6, 0.9] must satisfy 0 < lo < 0.5 < hi < 1`},
			{"15:22", `anomaly direction "up" is not one of both, above, below`},
			{"16:26", "anomaly min_deviation -1 must be finite and not negative"},
			{"20:17", `rule "d": anomaly band [0.05, 1] must satisfy`},
			{"21:26", "anomaly min_deviation +Inf must be finite"},
		}},
		{"labels.bad.yaml", []want{
			{"6:16", `rule "a": model must not be empty`},
			{"8:11", `label name "__name__" is reserved`},
			{"9:11", `label name "pipeline" is reserved`},
			{"10:11", `label name "horizon" is reserved`},
			{"11:11", `label name "quantile" is reserved`},
			{"12:11", `label name "__meta" is reserved`},
			{"13:11", `label name "team-name" is not valid`},
			{"21:19", `rule "b": covariate name "temperature" is already used by covariates[0]`},
			{"23:19", `covariate name "bad-name" is not valid`},
			{"24:19", `covariate "bad-name": expr is a range vector; it must be an instant vector or a scalar`},
			{"25:19", `covariate name "__meta" is not valid`},
			{"26:24", `could not parse expression`},
			{"27:13", `covariates[4]: name is required`},
			{"28:13", `covariate "noexpr": expr is required`},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			rgs, errs := ParseFile(path)
			if rgs != nil {
				t.Errorf("ParseFile returned groups along with errors")
			}
			for i, err := range errs {
				var e *Error
				if !errors.As(err, &e) {
					t.Errorf("error %d is %T, want *Error: %v", i, err, err)
				}
				if i >= len(tc.want) {
					t.Errorf("unexpected error: %v", err)
					continue
				}
				prefix := path + ": "
				if tc.want[i].pos != "" {
					prefix = path + ":" + tc.want[i].pos + ": "
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg[len(prefix):], tc.want[i].msg) {
					t.Errorf("error %d:\n got %s\nwant %s…%s…", i, msg, prefix, tc.want[i].msg)
				}
			}
			for _, w := range tc.want[min(len(errs), len(tc.want)):] {
				t.Errorf("missing error at %s: %s", w.pos, w.msg)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{
			Error{File: "examples/bad.yml", Line: 12, Col: 9, Group: "api", GroupIndex: 1, Rule: "job:x", RuleIndex: 3, Err: errors.New("horizon 7m is not a multiple of step 5m")},
			`examples/bad.yml:12:9: group "api", rule "job:x": horizon 7m is not a multiple of step 5m`,
		},
		{Error{File: "a.yml", Line: 2, Col: 5, GroupIndex: 2, Err: errors.New("x")}, `a.yml:2:5: group 2: x`},
		{Error{File: "a.yml", Line: 2, Col: 5, Group: "g", RuleIndex: 4, Err: errors.New("x")}, `a.yml:2:5: group "g", rule 4: x`},
		{Error{File: "a.yml", Line: 3, Err: errors.New("syntax")}, `a.yml:3: syntax`},
		{Error{File: "a.yml", Err: errors.New("no groups defined")}, `a.yml: no groups defined`},
		{Error{Line: 1, Col: 2, Err: errors.New("x")}, `1:2: x`},
	}
	for _, tc := range tests {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
	inner := errors.New("inner")
	if !errors.Is(&Error{Err: inner}, inner) {
		t.Error("Error does not unwrap")
	}
}

// TestExprPosition checks the mapping of PromQL error offsets to file
// positions for each scalar style.
func TestExprPosition(t *testing.T) {
	const head = "groups:\n  - name: g\n    rules:\n      - forecast: a\n"
	tests := []struct {
		name string
		expr string // the expr line(s) as written in the file
		want string // file:line:col of the error
	}{
		{"plain", "        expr: sum(up\n", "x.yml:5:21"},
		{"single quoted", "        expr: 'up{a=\"b\"} +'\n", "x.yml:5:27"},
		{"double quoted", "        expr: \"rate(up[5m]) * * 2\"\n", "x.yml:5:31"},
		{"non-ASCII before the error", "        expr: 'up{a=\"é\"} @'\n", "x.yml:5:27"},
		{"literal block", "        expr: |\n          sum(\n            up\n          ) by by\n", "x.yml:8:16"},
		{"folded block", "        expr: >\n          sum(up)\n          by (job) ]\n", "x.yml:7:20"},
		{"plain over two lines falls back to the scalar", "        expr: sum(up)\n          +\n", "x.yml:5:15"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Parse([]byte(head+tc.expr), "x.yml")
			if len(errs) != 1 {
				t.Fatalf("want 1 error, got %v", errs)
			}
			if got := errs[0].Error(); !strings.HasPrefix(got, tc.want+": ") || !strings.Contains(got, "could not parse expression") {
				t.Errorf("got %s, want position %s", got, tc.want)
			}
		})
	}
}

func TestErrorAtAndCheckUnique(t *testing.T) {
	a, errs := Parse([]byte(`groups:
  - name: g
    rules:
      - forecast: shared
        expr: up
      - forecast: only_a
        expr: up
        model: hw
`), "a.yml")
	if errs != nil {
		t.Fatal(errs)
	}
	b, errs := Parse([]byte(`groups:
  - name: h
    rules:
      - forecast: only_b
        expr: up
  - name: g
    rules:
      -   forecast: shared
          expr: up
`), "b.yml")
	if errs != nil {
		t.Fatal(errs)
	}

	if got, want := a.ErrorAt(0, 1, "model", errors.New("model \"hw\" is not defined")).Error(),
		`a.yml:8:16: group "g", rule "only_a": model "hw" is not defined`; got != want {
		t.Errorf("ErrorAt on a key:\n got %s\nwant %s", got, want)
	}
	// A defaulted key is absent from the file: the rule's position is used.
	if got, want := a.ErrorAt(0, 0, "model", errors.New("x")).Error(),
		`a.yml:4:9: group "g", rule "shared": x`; got != want {
		t.Errorf("ErrorAt on an absent key:\n got %s\nwant %s", got, want)
	}

	errs = CheckUnique(a, b)
	if len(errs) != 1 {
		t.Fatalf("CheckUnique: want 1 error, got %v", errs)
	}
	if got, want := errs[0].Error(), `b.yml:8:21: group "g", rule "shared": forecast "shared" is already defined at a.yml:4:19`; got != want {
		t.Errorf("CheckUnique:\n got %s\nwant %s", got, want)
	}
	if errs := CheckUnique(a, nil); errs != nil {
		t.Errorf("CheckUnique of one file: %v", errs)
	}
}

func TestIsReservedLabel(t *testing.T) {
	for name, want := range map[string]bool{
		"__name__": true, "pipeline": true, "horizon": true, "quantile": true, "__x": true,
		"job": false, "exported_pipeline": false, "_x": false,
	} {
		if got := IsReservedLabel(name); got != want {
			t.Errorf("IsReservedLabel(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestDefaults(t *testing.T) {
	// The values DESIGN §2 promises.
	if DefaultModel != "default" || time.Duration(DefaultStep) != time.Minute || time.Duration(DefaultContext) != 24*time.Hour {
		t.Errorf("defaults: model %q step %s context %s", DefaultModel, DefaultStep, DefaultContext)
	}
	if !reflect.DeepEqual(DefaultQuantiles, []float64{0.05, 0.5, 0.95}) || !reflect.DeepEqual(DefaultBand, []float64{0.05, 0.95}) {
		t.Errorf("defaults: quantiles %v band %v", DefaultQuantiles, DefaultBand)
	}
}
