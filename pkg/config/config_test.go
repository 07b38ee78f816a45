package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

func dur(s string) model.Duration {
	d, err := model.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

func mustLoad(t *testing.T, path string) *Config {
	t.Helper()
	c, errs := LoadFile(path)
	if len(errs) > 0 {
		t.Fatalf("LoadFile(%s): %v", path, errs)
	}
	return c
}

func TestLoadMinimalDefaults(t *testing.T) {
	c := mustLoad(t, "testdata/minimal.good.yaml")
	want := Config{
		Global: GlobalConfig{
			EvaluationInterval: dur("1m"),
			MetricPrefix:       "openanomaly_",
		},
		Datasource: DatasourceConfig{
			URL:           c.Datasource.URL, // checked below
			ReadMethod:    ReadQueryRange,
			QueryTimeout:  dur("30s"),
			SplitInterval: dur("6h"),
			HTTPClientConfig: commoncfg.HTTPClientConfig{
				FollowRedirects: true,
				EnableHTTP2:     true,
			},
		},
		path: "testdata/minimal.good.yaml",
	}
	if !reflect.DeepEqual(*c, want) {
		t.Errorf("config:\n got %+v\nwant %+v", *c, want)
	}
	if c.Datasource.URL.String() != "http://localhost:9090" {
		t.Errorf("url = %s", c.Datasource.URL)
	}
	if c.File() != "testdata/minimal.good.yaml" {
		t.Errorf("File() = %q", c.File())
	}
}

func TestLoadFull(t *testing.T) {
	c := mustLoad(t, "testdata/full.good.yaml")

	g := c.Global
	if g.EvaluationInterval != dur("30s") || g.QueryOffset != dur("15s") || g.MetricPrefix != "oa_" {
		t.Errorf("global = %+v", g)
	}
	if got := c.ExternalLabels(); !labels.Equal(got, labels.FromStrings("cluster", "eu", "replica", "a")) {
		t.Errorf("ExternalLabels() = %v", got)
	}

	d := c.Datasource
	if d.URL.String() != "https://prometheus.example.com/prom" || d.ReadMethod != ReadRemoteRead ||
		d.RemoteReadURL.String() != "https://prometheus.example.com/prom/api/v1/read" || d.QueryTimeout != dur("10s") || d.SplitInterval != dur("2h") {
		t.Errorf("datasource = %+v", d)
	}
	hc := d.HTTPClientConfig
	if hc.BasicAuth == nil || hc.BasicAuth.Username != "oa" || string(hc.BasicAuth.Password) != "hunter2" {
		t.Errorf("basic_auth = %+v", hc.BasicAuth)
	}
	// follow_redirects: false wins over the default; enable_http2 keeps it.
	if hc.FollowRedirects || !hc.EnableHTTP2 || !hc.TLSConfig.InsecureSkipVerify {
		t.Errorf("http client = %+v", hc)
	}
	// Relative files are relative to the config file's directory.
	if want := filepath.Join("testdata", "certs", "ca.crt"); hc.TLSConfig.CAFile != want {
		t.Errorf("ca_file = %q, want %q", hc.TLSConfig.CAFile, want)
	}

	if len(c.RemoteWrite) != 2 {
		t.Fatalf("remote_write: %d entries", len(c.RemoteWrite))
	}
	rw := c.RemoteWrite[0]
	wantQueue := QueueConfig{
		Capacity: 5000, MaxShards: 2, MaxSamplesPerSend: 500,
		BatchSendDeadline: dur("1s"), MinBackoff: dur("100ms"), MaxBackoff: dur("10s"),
		RetryOnRateLimit: false, MaxRetryDuration: dur("30s"), FlushDeadline: dur("2m"),
	}
	if rw.Name != "local" || rw.RemoteTimeout != dur("5s") || rw.QueueConfig != wantQueue ||
		!reflect.DeepEqual(rw.Headers, map[string]string{"X-Scope-OrgID": "tenant-1"}) {
		t.Errorf("remote_write[0] = %+v", rw)
	}
	// Validate() turned credentials into a Bearer authorization.
	if a := rw.HTTPClientConfig.Authorization; a == nil || a.Type != "Bearer" || string(a.Credentials) != "s3cret" {
		t.Errorf("remote_write[0].authorization = %+v", a)
	}
	rw = c.RemoteWrite[1]
	if rw.Name != "12e20e" || rw.RemoteTimeout != DefaultRemoteTimeout || rw.QueueConfig != DefaultQueueConfig ||
		!rw.HTTPClientConfig.FollowRedirects {
		t.Errorf("remote_write[1] = %+v, want defaults and a name derived from the url", rw)
	}

	wantModels := []*ModelConfig{
		{Name: "hw", Builtin: &BuiltinConfig{Algorithm: AlgoHoltWinters, Season: 0, Alpha: 0.5, Beta: 0.1, Gamma: 1, RefitInterval: dur("30m")}},
		{Name: "naive", Builtin: &BuiltinConfig{Algorithm: AlgoSeasonalNaive, Season: dur("1w"), RefitInterval: DefaultRefitInterval}},
		{Name: "bolt", TorchScript: &TorchScriptConfig{Path: filepath.Join("testdata", "models", "bolt.pt"), Device: "cuda:1", BatchSize: 64, Threads: 4}},
		{Name: "on-defaults", TorchScript: &TorchScriptConfig{Path: "/abs/model.pt", Device: "auto"}},
	}
	if !reflect.DeepEqual(c.Models, wantModels) {
		for i := range max(len(c.Models), len(wantModels)) {
			if i >= len(c.Models) || i >= len(wantModels) || !reflect.DeepEqual(c.Models[i], wantModels[i]) {
				t.Errorf("models[%d] differ", i)
			}
		}
	}
	if !reflect.DeepEqual(c.RuleFiles, []string{"rules/*.yml", "/etc/openanomaly/extra.yml"}) {
		t.Errorf("rule_files = %v", c.RuleFiles)
	}
	for name, want := range map[string]bool{"default": true, "hw": true, "bolt": true, "nope": false, "": false} {
		if c.HasModel(name) != want {
			t.Errorf("HasModel(%q) = %v", name, !want)
		}
	}
}

func TestStringHidesSecretsAndReloads(t *testing.T) {
	c := mustLoad(t, "testdata/full.good.yaml")
	s := c.String()
	for _, secret := range []string{"hunter2", "s3cret"} {
		if strings.Contains(s, secret) {
			t.Errorf("String() shows secret %q:\n%s", secret, s)
		}
	}
	for _, want := range []string{"password: <secret>", "retry_on_http_429: false", "metric_prefix: oa_", "name: 12e20e"} {
		if !strings.Contains(s, want) {
			t.Errorf("String() lacks %q:\n%s", want, s)
		}
	}
	// What String prints loads again to the same values, secrets aside.
	again, errs := Load([]byte(s), "")
	if errs != nil {
		t.Fatalf("reloading String(): %v\n%s", errs, s)
	}
	if again.String() != s {
		t.Errorf("String() does not round-trip:\n%s\nvs\n%s", s, again.String())
	}
	if again.RemoteWrite[0].QueueConfig != c.RemoteWrite[0].QueueConfig {
		t.Errorf("queue_config after round trip = %+v", again.RemoteWrite[0].QueueConfig)
	}
}

func TestExplicitValuesWinOverDefaults(t *testing.T) {
	c, errs := Load([]byte(`
global:
  metric_prefix: ""
datasource:
  url: http://localhost:9090
  enable_http2: false
remote_write:
  - url: http://localhost:9090/api/v1/write
    queue_config:
      retry_on_http_429: false
      capacity: 4000
models:
  - name: m
    builtin:
`), "")
	if errs != nil {
		t.Fatal(errs)
	}
	if c.Global.MetricPrefix != "" || c.Datasource.HTTPClientConfig.EnableHTTP2 || !c.Datasource.HTTPClientConfig.FollowRedirects {
		t.Errorf("global = %+v, http client = %+v", c.Global, c.Datasource.HTTPClientConfig)
	}
	q := c.RemoteWrite[0].QueueConfig
	want := DefaultQueueConfig
	want.RetryOnRateLimit = false
	want.Capacity = 4000
	if q != want {
		t.Errorf("queue_config = %+v, want %+v", q, want)
	}
	// `builtin:` with nothing under it selects the builtin kind with its defaults.
	if b := c.Models[0].Builtin; b == nil || b.Algorithm != AlgoHoltWinters {
		t.Errorf("models[0].builtin = %+v", b)
	}
	// The package defaults are copied, never shared.
	c.RemoteWrite[0].QueueConfig.Capacity = 1
	c.Models[0].Builtin.Algorithm = "x"
	if DefaultRemoteWriteConfig.QueueConfig.Capacity != 100000 || DefaultBuiltinConfig.Algorithm != AlgoHoltWinters {
		t.Error("defaults modified through a loaded config")
	}
}

func TestLoadBad(t *testing.T) {
	type want struct {
		pos string // line:col, or line alone for syntax errors
		msg string // substring of the message after the position
	}
	tests := []struct {
		file string
		want []want
	}{
		{"syntax.bad.yaml", []want{{"2", "did not find expected key"}}},
		{"unknown_keys.bad.yaml", []want{
			{"2:3", `global: unknown key "evaluation_intervall"; did you mean "evaluation_interval"?`},
			// Inside prometheus/common's HTTP client settings too.
			{"7:5", `datasource.basic_auth: unknown key "passwd"; did you mean "password"?`},
			{"9:5", `datasource.tls_config: unknown key "insecure"`},
			{"10:3", `datasource: unknown key "follow_redirect"; did you mean "follow_redirects"?`},
			{"14:7", `remote_write[0].queue_config: unknown key "max_samples"`},
			{"18:7", `models[0].builtin: unknown key "algo"`},
			{"19:1", `unknown key "alerting"`},
		}},
		{"types.bad.yaml", []want{
			{"2:24", `global.evaluation_interval: unknown unit " minute"`},
			{"3:20", "global.external_labels: expected a mapping, got a list"},
			{"6:18", `datasource.query_timeout: not a valid duration string: "30"`},
			{"8:3", "remote_write: expected a list, got a mapping"},
			{"12:15", `models[0].builtin.season: not a valid duration string: "daily"`},
			{"13:14", "models[0].builtin.alpha: cannot unmarshal !!str `high` into float64"},
			{"14:13", `rule_files: expected a list, got "*.yml"`},
		}},
		{"global.bad.yaml", []want{
			{"2:24", "global.evaluation_interval: 0s must be greater than 0"},
			{"4:5", `global.external_labels: label name "pipeline" is reserved`},
			{"5:5", `global.external_labels: label name "__name__" is reserved`},
			{"6:5", `global.external_labels: "a-b" is not a valid label name`},
			{"7:12", "global.external_labels.empty: value must not be empty"},
			{"9:18", `global.metric_prefix: "0x_" does not make valid metric names`},
		}},
		{"datasource.bad.yaml", []want{
			{"2:3", "datasource.remote_read_url: must be set"},
			{"2:3", "datasource: at most one of bearer_token & bearer_token_file must be configured"},
			{"2:8", `datasource.url: scheme "ftp" is not http or https`},
			{"4:18", "datasource.query_timeout: 0s must be greater than 0"},
		}},
		{"datasource2.bad.yaml", []want{
			{"2:3", "datasource.url: must be set"},
			{"2:16", `datasource.read_method: "sql" is not one of query_range, remote_read`},
		}},
		{"remote_write.bad.yaml", []want{
			{"6:21", "remote_write[0].remote_timeout: 0s must be greater than 0"},
			{"8:7", "remote_write[0].headers: authorization header must be set with basic_auth, authorization or oauth2"},
			{"9:7", "remote_write[0].headers: content-type is a reserved header"},
			{"10:7", `remote_write[0].headers: "bad header" is not a valid header name`},
			{"11:13", "remote_write[0].headers.X-Ok: header value must not contain a line break"},
			{"13:11", `remote_write[1].name: "a" is already used by remote_write[0]`},
			{"14:10", `remote_write[2].url: scheme "" is not http or https`},
			{"15:5", "remote_write[3].url: must be set"},
			{"17:17", "remote_write[3].queue_config.capacity: 100 is less than max_samples_per_send (2000)"},
			{"18:19", "remote_write[3].queue_config.max_shards: 0 must be greater than 0"},
			{"19:28", "remote_write[3].queue_config.batch_send_deadline: 0s must be greater than 0"},
			{"21:20", "remote_write[3].queue_config.max_backoff: 500ms is less than min_backoff (1s)"},
			{"22:27", "remote_write[3].queue_config.max_retry_duration: 0s must be greater than 0 when retry_on_http_429 is true"},
			{"25:29", "remote_write[4].queue_config.max_samples_per_send: 0 must be greater than 0"},
			{"26:20", "remote_write[4].queue_config.min_backoff: 0s must be greater than 0"},
			{"27:23", "remote_write[4].queue_config.flush_deadline: 0s must be greater than 0"},
			{"28:5", "remote_write[5]: at most one of basic_auth, oauth2 & authorization must be configured"},
			{"31:10", "remote_write[6].url: same url as remote_write[5]; give each entry a distinct name"},
		}},
		{"models.bad.yaml", []want{
			{"4:11", `models[0].name: "default" is reserved for the built-in default model, which always exists`},
			{"6:5", "models[1].name: must be set"},
			{"6:26", `models[1].builtin.algorithm: "arima" is not one of holt_winters, seasonal_naive`},
			{"8:22", "models[2].builtin.alpha: 1.5 is not in [0, 1]"},
			{"8:33", "models[2].builtin.beta: -0.1 is not in [0, 1]"},
			{"8:46", "models[2].builtin.gamma: NaN is not in [0, 1]"},
			{"9:11", `models[3].name: "hw" is already used by models[2]`},
			{"10:49", "models[3].builtin.alpha: only applies to algorithm holt_winters"},
			{"11:5", "models[4]: exactly one of builtin or torchscript must be set"},
			{"14:5", "models[5]: exactly one of builtin or torchscript must be set"},
			{"16:18", "models[6].torchscript.path: must be set"},
			{"16:27", `models[6].torchscript.device: "gpu" is not one of cpu, cuda, cuda:N, auto`},
			{"16:44", "models[6].torchscript.batch_size: -1 must not be negative"},
			{"16:57", "models[6].torchscript.threads: -2 must not be negative"},
			{"18:17", "models[7].torchscript.path: must be set"},
		}},
		{"rule_files.bad.yaml", []want{
			{"5:5", `rule_files[1]: invalid pattern "rules/[a-": syntax error in pattern`},
			{"6:5", "rule_files[2]: empty pattern"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", tc.file)
			c, errs := LoadFile(path)
			if c != nil {
				t.Errorf("LoadFile returned a config along with errors")
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
				prefix := path + ":" + tc.want[i].pos + ": "
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

func TestLoadEmptyAndMissing(t *testing.T) {
	_, errs := Load(nil, "empty.yml")
	if len(errs) != 1 || errs[0].Error() != "empty.yml: datasource.url: must be set" {
		t.Errorf("empty file: %v", errs)
	}
	_, errs = LoadFile("testdata/does-not-exist.yml")
	if len(errs) != 1 || !errors.Is(errs[0], os.ErrNotExist) {
		t.Errorf("missing file: %v", errs)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRuleFilePaths(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"rules/b.yml":   "",
		"rules/a.yml":   "",
		"rules/a.yaml":  "",
		"other/c.yml":   "",
		"openanomaly.y": "",
	})
	abs := filepath.Join(dir, "other", "c.yml")
	c := &Config{
		RuleFiles: []string{"rules/*.yml", "rules/a.yml", "nothing/*.yml", abs},
		path:      filepath.Join(dir, "openanomaly.yml"),
	}
	got, err := c.RuleFilePaths()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{abs, filepath.Join(dir, "rules", "a.yml"), filepath.Join(dir, "rules", "b.yml")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("RuleFilePaths() = %v, want %v", got, want)
	}

	c.RuleFiles = []string{"rules/[a-"}
	if _, err := c.RuleFilePaths(); err == nil || !strings.Contains(err.Error(), "invalid pattern") {
		t.Errorf("malformed glob: err = %v", err)
	}
}

func TestLoadRuleFilesAndCheckModels(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"openanomaly.yml": `
datasource: {url: "http://localhost:9090"}
models: [{name: hw, builtin: {}}]
rule_files: [rules/*.yml]
`,
		"rules/a.yml": `groups:
  - name: a
    rules:
      - forecast: x
        expr: up
        model: hw
      - forecast: y
        expr: up
`,
		"rules/b.yml": `groups:
  - name: b
    rules:
      - forecast: z
        expr: up
        model: default
`,
	})
	cfgPath := filepath.Join(dir, "openanomaly.yml")
	c := mustLoad(t, cfgPath)
	files, errs := c.LoadRuleFiles()
	if errs != nil {
		t.Fatalf("LoadRuleFiles: %v", errs)
	}
	if len(files) != 2 || files[0].Groups[0].Name != "a" || files[1].Groups[0].Name != "b" {
		t.Fatalf("LoadRuleFiles = %+v", files)
	}

	// A model the config lacks, and a forecast name defined twice.
	writeFiles(t, dir, map[string]string{"rules/b.yml": `groups:
  - name: b
    rules:
      - forecast: z
        expr: up
        model: bolt
      - forecast: x
        expr: up
`})
	files, errs = c.LoadRuleFiles()
	if files != nil {
		t.Error("LoadRuleFiles returned files along with errors")
	}
	b := filepath.Join(dir, "rules", "b.yml")
	want := []string{
		b + `:6:16: group "b", rule "z": model "bolt" is not defined in the config's models`,
		b + `:7:19: group "b", rule "x": forecast "x" is already defined at ` + filepath.Join(dir, "rules", "a.yml") + ":4:19",
	}
	if len(errs) != len(want) {
		t.Fatalf("LoadRuleFiles errors = %v, want %d", errs, len(want))
	}
	for i := range want {
		if errs[i].Error() != want[i] {
			t.Errorf("error %d:\n got %s\nwant %s", i, errs[i], want[i])
		}
	}

	// CheckModels on its own, with rules that name no model.
	rg, perrs := rulefmt.Parse([]byte("groups: [{name: g, rules: [{forecast: f, expr: up}]}]"), "x.yml")
	if perrs != nil {
		t.Fatal(perrs)
	}
	if errs := CheckModels(&Config{}, rg); errs != nil {
		t.Errorf("the default model must always exist: %v", errs)
	}
}

func TestDefaultsMatchDesign(t *testing.T) {
	// DESIGN §4 and the reference config promise these.
	if time.Duration(DefaultEvaluationInterval) != time.Minute || DefaultMetricPrefix != "openanomaly_" ||
		time.Duration(DefaultQueryTimeout) != 30*time.Second || time.Duration(DefaultRemoteTimeout) != 30*time.Second {
		t.Errorf("defaults changed")
	}
	if DefaultDatasourceConfig.ReadMethod != ReadQueryRange || !DefaultDatasourceConfig.HTTPClientConfig.FollowRedirects {
		t.Errorf("datasource defaults = %+v", DefaultDatasourceConfig)
	}
}

// TestExampleLoads keeps the reference config in examples/ valid.
func TestExampleLoads(t *testing.T) {
	c := mustLoad(t, "../../examples/openanomaly.yml")
	if c.Datasource.URL.String() != "http://localhost:9090" || len(c.RemoteWrite) != 1 || len(c.Models) != 2 {
		t.Errorf("example config = %+v", c)
	}
	// The example shows every default; loading it must give the defaults.
	if c.Global.EvaluationInterval != DefaultEvaluationInterval || c.RemoteWrite[0].QueueConfig != DefaultQueueConfig ||
		c.Datasource.QueryTimeout != DefaultQueryTimeout || c.RemoteWrite[0].RemoteTimeout != DefaultRemoteTimeout {
		t.Errorf("example config differs from the defaults: %s", c)
	}
	files, errs := c.LoadRuleFiles()
	if errs != nil {
		t.Fatalf("example rule files: %v", errs)
	}
	if len(files) != 1 || len(files[0].Groups) != 2 {
		t.Errorf("example rule files = %+v", files)
	}
}

// TestHTTPClientKeysStrict covers the nested parts of prometheus/common's
// HTTP client settings, which decode themselves.
func TestHTTPClientKeysStrict(t *testing.T) {
	_, errs := Load([]byte(`datasource:
  url: http://localhost:9090
  http_headers:
    X-Foo: {values: [a], valuez: [b]}
  proxy_url: http://proxy:3128
  oauth2: {client_id: x, client_secret: y, token_url: "http://t", extra: 1}
`), "c.yml")
	want := []string{
		`c.yml:4:26: datasource.http_headers.X-Foo: unknown key "valuez"; did you mean "values"?`,
		`c.yml:6:67: datasource.oauth2: unknown key "extra"`,
	}
	if len(errs) != len(want) {
		t.Fatalf("errors = %v, want %q", errs, want)
	}
	for i := range want {
		if errs[i].Error() != want[i] {
			t.Errorf("got  %s\nwant %s", errs[i], want[i])
		}
	}
}
