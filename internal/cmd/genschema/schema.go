package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/common/model"

	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// schemaID is where editors fetch the published schema from.
const schemaID = "https://raw.githubusercontent.com/openanomaly/openanomaly/main/schema/pipelines.schema.json"

// schema is one JSON Schema (draft-07) object. Fields are in the order they
// are written, so that the generated file reads top-down and diffs well.
type schema struct {
	Schema               string      `json:"$schema,omitempty"`
	ID                   string      `json:"$id,omitempty"`
	Title                string      `json:"title,omitempty"`
	Description          string      `json:"description,omitempty"`
	Type                 any         `json:"type,omitempty"` // a name or a list of names
	Enum                 []any       `json:"enum,omitempty"`
	Pattern              string      `json:"pattern,omitempty"`
	MinLength            *int        `json:"minLength,omitempty"`
	Minimum              *float64    `json:"minimum,omitempty"`
	ExclusiveMinimum     *float64    `json:"exclusiveMinimum,omitempty"`
	ExclusiveMaximum     *float64    `json:"exclusiveMaximum,omitempty"`
	Items                any         `json:"items,omitempty"` // a schema, or a list for tuples
	MinItems             *int        `json:"minItems,omitempty"`
	MaxItems             *int        `json:"maxItems,omitempty"`
	UniqueItems          bool        `json:"uniqueItems,omitempty"`
	Properties           *properties `json:"properties,omitempty"`
	Required             []string    `json:"required,omitempty"`
	PropertyNames        *schema     `json:"propertyNames,omitempty"`
	AdditionalProperties any         `json:"additionalProperties,omitempty"` // false or a schema
	Not                  *schema     `json:"not,omitempty"`
	AnyOf                []*schema   `json:"anyOf,omitempty"`
	Default              any         `json:"default,omitempty"`
	Examples             []any       `json:"examples,omitempty"`
}

// properties keeps an object's keys in the Go struct's field order.
type properties struct {
	names   []string
	schemas map[string]*schema
}

func (p *properties) add(name string, s *schema) {
	if p.schemas == nil {
		p.schemas = map[string]*schema{}
	}
	p.names = append(p.names, name)
	p.schemas[name] = s
}

