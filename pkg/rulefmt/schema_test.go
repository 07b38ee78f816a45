package rulefmt_test

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"go.yaml.in/yaml/v3"

	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// schemaFile is the published schema; internal/cmd/genschema checks that
// it matches this package's types, this test that it agrees with Parse.
const schemaFile = "../../schema/pipelines.schema.json"

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("pipelines.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("pipelines.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// yamlInstance reads a YAML file into the JSON value editors validate.
// JSON has no NaN or infinities: they become strings, which no number
// schema accepts.
func yamlInstance(t *testing.T, path string) any {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(content, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var fix func(any) any
	fix = func(v any) any {
		switch v := v.(type) {
		case float64:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return "non-finite number"
			}
		case map[string]any:
			for k, e := range v {
				v[k] = fix(e)
			}
		case []any:
			for i, e := range v {
				v[i] = fix(e)
			}
		}
		return v
	}
	return fix(v)
}

// leafLocations lists where the innermost causes of a validation error
// point, as JSON pointers.
func leafLocations(err error) []string {
	var out []string
	var walk func(e *jsonschema.ValidationError, at string)
	walk = func(e *jsonschema.ValidationError, parent string) {
		at := "/" + strings.Join(e.InstanceLocation, "/")
		// A bad key is reported at the key; its own location is not
		// reliable (the library reuses the slice), its parent's is.
		if pn, ok := e.ErrorKind.(*kind.PropertyNames); ok {
			out = append(out, parent+"/"+pn.Property)
			return
		}
		if len(e.Causes) == 0 {
			out = append(out, at)
		}
		for _, c := range e.Causes {
			walk(c, at)
		}
	}
	if ve, ok := err.(*jsonschema.ValidationError); ok {
		walk(ve, "")
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestSchemaAcceptsGoodFiles validates the files Parse accepts, the example
// and the shipped pipeline packs included, against the schema.
func TestSchemaAcceptsGoodFiles(t *testing.T) {
	s := compileSchema(t)
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	packs, err := filepath.Glob("../../rules/*.yml")
	if err != nil || len(packs) == 0 {
		t.Fatalf("no pipeline packs in rules/: %v", err)
	}
	files = append(files, "../../examples/pipelines.yml")
	files = append(files, packs...)
	for _, file := range files {
		if _, errs := rulefmt.ParseFile(file); len(errs) > 0 {
			t.Fatalf("%s does not parse: %v", file, errs)
		}
		inst := yamlInstance(t, file)
		if inst == nil {
			continue // an empty document: nothing for a schema (or an editor) to check
		}
		if err := s.Validate(inst); err != nil {
			t.Errorf("%s: schema rejects a file Parse accepts:\n%v", file, err)
		}
	}
}

// TestSchemaRejectsBadFiles checks that the schema flags, at the right
// places, the mistakes a schema can see; the rest (PromQL, multiples of
// step, duplicates across groups) only `openanomaly check rules` finds.
func TestSchemaRejectsBadFiles(t *testing.T) {
	s := compileSchema(t)
	tests := []struct {
		file string
		// want lists instance locations that must be among the errors.
		want []string
	}{
		{"unknown_keys.bad.yaml", []string{
			"/", // alerting
			"/groups/0",
			"/groups/0/rules/0",
			"/groups/0/rules/0/anomaly",
			"/groups/0/rules/1", // record, and no forecast
		}},
		{"types.bad.yaml", []string{
			"/groups/0/interval",
			"/groups/0/limit",
			"/groups/0/rules/0/step",
			"/groups/0/rules/0/horizons",
			"/groups/0/rules/0/quantiles/1",
			"/groups/0/rules/0/labels",
			"/groups/1/rules",
		}},
		{"durations.bad.yaml", []string{
			"/groups/0/limit",
			"/groups/0/rules/0/step",
			"/groups/0/rules/0/horizons/0",
			"/groups/0/rules/1/horizons", // listed twice
			"/groups/0/rules/4/step",
		}},
		{"quantiles.bad.yaml", []string{
			"/groups/0/rules/0/quantiles/0",
			"/groups/0/rules/0/quantiles/2",
			"/groups/0/rules/0/quantiles/4",
			"/groups/0/rules/0/quantiles/5", // .nan
			"/groups/0/rules/1/anomaly/band",
			"/groups/0/rules/2/anomaly/band/0",
			"/groups/0/rules/2/anomaly/direction",
			"/groups/0/rules/2/anomaly/min_deviation",
			"/groups/0/rules/3/anomaly/band/1",
			"/groups/0/rules/3/anomaly/min_deviation", // .inf
		}},
		{"labels.bad.yaml", []string{
			"/groups/0/rules/0/model",
			"/groups/0/rules/0/labels/__name__",
			"/groups/0/rules/0/labels/pipeline",
			"/groups/0/rules/0/labels/horizon",
			"/groups/0/rules/0/labels/quantile",
			"/groups/0/rules/0/labels/__meta",
			"/groups/0/rules/0/labels/team-name",
			"/groups/0/rules/1/covariates/2/name", // bad-name
			"/groups/0/rules/1/covariates/3/name", // __meta
			"/groups/0/rules/1/covariates/4",      // no name
			"/groups/0/rules/1/covariates/5",      // no expr
		}},
		{"names.bad.yaml", []string{
			"/groups/0",         // no name
			"/groups/0/rules/0", // no forecast
			"/groups/1/rules/1/forecast",
		}},
		{"expr.bad.yaml", []string{"/groups/0/rules/4/expr"}},
	}
	for _, tc := range tests {
		file := filepath.Join("testdata", tc.file)
		if _, errs := rulefmt.ParseFile(file); len(errs) == 0 {
			t.Fatalf("%s parses; it is meant to be bad", file)
		}
		err := s.Validate(yamlInstance(t, file))
		if err == nil {
			t.Errorf("%s: schema accepts it", file)
			continue
		}
		got := leafLocations(err)
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: no schema error at %s; errors at %v:\n%v", file, w, got, err)
			}
		}
	}
}
