package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	commoncfg "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"go.yaml.in/yaml/v3"

	"github.com/openanomaly/openanomaly/pkg/config/strictyaml"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// More defaults; the values a file's omitted keys take. Keys a file sets,
// even to a zero value, win over these.
var (
	// DefaultGlobalConfig is the global section's default.
	DefaultGlobalConfig = GlobalConfig{
		EvaluationInterval: DefaultEvaluationInterval,
		MetricPrefix:       DefaultMetricPrefix,
	}
	// DefaultDatasourceConfig is the datasource section's default; it has
	// no URL, which every config must set.
	DefaultDatasourceConfig = DatasourceConfig{
		ReadMethod:       ReadQueryRange,
		QueryTimeout:     DefaultQueryTimeout,
		SplitInterval:    DefaultSplitInterval,
		HTTPClientConfig: commoncfg.DefaultHTTPClientConfig,
	}
	// DefaultRemoteWriteConfig is where every remote_write entry starts.
	DefaultRemoteWriteConfig = RemoteWriteConfig{
		RemoteTimeout:    DefaultRemoteTimeout,
		QueueConfig:      DefaultQueueConfig,
		HTTPClientConfig: commoncfg.DefaultHTTPClientConfig,
	}
	// DefaultBuiltinConfig is where every builtin model section starts.
	DefaultBuiltinConfig = BuiltinConfig{Algorithm: AlgoHoltWinters, RefitInterval: DefaultRefitInterval}
	// DefaultTorchScriptConfig is where every torchscript model section
	// starts: "auto" lets the runtime pick the device.
	DefaultTorchScriptConfig = TorchScriptConfig{Device: "auto"}
	// DefaultConfig is what an empty file gives (it fails validation: the
	// datasource URL is required).
	DefaultConfig = Config{
		Global:     DefaultGlobalConfig,
		Datasource: DefaultDatasourceConfig,
	}
)

// Error is one problem in a config file, with its position.
type Error struct {
	File      string
	Line, Col int // 1-based; 0 when unknown
	Err       error
}

// Error reads like `openanomaly.yml:7:8: datasource.url: scheme "ftp" is not http or https`.
func (e *Error) Error() string {
	return strictyaml.Position(e.File, e.Line, e.Col) + e.Err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// LoadFile reads and loads one config file; see Load.
func LoadFile(path string) (*Config, []error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{&Error{File: path, Err: err}}
	}
	return Load(content, path)
}

// Load parses and validates a config file strictly: unknown keys are errors
// (inside the HTTP client settings too), and every problem is reported, each
// as an *Error with file, line and column, sorted by position. Omitted keys
// take the Default values. Relative file paths (TLS files, password files,
// TorchScript models, rule_files) are relative to filename's directory.
// On failure the config is nil.
func Load(content []byte, filename string) (*Config, []error) {
	root, err := strictyaml.Parse(content)
	if err != nil {
		var se *strictyaml.Error
		if errors.As(err, &se) {
			return nil, []error{&Error{File: filename, Line: se.Line, Col: se.Col, Err: se.Err}}
		}
		return nil, []error{&Error{File: filename, Err: err}}
	}
	acceptSeasonAuto(root)

	cfg := &Config{}
	l := &loader{file: filename, root: root, failed: map[*yaml.Node]bool{}}
	for _, de := range strictyaml.Decode(root, cfg,
		DefaultConfig, DefaultRemoteWriteConfig, DefaultBuiltinConfig, DefaultTorchScriptConfig) {
		l.failed[de.Node] = true
		l.errs = append(l.errs, &Error{File: filename, Line: de.Line, Col: de.Col, Err: pathError(de.Path, de.Err)})
	}
	l.validate(cfg)
	if len(l.errs) > 0 {
		slices.SortStableFunc(l.errs, func(a, b *Error) int {
			if a.Line != b.Line {
				return a.Line - b.Line
			}
			return a.Col - b.Col
		})
		errs := make([]error, len(l.errs))
		for i, e := range l.errs {
			errs[i] = e
		}
		return nil, errs
	}

	cfg.path = filename
	if filename != "" {
		dir := filepath.Dir(filename)
		cfg.Datasource.HTTPClientConfig.SetDirectory(dir)
		for _, rw := range cfg.RemoteWrite {
			rw.HTTPClientConfig.SetDirectory(dir)
		}
		for _, m := range cfg.Models {
			if m.TorchScript != nil {
				m.TorchScript.Path = commoncfg.JoinDir(dir, m.TorchScript.Path)
			}
		}
	}
	return cfg, nil
}