func (p *properties) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, n := range p.names {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := encode(&b, n); err != nil {
			return nil, err
		}
		b.WriteByte(':')
		if err := encode(&b, p.schemas[n]); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// encode writes v as JSON without escaping <, > and &, which descriptions
// use as text.
func encode(b *bytes.Buffer, v any) error {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	b.Truncate(b.Len() - 1) // Encode's newline
	return nil
}

// durationPattern is the syntax model.ParseDuration accepts: "0", or units
// from the largest to the smallest, each at most once.
const durationPattern = `^(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)$`

// zeroDuration matches the durations that are 0 ("0", "0s", "0h0m", ...).
const zeroDuration = `^[0ywdhms]+$`

// refinement is what the Go types cannot say about a field: the checks
// rulefmt.Parse makes that a schema can express, defaults, and whether a key
// without omitempty may still be left out.
type refinement struct {
	// optional: the loader accepts the key missing although its field has
	// no omitempty.
	optional bool
	// nullable: an explicit null means something (anomaly: with every key
	// commented out turns scoring on).
	nullable bool
	apply    func(*schema)
}

func ptr[T any](v T) *T { return &v }

func positiveDuration(s *schema) {
	s.Not = &schema{Pattern: zeroDuration, Description: "A duration greater than 0."}
}

// quantileLevel bounds a number to (0, 1), as the loader does.
func quantileLevel(s *schema) {
	s.ExclusiveMinimum, s.ExclusiveMaximum = ptr(0.0), ptr(1.0)
}

// refinements are keyed by "Type.Field". Every key must name a field that
// exists (generate fails otherwise), so they cannot drift from the types.
var refinements = map[string]refinement{
	"RuleGroup.Name":        {apply: func(s *schema) { s.MinLength = ptr(1) }},
	"RuleGroup.Limit":       {apply: func(s *schema) { s.Minimum = ptr(0.0); s.Default = 0 }},
	"RuleGroup.Concurrency": {apply: func(s *schema) { s.Minimum = ptr(0.0); s.Default = 1 }},
	// Like Prometheus, a group without rules is accepted.
	"RuleGroup.Rules": {optional: true},
	"Rule.Forecast": {apply: func(s *schema) {
		s.Pattern = `^[a-zA-Z_:][a-zA-Z0-9_:]*$`
		s.Examples = []any{"job:http_requests:rate5m"}
	}},
	"Rule.Expr":  {apply: func(s *schema) { s.Pattern = `\S` }},
	"Rule.Model": {apply: func(s *schema) { s.MinLength = ptr(1); s.Default = rulefmt.DefaultModel }},
	"Rule.Step": {apply: func(s *schema) {
		positiveDuration(s)
		s.Default = rulefmt.DefaultStep.String()
	}},
	"Rule.Context": {apply: func(s *schema) {
		positiveDuration(s)
		s.Default = rulefmt.DefaultContext.String()
	}},
	"Rule.Horizons": {apply: func(s *schema) {
		s.UniqueItems = true
		positiveDuration(s.Items.(*schema))
	}},
	"Rule.Quantiles": {apply: func(s *schema) {
		s.UniqueItems = true
		quantileLevel(s.Items.(*schema))
		s.Default = rulefmt.DefaultQuantiles
	}},
	"Rule.Anomaly": {nullable: true},
	"Covariate.Name": {apply: func(s *schema) {
		s.Pattern = `^[a-zA-Z_][a-zA-Z0-9_]*$`
		s.Not = &schema{Pattern: "^__", Description: "Names starting with __ are reserved."}
	}},
	"Covariate.Expr": {apply: func(s *schema) { s.Pattern = `\S` }},
	"Rule.Labels": {apply: func(s *schema) {
		s.PropertyNames = &schema{
			Pattern: `^[a-zA-Z_][a-zA-Z0-9_]*$`,
			Not: &schema{
				Description: "Label names the product sets, and names starting with __, are reserved.",
				AnyOf: []*schema{
					{Enum: []any{rulefmt.LabelPipeline, rulefmt.LabelHorizon, rulefmt.LabelQuantile}},
					{Pattern: "^__"},
				},
			},
		}
		// YAML scalars are read as text, as Prometheus reads rule labels.
		s.AdditionalProperties = &schema{Type: []string{"string", "number", "boolean"}}
	}},
	"Anomaly.Band": {apply: func(s *schema) {
		item := s.Items.(*schema)
		lo, hi := *item, *item
		lo.ExclusiveMinimum, lo.ExclusiveMaximum = ptr(0.0), ptr(0.5)
		hi.ExclusiveMinimum, hi.ExclusiveMaximum = ptr(0.5), ptr(1.0)
		s.Items = []*schema{&lo, &hi}
		s.MinItems, s.MaxItems = ptr(2), ptr(2)
		s.Default = rulefmt.DefaultBand
	}},
	"Anomaly.Direction": {apply: func(s *schema) {
		s.Enum = []any{rulefmt.DirectionBoth, rulefmt.DirectionAbove, rulefmt.DirectionBelow}
		s.Default = rulefmt.DirectionBoth
	}},
	"Anomaly.MinDeviation": {apply: func(s *schema) { s.Minimum = ptr(0.0); s.Default = 0 }},
	"Anomaly.Novelty":      {nullable: true},
	"Novelty.Window":       {apply: positiveDuration},
	"Novelty.Floor":        {apply: func(s *schema) { s.ExclusiveMinimum = ptr(0.0); s.Default = rulefmt.DefaultNoveltyFloor }},
}

// generate returns the schema, indented and ending in a newline. srcDir
// holds pkg/rulefmt's sources, whose doc comments become descriptions.
func generate(srcDir string) ([]byte, error) {
	docs, err := readDocs(srcDir)
	if err != nil {
		return nil, err
	}
	r := &reflector{docs: docs, used: map[string]bool{}}
	root, err := r.object(reflect.TypeFor[rulefmt.RuleGroups]())
	if err != nil {
		return nil, err
	}
	for key := range refinements {
		if !r.used[key] {
			return nil, fmt.Errorf("refinement for %s: no such field", key)
		}
	}
	root.Schema = "http://json-schema.org/draft-07/schema#"
	root.ID = schemaID
	root.Title = "OpenAnomaly pipeline file"
	root.Description = "Pipelines written like Prometheus recording rules: groups of rules, each forecasting the series of a PromQL expression and, with anomaly, scoring them. Generated from pkg/rulefmt by internal/cmd/genschema; do not edit."
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

type reflector struct {
	docs map[string]string // "Type" and "Type.Field" to doc comment
	used map[string]bool
}

var durationType = reflect.TypeFor[model.Duration]()

// object describes a struct type: its exported fields with yaml tags,
// required unless omitempty, no other keys.
func (r *reflector) object(t reflect.Type) (*schema, error) {
	s := &schema{Type: "object", Properties: &properties{}, AdditionalProperties: false}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			return nil, fmt.Errorf("%s.%s: no yaml key name", t.Name(), f.Name)
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			return nil, fmt.Errorf("%s.%s: inline fields are not supported", t.Name(), f.Name)
		}
		key := t.Name() + "." + f.Name
		doc := r.docs[key]
		if doc == "" {
			return nil, fmt.Errorf("%s: no doc comment; it is the key's description in the schema", key)
		}
		fs, err := r.value(f.Type)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		// "Step is the resolution" reads as "step is the resolution":
		// users know the key, not the Go name.
		fs.Description = strings.Replace(doc, f.Name+" ", name+" ", 1)
		if !strings.HasPrefix(doc, f.Name+" ") {
			fs.Description = doc
		}
		ref, ok := refinements[key]
		r.used[key] = ok
		if ref.apply != nil {
			ref.apply(fs)
		}
		if ref.nullable {
			fs.Type = []string{fs.Type.(string), "null"}
		}
		if !slices.Contains(strings.Split(opts, ","), "omitempty") && !ref.optional {
			s.Required = append(s.Required, name)
		}
		s.Properties.add(name, fs)
	}
	return s, nil
}

