package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/prometheus/model/labels"
	promparser "github.com/prometheus/prometheus/promql/parser"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/pipeline"
	"github.com/openanomaly/openanomaly/pkg/remotewrite"
)

// prometheusNames are series Prometheus itself makes from the rules and
// scrapes around the sidecar; dashboards may read them (ALERTS for the
// anomaly annotations).
var prometheusNames = []string{"ALERTS", "ALERTS_FOR_STATE"}

// knownNames is every metric name the sidecar emits, derived from the code
// so that a rename there fails the deploy tests:
//   - the pipeline outputs: the default prefix and the suffixes of package
//     pipeline (DESIGN.md §3);
//   - the engine's and the remote-write queues' self-metrics, as their
//     constructors register them;
//   - what cmd/openanomaly registers itself, read from its source: metric
//     options with literal names, and the standard collectors it adds.
//
// The value says where the name comes from, for messages.
func knownNames(t *testing.T) map[string]string {
	t.Helper()
	names := map[string]string{}
	for _, s := range []string{pipeline.SuffixY, pipeline.SuffixYhat, pipeline.SuffixLower,
		pipeline.SuffixUpper, pipeline.SuffixScore, pipeline.SuffixForecast} {
		names[config.DefaultMetricPrefix+s] = "pipeline output"
	}

	capture := &capturingRegisterer{names: names, origin: "pkg/pipeline"}
	pipeline.NewMetrics(capture)
	capture.origin = "pkg/remotewrite"
	remotewrite.NewStorage(capture, nil)
	if capture.registered < 10 {
		t.Fatalf("only %d collectors registered by pipeline.NewMetrics and remotewrite.NewStorage: the capture is broken", capture.registered)
	}

	cmdNames(t, "../cmd/openanomaly", names)
	for _, n := range prometheusNames {
		names[n] = "Prometheus"
	}
	return names
}

// capturingRegisterer records the names a collector describes, with the
// series names its type adds (_bucket, _sum, _count for histograms).
type capturingRegisterer struct {
	names      map[string]string
	origin     string
	registered int
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (c *capturingRegisterer) Register(col prometheus.Collector) error {
	c.registered++
	ch := make(chan *prometheus.Desc)
	go func() {
		col.Describe(ch)
		close(ch)
	}()
	for d := range ch {
		m := descName.FindStringSubmatch(d.String())
		if m == nil {
			continue
		}
		c.add(m[1], col)
	}
	return nil
}

func (c *capturingRegisterer) add(name string, col prometheus.Collector) {
	c.names[name] = c.origin
	switch col.(type) {
	case prometheus.Histogram, *prometheus.HistogramVec:
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			c.names[name+s] = c.origin
		}
	case prometheus.Summary, *prometheus.SummaryVec:
		for _, s := range []string{"_sum", "_count"} {
			c.names[name+s] = c.origin
		}
	}
}

func (c *capturingRegisterer) MustRegister(cols ...prometheus.Collector) {
	for _, col := range cols {
		_ = c.Register(col)
	}
}

func (c *capturingRegisterer) Unregister(prometheus.Collector) bool { return true }

