// Package strictyaml decodes YAML into Go structs strictly: every unknown
// key and every value that does not fit is reported, all at once, each with
// the line and column of the node it concerns. pkg/config and pkg/rulefmt
// share it.
//
// It walks a yaml.Node tree itself instead of calling yaml.Decoder with
// KnownFields, because the decoder stops at the first error a custom
// unmarshaler returns (model.Duration, config.URL, ...) and reports type
// errors by line only.
package strictyaml

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem at a position in a YAML document.
type Error struct {
	// Line and Col are 1-based; 0 when the position is unknown.
	Line, Col int
	// Path locates the node the error concerns.
	Path Path
	// Node is the node the error concerns: a value that did not decode, or
	// the key of an unknown or repeated entry.
	Node *yaml.Node
	Err  error
}

// Error formats the error as "line:col: path: message".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(Position("", e.Line, e.Col))
	if p := e.Path.String(); p != "" {
		b.WriteString(p)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Position formats file, line and column as the prefix of a message:
// "file:line:col: ", leaving out what is unknown (empty or zero).
func Position(file string, line, col int) string {
	var b strings.Builder
	b.WriteString(file)
	if line > 0 {
		if file != "" {
			b.WriteByte(':')
		}
		b.WriteString(strconv.Itoa(line))
		if col > 0 {
			fmt.Fprintf(&b, ":%d", col)
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Path locates a node from the document's root: string elements are mapping
// keys, int elements sequence indices.
type Path []any

// String renders the path like "remote_write[0].queue_config".
func (p Path) String() string {
	var b strings.Builder
	for _, e := range p {
		switch e := e.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, e)
		}
	}
	return b.String()
}

// append returns a copy of p with e added, so that paths kept in errors are
// never shared with the walk that goes on.
func (p Path) append(e any) Path {
	q := make(Path, len(p), len(p)+1)
	copy(q, p)
	return append(q, e)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse parses content into the root node of its first document. An empty
// document gives a nil node and no error. Syntax errors are returned as
// *Error with the line the YAML parser reports.
func Parse(content []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil {
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, &Error{Line: line, Err: errors.New(m[2])}
		}
		return nil, &Error{Err: errors.New(strings.TrimPrefix(err.Error(), "yaml: "))}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// IsNull reports whether n is absent or an explicit null.
func IsNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// resolve follows documents and aliases to the node holding the value.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && i < 100; i++ {
		switch {
		case n.Kind == yaml.DocumentNode && len(n.Content) > 0:
			n = n.Content[0]
		case n.Kind == yaml.AliasNode && n.Alias != nil:
			n = n.Alias
		default:
			return n
		}
	}
	return n
}

// pair is one key and value of a mapping.
type pair struct{ key, value *yaml.Node }

// pairs lists the entries of mapping n with YAML merge keys (<<) expanded:
// explicit keys win over merged ones, earlier merged mappings over later.
func pairs(n *yaml.Node) []pair {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var own, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			v = resolve(v)
			if v.Kind == yaml.SequenceNode {
				for _, m := range v.Content {
					merged = append(merged, pairs(m)...)
				}
			} else {
				merged = append(merged, pairs(v)...)
			}
			continue
		}
		own = append(own, pair{k, v})
	}
	if len(merged) == 0 {
		return own
	}
	seen := make(map[string]bool, len(own)+len(merged))
	for _, p := range own {
		seen[p.key.Value] = true
	}
	for _, p := range merged {
		if !seen[p.key.Value] {
			seen[p.key.Value] = true
			own = append(own, p)
		}
	}
	return own
}

// Find returns the node at path below n: string elements select mapping
// values by key, int elements sequence items. When part of the path does not
// exist it returns the deepest node that does and false, so that an error
// about a missing key can point at the mapping that lacks it.
func Find(n *yaml.Node, path ...any) (*yaml.Node, bool) {
	n = resolve(n)
	for _, e := range path {
		next := child(n, e)
		if next == nil {
			return n, false
		}
		n = next
	}
	return n, n != nil
}

// FindKey is Find for a path that ends in a mapping key: it returns the key
// node itself rather than its value.
func FindKey(n *yaml.Node, path ...any) (*yaml.Node, bool) {
	if len(path) == 0 {
		return Find(n)
	}
	parent, ok := Find(n, path[:len(path)-1]...)
	if !ok {
		return parent, false
	}
	if k, ok := path[len(path)-1].(string); ok {
		for _, p := range pairs(parent) {
			if p.key.Value == k {
				return p.key, true
			}
		}
	}
	return parent, false
}

