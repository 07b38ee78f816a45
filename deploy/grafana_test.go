package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/openanomaly/openanomaly/pkg/config"
	"github.com/openanomaly/openanomaly/pkg/pipeline"
)

const dashboardFile = "grafana/openanomaly.json"

// TestDashboardSchema decodes the dashboard strictly with the types of
// Grafana's foundation SDK, which are generated from Grafana's own dashboard
// schema (and the timeseries, stat and Prometheus query schemas): an
// unknown key, a wrong type or a missing required field anywhere fails.
// Grafana does not run here, so this and the PromQL checks below are what
// stands in for loading it.
func TestDashboardSchema(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	plugins.RegisterDefaultPlugins()
	var d dashboard.Dashboard
	if err := sdkError(d.UnmarshalJSONStrict(raw)); err != nil {
		t.Fatalf("%s does not match Grafana's dashboard schema:\n%v", dashboardFile, err)
	}
	if err := sdkError(d.Validate()); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want 36 or later (datasource references by uid)", d.SchemaVersion)
	}
}

// sdkError returns err, or nil for the empty cog.BuildErrors the SDK
// returns as a non-nil error when there is nothing wrong.
func sdkError(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

// grafanaDashboard is the part of the JSON the checks below walk.
type grafanaDashboard struct {
	UID        string         `json:"uid"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name       string             `json:"name"`
			Expr       string             `json:"expr"`
			Datasource *grafanaDatasource `json:"datasource"`
		} `json:"list"`
	} `json:"annotations"`
}

type grafanaPanel struct {
	ID         int                `json:"id"`
	Type       string             `json:"type"`
	Title      string             `json:"title"`
	Repeat     string             `json:"repeat"`
	Datasource *grafanaDatasource `json:"datasource"`
	Targets    []struct {
		Expr       string             `json:"expr"`
		RefID      string             `json:"refId"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaVariable struct {
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	AllValue   string             `json:"allValue"`
	Datasource *grafanaDatasource `json:"datasource"`
	Query      json.RawMessage    `json:"query"`
}

// query returns a query variable's query: a string, or {"query": "..."}.
func (v grafanaVariable) query() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	_ = json.Unmarshal(v.Query, &o)
	return o.Query
}

// sampleValues are what the dashboard's variables are replaced with before
// parsing; a variable the dashboard uses but does not define fails.
var sampleValues = map[string]string{
	"pipeline": "job:http_requests:rate5m",
	"series":   `instance="web-1:8080", job="api"`,
	"horizon":  "1h",
	"quantile": "0.95",
	"instance": "sidecar:9095",
	// Grafana's own.
	"__rate_interval": "4m",
	"__interval":      "1m",
	"__range":         "6h",
}

var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// substitute replaces the variables in s: with values[name] where set, else
// with sampleValues.
func substitute(s string, defined map[string]bool, values map[string]string) (string, error) {
	var errs []string
	out := grafanaVar.ReplaceAllStringFunc(s, func(m string) string {
		sm := grafanaVar.FindStringSubmatch(m)
		name := sm[1] + sm[2] + sm[3]
		if !defined[name] && !strings.HasPrefix(name, "__") {
			errs = append(errs, fmt.Sprintf("variable $%s is not defined", name))
		}
		if v, ok := values[name]; ok {
			return v
		}
		v, ok := sampleValues[name]
		if !ok {
			errs = append(errs, fmt.Sprintf("no sample value for $%s in the test", name))
		}
		return v
	})
	if len(errs) > 0 {
		return out, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return out, nil
}

var (
	labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*([A-Za-z_]\w*)\s*\)$`)
	queryResultQuery = regexp.MustCompile(`^query_result\((.+)\)$`)
)

// variableExpr returns the PromQL inside a Prometheus variable query.
func variableExpr(q string) (string, error) {
	q = strings.TrimSpace(q)
	if m := labelValuesQuery.FindStringSubmatch(q); m != nil {
		return m[1], nil
	}
	if m := queryResultQuery.FindStringSubmatch(q); m != nil {
		return m[1], nil
	}
	return "", fmt.Errorf("query %q: want label_values(SELECTOR, LABEL) or query_result(EXPR)", q)
}

// TestDashboardQueries parses every PromQL expression in the dashboard
// (panel targets, annotations, variable queries), with the variables
// replaced by sample values and again by their "All" values, and checks
// that every metric name they read is one the sidecar emits.
func TestDashboardQueries(t *testing.T) {
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	known := knownNames(t)

	defined := map[string]bool{}
	allValues := map[string]string{}
	for _, v := range d.Templating.List {
		defined[v.Name] = true
		if v.AllValue != "" {
			allValues[v.Name] = v.AllValue
		}
	}
	for _, want := range []string{"datasource", "pipeline", "series"} {
		if !defined[want] {
			t.Errorf("no %q variable", want)
		}
	}

	type query struct{ where, expr string }
	var queries []query
	checkDS := func(where string, ds *grafanaDatasource) {
		if ds == nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
			t.Errorf("%s: datasource %+v, want the $datasource variable", where, ds)
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		where := "variable " + v.Name
		checkDS(where, v.Datasource)
		e, err := variableExpr(v.query())
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		queries = append(queries, query{where, e})
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			checkDS("annotation "+a.Name, a.Datasource)
			queries = append(queries, query{"annotation " + a.Name, a.Expr})
		}
	}
	ids := map[int]string{}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("%s: id also used by %s", where, prev)
			}
			ids[p.ID] = where
			if p.Repeat != "" && !defined[p.Repeat] {
				t.Errorf("%s: repeats over undefined variable %q", where, p.Repeat)
			}
			if _, err := substitute(p.Title, defined, nil); err != nil {
				t.Errorf("%s: title: %v", where, err)
			}
			if p.Type != "row" {
				checkDS(where, p.Datasource)
				if len(p.Targets) == 0 {
					t.Errorf("%s: no queries", where)
				}
			}
			for _, tg := range p.Targets {
				checkDS(where+" "+tg.RefID, tg.Datasource)
				queries = append(queries, query{where + " " + tg.RefID, tg.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)

	used := map[string]bool{}
	for _, q := range queries {
		for _, values := range []map[string]string{nil, allValues} {
			e, err := substitute(q.expr, defined, values)
			if err != nil {
				t.Errorf("%s: %s: %v", q.where, q.expr, err)
				continue
			}
			names, err := exprNames(e)
			if err != nil {
				t.Errorf("%s: %s: %v", q.where, e, err)
				continue
			}
			checkNames(t, q.where, names, known)
			for _, n := range names {
				used[n] = true
			}
		}
	}
	if len(queries) < 20 {
		t.Errorf("only %d queries found: the walk is broken", len(queries))
	}

	// Every emitted series has a place on the dashboard.
	var missing []string
	for _, s := range []string{pipeline.SuffixY, pipeline.SuffixYhat, pipeline.SuffixLower,
		pipeline.SuffixUpper, pipeline.SuffixScore, pipeline.SuffixForecast} {
		if !used[config.DefaultMetricPrefix+s] {
			missing = append(missing, config.DefaultMetricPrefix+s)
		}
	}
	for _, s := range []string{"openanomaly_pipeline_evaluation_failures_total",
		"openanomaly_pipeline_evaluation_duration_seconds_bucket", "openanomaly_group_iterations_missed_total",
		"openanomaly_remote_write_sent_samples_total", "openanomaly_remote_write_failed_samples_total",
		"openanomaly_remote_write_dropped_samples_total", "openanomaly_remote_write_pending_samples"} {
		if !used[s] {
			missing = append(missing, s)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the dashboard does not show %s", strings.Join(missing, ", "))
	}
}