// cmdNames adds the metrics the command's package registers: composite
// literals of prometheus.{Counter,Gauge,Histogram,Summary}Opts with literal
// Namespace, Subsystem and Name, and the Go, process and build-info
// collectors when it creates them.
func cmdNames(t *testing.T, dir string, names map[string]string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files in %s (%v)", dir, err)
	}
	fset := token.NewFileSet()
	var extra []prometheus.Collector
	found := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		af, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(af, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CompositeLit:
				sel, ok := n.Type.(*ast.SelectorExpr)
				if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
					return true
				}
				fields := map[string]string{}
				for _, e := range n.Elts {
					kv, ok := e.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					k, ok1 := kv.Key.(*ast.Ident)
					v, ok2 := kv.Value.(*ast.BasicLit)
					if ok1 && ok2 && v.Kind == token.STRING {
						fields[k.Name], _ = strconv.Unquote(v.Value)
					}
				}
				if fields["Name"] == "" {
					return true
				}
				name := prometheus.BuildFQName(fields["Namespace"], fields["Subsystem"], fields["Name"])
				names[name] = "cmd/openanomaly"
				found++
				switch sel.Sel.Name {
				case "HistogramOpts":
					for _, s := range []string{"_bucket", "_sum", "_count"} {
						names[name+s] = "cmd/openanomaly"
					}
				case "SummaryOpts":
					for _, s := range []string{"_sum", "_count"} {
						names[name+s] = "cmd/openanomaly"
					}
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				x, ok := sel.X.(*ast.Ident)
				if !ok {
					return true
				}
				switch x.Name + "." + sel.Sel.Name {
				case "collectors.NewGoCollector":
					extra = append(extra, collectors.NewGoCollector())
				case "collectors.NewProcessCollector":
					extra = append(extra, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
				case "versioncollector.NewCollector":
					if len(n.Args) == 1 {
						if lit, ok := n.Args[0].(*ast.BasicLit); ok {
							prog, _ := strconv.Unquote(lit.Value)
							extra = append(extra, versioncollector.NewCollector(prog))
						}
					}
				}
			}
			return true
		})
	}
	if found == 0 || len(extra) == 0 {
		t.Fatalf("found %d metric options and %d standard collectors in %s: the source scan is broken", found, len(extra), dir)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(extra...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = "cmd/openanomaly (standard collectors)"
		switch mf.GetType().String() {
		case "HISTOGRAM":
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[mf.GetName()+s] = "cmd/openanomaly (standard collectors)"
			}
		case "SUMMARY":
			for _, s := range []string{"_sum", "_count"} {
				names[mf.GetName()+s] = "cmd/openanomaly (standard collectors)"
			}
		}
	}
}

// exprNames parses a PromQL expression and returns the metric names its
// selectors read. A selector without a fixed metric name is an error: it
// could match anything, and its name could not be checked.
func exprNames(expr string) ([]string, error) {
	e, err := promparser.NewParser(promparser.Options{}).ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var bad []string
	promparser.Inspect(e, func(n promparser.Node, _ []promparser.Node) error {
		vs, ok := n.(*promparser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
		}
		if name == "" {
			bad = append(bad, vs.String())
			return nil
		}
		names = append(names, name)
		return nil
	})
	if len(bad) > 0 {
		return names, &noNameError{selectors: bad}
	}
	return names, nil
}

type noNameError struct{ selectors []string }

func (e *noNameError) Error() string {
	return "selectors without a metric name: " + strings.Join(e.selectors, ", ")
}

// checkNames reports every name in used that the sidecar does not emit.
func checkNames(t *testing.T, where string, used []string, known map[string]string) {
	t.Helper()
	for _, n := range used {
		if _, ok := known[n]; !ok {
			t.Errorf("%s: metric %q is not one the sidecar emits (known: %s)", where, n, sortedKeys(known, "openanomaly_"))
		}
	}
}

func sortedKeys(m map[string]string, prefix string) string {
	var ks []string
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return strings.Join(ks, " ")
}

func TestKnownNames(t *testing.T) {
	known := knownNames(t)
	// A few names the alerts and the dashboard depend on, from each source,
	// so that a broken derivation fails here rather than passing everything.
	for _, n := range []string{
		"openanomaly_anomaly_score",
		"openanomaly_pipeline_evaluation_failures_total",
		"openanomaly_pipeline_evaluation_duration_seconds_bucket",
		"openanomaly_remote_write_dropped_samples_total",
		"openanomaly_config_last_reload_successful",
		"openanomaly_build_info",
		"process_resident_memory_bytes",
	} {
		if _, ok := known[n]; !ok {
			t.Errorf("%s missing from the derived names: %s", n, sortedKeys(known, "openanomaly_"))
		}
	}
}