func child(n *yaml.Node, e any) *yaml.Node {
	if n == nil {
		return nil
	}
	switch e := e.(type) {
	case string:
		for _, p := range pairs(n) {
			if p.key.Value == e {
				return resolve(p.value)
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && e >= 0 && e < len(n.Content) {
			return resolve(n.Content[e])
		}
	}
	return nil
}

// maxNodes bounds how many nodes one Decode visits, so that a small file
// with nested aliases cannot expand into billions of values.
const maxNodes = 1 << 18

// Decode decodes n into v, which must be a non-nil pointer, and returns every
// problem found. Unknown mapping keys are errors, with a suggestion when a
// known key is close. Keys inside types with their own UnmarshalYAML are
// checked against the type's fields as well; the type's method then decodes
// the value.
//
// defaults are values of struct types: whenever Decode creates a value of
// one of these types (the root, a pointer's target, a list item), it starts
// from a copy of the default, so that keys the file omits keep their default
// and keys it sets, even to a zero value, win. Nested structs take their
// defaults from the enclosing default.
func Decode(n *yaml.Node, v any, defaults ...any) []*Error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		panic("strictyaml: Decode needs a non-nil pointer")
	}
	d := &decoder{defaults: make(map[reflect.Type]reflect.Value, len(defaults))}
	for _, def := range defaults {
		dv := reflect.ValueOf(def)
		d.defaults[dv.Type()] = dv
	}
	d.setDefault(rv.Elem())
	n = resolve(n)
	if n == nil || n.Kind == 0 {
		return nil
	}
	d.decode(n, rv.Elem(), nil)
	return d.errs
}

type decoder struct {
	defaults map[reflect.Type]reflect.Value
	errs     []*Error
	nodes    int
	tooMany  bool
}

func (d *decoder) errorf(n *yaml.Node, path Path, format string, args ...any) {
	d.errs = append(d.errs, &Error{Line: n.Line, Col: n.Column, Path: path, Node: n, Err: fmt.Errorf(format, args...)})
}

// setDefault copies the registered default for v's type into v.
func (d *decoder) setDefault(v reflect.Value) {
	if def, ok := d.defaults[v.Type()]; ok {
		v.Set(def)
	}
}

var (
	unmarshalerType    = reflect.TypeFor[yaml.Unmarshaler]()
	obsoleteUnmarshal  = reflect.TypeFor[interface{ UnmarshalYAML(func(any) error) error }]()
	typeErrorLinePrefx = regexp.MustCompile(`^line \d+: `)
)

func hasUnmarshaler(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return pt.Implements(unmarshalerType) || pt.Implements(obsoleteUnmarshal) ||
		t.Implements(unmarshalerType) || t.Implements(obsoleteUnmarshal)
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path Path) {
	n = resolve(n)
	d.nodes++
	if d.nodes > maxNodes {
		if !d.tooMany {
			d.tooMany = true
			d.errorf(n, path, "document is too complex (excessive aliasing)")
		}
		return
	}
	t := v.Type()
	if t.Kind() == reflect.Pointer {
		if IsNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		if v.IsNil() {
			nv := reflect.New(t.Elem())
			d.setDefault(nv.Elem())
			v.Set(nv)
		}
		d.decode(n, v.Elem(), path)
		return
	}
	if hasUnmarshaler(t) {
		if t.Kind() == reflect.Struct {
			d.checkKeys(n, t, path)
		}
		d.leaf(n, v, path)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if IsNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.setDefault(s.Index(i))
			d.decode(item, s.Index(i), path.append(i))
		}
		v.Set(s)
	case reflect.Map:
		if IsNull(n) {
			v.Set(reflect.Zero(t))
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMap(t)
		seen := map[string]*yaml.Node{}
		for _, p := range pairs(n) {
			if prev, ok := seen[p.key.Value]; ok {
				d.errorf(p.key, path, "key %q is already set at line %d", p.key.Value, prev.Line)
				continue
			}
			seen[p.key.Value] = p.key
			k := reflect.New(t.Key()).Elem()
			if err := p.key.Decode(k.Addr().Interface()); err != nil {
				d.errorf(p.key, path, "%s", cleanDecodeError(err))
				continue
			}
			e := reflect.New(t.Elem()).Elem()
			d.setDefault(e)
			d.decode(p.value, e, path.append(p.key.Value))
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	default:
		d.leaf(n, v, path)
	}
}

// leaf lets the YAML library decode n into v and attributes its errors to n.
func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path Path) {
	if err := n.Decode(v.Addr().Interface()); err != nil {
		d.errorf(n, path, "%s", cleanDecodeError(err))
	}
}