// acceptSeasonAuto rewrites `season: auto` to 0s, which is what auto means
// (detect the season from the data), so that Season stays a model.Duration.
func acceptSeasonAuto(root *yaml.Node) {
	models, ok := strictyaml.Find(root, "models")
	if !ok || models.Kind != yaml.SequenceNode {
		return
	}
	for i := range models.Content {
		if n, ok := strictyaml.Find(models, i, "builtin", "season"); ok && n.Kind == yaml.ScalarNode && n.Value == "auto" {
			n.Value, n.Tag = "0s", "!!str"
		}
	}
}

func pathError(path strictyaml.Path, err error) error {
	if s := path.String(); s != "" {
		return fmt.Errorf("%s: %w", s, err)
	}
	return err
}

// loader collects the errors of one config file.
type loader struct {
	file   string
	root   *yaml.Node
	errs   []*Error
	failed map[*yaml.Node]bool // nodes that did not decode
}

// errorf reports an error about the value at path, prefixed by the path;
// where the path does not exist, at the nearest node that does.
func (l *loader) errorf(path []any, format string, args ...any) {
	n, _ := strictyaml.Find(l.root, path...)
	e := &Error{File: l.file, Err: pathError(path, fmt.Errorf(format, args...))}
	if n != nil {
		if l.failed[n] {
			return
		}
		e.Line, e.Col = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

// keyErrorf is errorf positioned at the key of path rather than its value.
func (l *loader) keyErrorf(path []any, format string, args ...any) {
	n, _ := strictyaml.FindKey(l.root, path...)
	e := &Error{File: l.file, Err: pathError(path[:len(path)-1], fmt.Errorf(format, args...))}
	if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	l.errs = append(l.errs, e)
}

func (l *loader) validate(c *Config) {
	l.validateGlobal(&c.Global)
	l.validateDatasource(&c.Datasource)
	l.validateRemoteWrite(c.RemoteWrite)
	l.validateModels(c.Models)
	for i, pattern := range c.RuleFiles {
		if pattern == "" {
			l.errorf([]any{"rule_files", i}, "empty pattern")
		} else if _, err := filepath.Match(pattern, ""); err != nil {
			l.errorf([]any{"rule_files", i}, "invalid pattern %q: %v", pattern, err)
		}
	}
}

func (l *loader) validateGlobal(g *GlobalConfig) {
	if g.EvaluationInterval <= 0 {
		l.errorf([]any{"global", "evaluation_interval"}, "%s must be greater than 0", g.EvaluationInterval)
	}
	if g.QueryOffset < 0 {
		l.errorf([]any{"global", "query_offset"}, "%s must not be negative", g.QueryOffset)
	}
	for _, name := range sortedKeys(g.ExternalLabels) {
		value := g.ExternalLabels[name]
		switch {
		case !model.LabelName(name).IsValidLegacy():
			l.keyErrorf([]any{"global", "external_labels", name}, "%q is not a valid label name", name)
		case rulefmt.IsReservedLabel(name):
			l.keyErrorf([]any{"global", "external_labels", name}, "label name %q is reserved", name)
		case value == "":
			l.errorf([]any{"global", "external_labels", name}, "value must not be empty")
		case !utf8.ValidString(value):
			l.errorf([]any{"global", "external_labels", name}, "value is not valid UTF-8")
		}
	}
	if !model.IsValidLegacyMetricName(g.MetricPrefix+"y") || strings.HasPrefix(g.MetricPrefix, "__") {
		l.errorf([]any{"global", "metric_prefix"}, "%q does not make valid metric names", g.MetricPrefix)
	}
}

// checkURL reports a missing URL or one that is not absolute http(s).
func (l *loader) checkURL(path []any, u *commoncfg.URL) {
	switch {
	case u == nil || u.URL == nil || u.String() == "":
		l.errorf(path, "must be set")
	case u.Scheme != "http" && u.Scheme != "https":
		l.errorf(path, "scheme %q is not http or https", u.Scheme)
	case u.Host == "":
		l.errorf(path, "%q has no host", u.Redacted())
	}
}

func (l *loader) validateDatasource(d *DatasourceConfig) {
	base := []any{"datasource"}
	at := func(k string) []any { return append(slices.Clip(base), k) }
	l.checkURL(at("url"), d.URL)
	switch d.ReadMethod {
	case ReadQueryRange:
		if d.RemoteReadURL != nil {
			l.errorf(at("remote_read_url"), "is only used with read_method %s", ReadRemoteRead)
		}
	case ReadRemoteRead:
		l.checkURL(at("remote_read_url"), d.RemoteReadURL)
	default:
		l.errorf(at("read_method"), "%q is not one of %s, %s", d.ReadMethod, ReadQueryRange, ReadRemoteRead)
	}
	if d.QueryTimeout <= 0 {
		l.errorf(at("query_timeout"), "%s must be greater than 0", d.QueryTimeout)
	}
	if d.SplitInterval < 0 {
		l.errorf(at("split_interval"), "%s must not be negative", d.SplitInterval)
	}
	if err := d.HTTPClientConfig.Validate(); err != nil {
		l.errorf(base, "%v", err)
	}
}

// remoteWriteName is the default name of a remote_write entry: the first 6
// hex digits of the SHA-256 of its URL, stable across restarts and reloads.
func remoteWriteName(u *commoncfg.URL) string {
	if u == nil || u.URL == nil {
		return ""
	}
	sum := sha256.Sum256([]byte(u.String()))
	return hex.EncodeToString(sum[:])[:6]
}

// headerName matches an HTTP header name (an RFC 9110 token).
var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

func (l *loader) validateRemoteWrite(rws []*RemoteWriteConfig) {
	names := map[string]int{}
	for i, rw := range rws {
		base := []any{"remote_write", i}
		at := func(k ...any) []any { return append(slices.Clip(base), k...) }
		if rw == nil {
			l.errorf(base, "empty entry")
			continue
		}
		l.checkURL(at("url"), rw.URL)
		if _, set := strictyaml.Find(l.root, at("name")...); set && rw.Name == "" {
			l.errorf(at("name"), "must not be empty; omit it for the default")
		}
		if rw.Name == "" {
			rw.Name = remoteWriteName(rw.URL)
		}
		if prev, dup := names[rw.Name]; dup && rw.Name != "" {
			if _, set := strictyaml.Find(l.root, at("name")...); set {
				l.errorf(at("name"), "%q is already used by remote_write[%d]", rw.Name, prev)
			} else {
				l.errorf(at("url"), "same url as remote_write[%d]; give each entry a distinct name", prev)
			}
		} else {
			names[rw.Name] = i
		}
		if rw.RemoteTimeout <= 0 {
			l.errorf(at("remote_timeout"), "%s must be greater than 0", rw.RemoteTimeout)
		}
		for _, h := range sortedKeys(rw.Headers) {
			canonical := http.CanonicalHeaderKey(h)
			switch _, reserved := commoncfg.ReservedHeaders[canonical]; {
			case !headerName.MatchString(h):
				l.keyErrorf(at("headers", h), "%q is not a valid header name", h)
			case canonical == "Authorization":
				l.keyErrorf(at("headers", h), "authorization header must be set with basic_auth, authorization or oauth2")
			case reserved:
				l.keyErrorf(at("headers", h), "%s is a reserved header; it must not be changed", h)
			case strings.ContainsAny(rw.Headers[h], "\r\n"):
				l.errorf(at("headers", h), "header value must not contain a line break")
			}
		}
		if err := rw.HTTPClientConfig.Validate(); err != nil {
			l.errorf(base, "%v", err)
		}
		l.validateQueue(at("queue_config"), &rw.QueueConfig)
	}
}

func (l *loader) validateQueue(base []any, q *QueueConfig) {
	at := func(k string) []any { return append(slices.Clip(base), k) }
	if q.MaxSamplesPerSend <= 0 {
		l.errorf(at("max_samples_per_send"), "%d must be greater than 0", q.MaxSamplesPerSend)
	} else if q.Capacity < q.MaxSamplesPerSend {
		l.errorf(at("capacity"), "%d is less than max_samples_per_send (%d)", q.Capacity, q.MaxSamplesPerSend)
	}
	if q.MaxShards <= 0 {
		l.errorf(at("max_shards"), "%d must be greater than 0", q.MaxShards)
	}
	if q.BatchSendDeadline <= 0 {
		l.errorf(at("batch_send_deadline"), "%s must be greater than 0", q.BatchSendDeadline)
	}
	if q.MinBackoff <= 0 {
		l.errorf(at("min_backoff"), "%s must be greater than 0", q.MinBackoff)
	} else if q.MaxBackoff < q.MinBackoff {
		l.errorf(at("max_backoff"), "%s is less than min_backoff (%s)", q.MaxBackoff, q.MinBackoff)
	}
	if q.RetryOnRateLimit && q.MaxRetryDuration <= 0 {
		l.errorf(at("max_retry_duration"), "%s must be greater than 0 when retry_on_http_429 is true", q.MaxRetryDuration)
	}
	if q.FlushDeadline <= 0 {
		l.errorf(at("flush_deadline"), "%s must be greater than 0", q.FlushDeadline)
	}
}

// deviceRe matches the TorchScript devices: cpu, cuda, cuda:N, auto.
var deviceRe = regexp.MustCompile(`^(cpu|cuda|cuda:[0-9]+|auto)$`)

func (l *loader) validateModels(models []*ModelConfig) {
	names := map[string]int{}
	for i, m := range models {
		base := []any{"models", i}
		at := func(k ...any) []any { return append(slices.Clip(base), k...) }
		if m == nil {
			l.errorf(base, "empty entry")
			continue
		}
		switch prev, dup := names[m.Name]; {
		case m.Name == "":
			l.errorf(at("name"), "must be set")
		case m.Name == rulefmt.DefaultModel:
			l.errorf(at("name"), "%q is reserved for the built-in default model, which always exists", m.Name)
		case dup:
			l.errorf(at("name"), "%q is already used by models[%d]", m.Name, prev)
		default:
			names[m.Name] = i
		}
		// A section written with every key commented out still selects
		// its kind, with the defaults.
		if _, set := strictyaml.Find(l.root, at("builtin")...); set && m.Builtin == nil {
			m.Builtin = new(DefaultBuiltinConfig)
		}
		if _, set := strictyaml.Find(l.root, at("torchscript")...); set && m.TorchScript == nil {
			m.TorchScript = new(DefaultTorchScriptConfig)
		}
		if (m.Builtin == nil) == (m.TorchScript == nil) {
			l.errorf(base, "exactly one of builtin or torchscript must be set")
		}
		if b := m.Builtin; b != nil {
			switch b.Algorithm {
			case AlgoHoltWinters:
				for _, p := range []struct {
					key string
					v   float64
				}{{"alpha", b.Alpha}, {"beta", b.Beta}, {"gamma", b.Gamma}} {
					if math.IsNaN(p.v) || p.v < 0 || p.v > 1 {
						l.errorf(at("builtin", p.key), "%g is not in [0, 1]", p.v)
					}
				}
			case AlgoSeasonalNaive:
				for _, p := range []struct {
					key string
					v   float64
				}{{"alpha", b.Alpha}, {"beta", b.Beta}, {"gamma", b.Gamma}} {
					if p.v != 0 {
						l.errorf(at("builtin", p.key), "only applies to algorithm %s", AlgoHoltWinters)
					}
				}
			default:
				l.errorf(at("builtin", "algorithm"), "%q is not one of %s, %s", b.Algorithm, AlgoHoltWinters, AlgoSeasonalNaive)
			}
			if b.Season < 0 {
				l.errorf(at("builtin", "season"), "%s must not be negative", b.Season)
			}
			if b.RefitInterval < 0 {
				l.errorf(at("builtin", "refit_interval"), "%s must not be negative", b.RefitInterval)
			}
		}
		if t := m.TorchScript; t != nil {
			if t.Path == "" {
				l.errorf(at("torchscript", "path"), "must be set")
			}
			if !deviceRe.MatchString(t.Device) {
				l.errorf(at("torchscript", "device"), "%q is not one of cpu, cuda, cuda:N, auto", t.Device)
			}
			if t.BatchSize < 0 {
				l.errorf(at("torchscript", "batch_size"), "%d must not be negative", t.BatchSize)
			}
			if t.Threads < 0 {
				l.errorf(at("torchscript", "threads"), "%d must not be negative", t.Threads)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// File returns the name the config was loaded from.
func (c *Config) File() string { return c.path }

// RuleFilePaths resolves the rule_files globs, relative ones against the
// config file's directory, into a sorted list without duplicates. A glob
// that matches nothing is not an error; a malformed one is.
func (c *Config) RuleFilePaths() ([]string, error) {
	dir := "."
	if c.path != "" {
		dir = filepath.Dir(c.path)
	}
	var paths []string
	for _, pattern := range c.RuleFiles {
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(dir, pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			return nil, fmt.Errorf("rule_files: invalid pattern %q: %w", pattern, err)
		}
		paths = append(paths, matches...)
	}
	slices.Sort(paths)
	return slices.Compact(paths), nil
}

// ExternalLabels returns global.external_labels as sorted labels.
func (c *Config) ExternalLabels() labels.Labels {
	return labels.FromMap(c.Global.ExternalLabels)
}

// mayTakeCovariates says whether model may take covariates: a torchscript
// model may (its file says), the built-in ones do not.
func (c *Config) mayTakeCovariates(name string) bool {
	for _, m := range c.Models {
		if m != nil && m.Name == name {
			return m.TorchScript != nil
		}
	}
	return false
}

// HasModel reports whether a rule may name model: the built-in default
// always exists, other names must be in models.
func (c *Config) HasModel(name string) bool {
	if name == rulefmt.DefaultModel {
		return true
	}
	return slices.ContainsFunc(c.Models, func(m *ModelConfig) bool { return m != nil && m.Name == name })
}

// String returns the config as YAML, secrets hidden.
func (c *Config) String() string {
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return fmt.Sprintf("<error marshalling config: %v>", err)
	}
	return b.String()
}

// CheckModels reports every rule, in any of files, whose model the config
// does not define, positioned at the rule's model key, and every rule with
// covariates whose model is a built-in one (they take none; whether a
// torchscript model takes them is known once its file is loaded).
func CheckModels(c *Config, files ...*rulefmt.RuleGroups) []error {
	var errs []error
	for _, f := range files {
		if f == nil {
			continue
		}
		for gi, g := range f.Groups {
			for ri, r := range g.Rules {
				if !c.HasModel(r.Model) {
					errs = append(errs, f.ErrorAt(gi, ri, "model", fmt.Errorf("model %q is not defined in the config's models", r.Model)))
				} else if len(r.Covariates) > 0 && !c.mayTakeCovariates(r.Model) {
					errs = append(errs, f.ErrorAt(gi, ri, "covariates", errors.New(rulefmt.CovariatesRefused(r.Forecast, r.Model, "a built-in model"))))
				}
			}
		}
	}
	return errs
}

// LoadRuleFiles parses every rule file the config names and checks them
// against it and each other (models defined, forecast names unique across
// files): everything a reload needs before it replaces the running
// pipelines. On any error the groups are nil.
func (c *Config) LoadRuleFiles() ([]*rulefmt.RuleGroups, []error) {
	paths, err := c.RuleFilePaths()
	if err != nil {
		return nil, []error{&Error{File: c.path, Err: err}}
	}
	var (
		files []*rulefmt.RuleGroups
		errs  []error
	)
	for _, p := range paths {
		f, ferrs := rulefmt.ParseFile(p)
		errs = append(errs, ferrs...)
		if f != nil {
			files = append(files, f)
		}
	}
	errs = append(errs, CheckModels(c, files...)...)
	errs = append(errs, rulefmt.CheckUnique(files...)...)
	if len(errs) > 0 {
		return nil, errs
	}
	return files, nil
}