// value describes a field's type.
func (r *reflector) value(t reflect.Type) (*schema, error) {
	if t == durationType {
		return &schema{Type: "string", Pattern: durationPattern, MinLength: ptr(1)}, nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		return r.value(t.Elem())
	case reflect.String:
		return &schema{Type: "string"}, nil
	case reflect.Bool:
		return &schema{Type: "boolean"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &schema{Type: "integer"}, nil
	case reflect.Float32, reflect.Float64:
		return &schema{Type: "number"}, nil
	case reflect.Slice:
		items, err := r.value(t.Elem())
		if err != nil {
			return nil, err
		}
		return &schema{Type: "array", Items: items}, nil
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return nil, fmt.Errorf("map key %s is not a string", t.Key())
		}
		v, err := r.value(t.Elem())
		if err != nil {
			return nil, err
		}
		return &schema{Type: "object", AdditionalProperties: v}, nil
	case reflect.Struct:
		s, err := r.object(t)
		if err != nil {
			return nil, err
		}
		s.Title = t.Name()
		if doc := r.docs[t.Name()]; doc != "" {
			s.Description = doc
		}
		return s, nil
	}
	return nil, fmt.Errorf("type %s has no JSON Schema mapping; add one to genschema", t)
}

// readDocs collects the doc comments of the struct types in dir and of
// their fields, each as one line per paragraph.
func readDocs(dir string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	fset := token.NewFileSet()
	docs := map[string]string{}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				docs[ts.Name.Name] = flatten(doc.Text())
				for _, field := range st.Fields.List {
					for _, n := range field.Names {
						docs[ts.Name.Name+"."+n.Name] = flatten(field.Doc.Text())
					}
				}
			}
		}
	}
	return docs, nil
}

// flatten joins a comment's lines into one line per paragraph: editors wrap
// descriptions themselves.
func flatten(text string) string {
	var paras []string
	for p := range strings.SplitSeq(strings.TrimSpace(text), "\n\n") {
		paras = append(paras, strings.Join(strings.Fields(p), " "))
	}
	return strings.Join(paras, "\n\n")
}