// cleanDecodeError drops the "line N:" the YAML library puts in type
// errors: the caller reports the position itself.
func cleanDecodeError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			msgs[i] = typeErrorLinePrefx.ReplaceAllString(m, "")
		}
		return strings.Join(msgs, "; ")
	}
	return err.Error()
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path Path) {
	if IsNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]*yaml.Node{}
	for _, p := range pairs(n) {
		key := p.key.Value
		if prev, ok := seen[key]; ok {
			d.errorf(p.key, path, "key %q is already set at line %d", key, prev.Line)
			continue
		}
		seen[key] = p.key
		f, ok := fields.byName[key]
		if !ok {
			if fields.rest == nil {
				d.unknownKey(p.key, path, fields)
				continue
			}
			m := fieldByIndex(v, fields.rest)
			if m.IsNil() {
				m.Set(reflect.MakeMap(m.Type()))
			}
			e := reflect.New(m.Type().Elem()).Elem()
			d.decode(p.value, e, path.append(key))
			m.SetMapIndex(reflect.ValueOf(key).Convert(m.Type().Key()), e)
			continue
		}
		d.decode(p.value, fieldByIndex(v, f), path.append(key))
	}
}

// checkKeys reports unknown keys in n for type t without decoding, for
// types whose own UnmarshalYAML does the decoding.
func (d *decoder) checkKeys(n *yaml.Node, t reflect.Type, path Path) {
	n = resolve(n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n == nil {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := fieldsOf(t)
		for _, p := range pairs(n) {
			f, ok := fields.byName[p.key.Value]
			switch {
			case ok:
				d.checkKeys(p.value, t.FieldByIndex(f).Type, path.append(p.key.Value))
			case fields.rest != nil:
				d.checkKeys(p.value, t.FieldByIndex(fields.rest).Type.Elem(), path.append(p.key.Value))
			default:
				d.unknownKey(p.key, path, fields)
			}
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, item := range n.Content {
				d.checkKeys(item, t.Elem(), path.append(i))
			}
		}
	case reflect.Map:
		for _, p := range pairs(n) {
			d.checkKeys(p.value, t.Elem(), path.append(p.key.Value))
		}
	}
}

func (d *decoder) unknownKey(k *yaml.Node, path Path, fields *fieldSet) {
	if s := closest(k.Value, fields.names); s != "" {
		d.errorf(k, path, "unknown key %q; did you mean %q?", k.Value, s)
		return
	}
	d.errorf(k, path, "unknown key %q", k.Value)
}

// fieldSet maps the YAML keys of a struct, inline structs flattened, to
// field index paths.
type fieldSet struct {
	byName map[string][]int
	names  []string
	// rest is the inline map that takes the keys no field names, if any.
	rest []int
}

func fieldsOf(t reflect.Type) *fieldSet {
	fs := &fieldSet{byName: map[string][]int{}}
	addFields(fs, t, nil)
	return fs
}

func addFields(fs *fieldSet, t reflect.Type, index []int) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		idx := append(append([]int(nil), index...), i)
		if strings.Contains(","+opts+",", ",inline,") {
			switch f.Type.Kind() {
			case reflect.Struct:
				addFields(fs, f.Type, idx)
			case reflect.Map:
				fs.rest = idx
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if _, dup := fs.byName[name]; !dup {
			fs.names = append(fs.names, name)
		}
		fs.byName[name] = idx
	}
}

// fieldByIndex is reflect.Value.FieldByIndex for value-embedded structs.
func fieldByIndex(v reflect.Value, index []int) reflect.Value {
	for _, i := range index {
		v = v.Field(i)
	}
	return v
}

// closest returns the candidate within edit distance 2 of s, if any, and
// never one that shares nothing with s (a one-letter key is not a typo of
// any other one-letter key).
func closest(s string, candidates []string) string {
	best, bestDist := "", min(3, len(s))
	for _, c := range candidates {
		if dist := editDistance(s, c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
