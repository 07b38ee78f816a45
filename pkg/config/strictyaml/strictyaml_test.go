package strictyaml

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

type inner struct {
	A int    `yaml:"a"`
	B string `yaml:"b,omitempty"`
}

type embedded struct {
	E1 string `yaml:"e1"`
}

// custom decodes itself and checks its value, as prometheus/common's
// types do.
type custom struct {
	X int `yaml:"x"`
}

func (c *custom) UnmarshalYAML(unmarshal func(any) error) error {
	type plain custom
	if err := unmarshal((*plain)(c)); err != nil {
		return err
	}
	if c.X < 0 {
		return errors.New("x must not be negative")
	}
	return nil
}

type outer struct {
	Name     string            `yaml:"name"`
	Every    model.Duration    `yaml:"every"`
	Inner    inner             `yaml:"inner"`
	Ptr      *inner            `yaml:"ptr"`
	List     []inner           `yaml:"list"`
	PtrList  []*inner          `yaml:"ptr_list"`
	Map      map[string]inner  `yaml:"map"`
	Custom   custom            `yaml:"custom"`
	Extra    map[string]string `yaml:"extra"`
	NoTag    int
	Skipped  int `yaml:"-"`
	embedded `yaml:",inline"`
}

type withRest struct {
	Known string            `yaml:"known"`
	Rest  map[string]string `yaml:",inline"`
}

func decode(t *testing.T, src string, v any, defaults ...any) []*Error {
	t.Helper()
	n, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return Decode(n, v, defaults...)
}

func TestDecodeValues(t *testing.T) {
	var got outer
	errs := decode(t, `
name: x
every: 5m
inner: {a: 1}
ptr: {b: p}
list: [{a: 2}, {b: l}]
ptr_list: [{a: 3}]
map: {k: {a: 4}}
custom: {x: 5}
extra: {k: v}
notag: 6
e1: inlined
`, &got, inner{B: "default"})
	if errs != nil {
		t.Fatal(errs)
	}
	want := outer{
		Name:  "x",
		Every: model.Duration(5 * time.Minute),
		// A value field starts from its parent, not from the defaults.
		Inner:    inner{A: 1},
		Ptr:      &inner{B: "p"},
		List:     []inner{{A: 2, B: "default"}, {B: "l"}},
		PtrList:  []*inner{{A: 3, B: "default"}},
		Map:      map[string]inner{"k": {A: 4, B: "default"}},
		Custom:   custom{X: 5},
		Extra:    map[string]string{"k": "v"},
		NoTag:    6,
		embedded: embedded{E1: "inlined"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestDecodeRootDefaultAndNull(t *testing.T) {
	got := inner{A: 9}
	if errs := decode(t, "b: set", &got, inner{A: 7, B: "d"}); errs != nil {
		t.Fatal(errs)
	}
	if want := (inner{A: 7, B: "set"}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// An explicit null clears a pointer.
	v := outer{Ptr: &inner{A: 1}}
	if errs := decode(t, "ptr: null", &v); errs != nil || v.Ptr != nil {
		t.Errorf("ptr = %+v, errs %v", v.Ptr, errs)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		v    any
		want []string // "line:col: path: message", in order
	}{
		{
			name: "unknown keys everywhere, all reported",
			src:  "nam: x\ninner: {a: 1, c: 2}\nlist:\n  - {bb: 1}\ncustom: {xx: 1}\n",
			v:    &outer{},
			want: []string{
				`1:1: unknown key "nam"; did you mean "name"?`,
				`2:15: inner: unknown key "c"`, // no suggestion for one letter
				`4:6: list[0]: unknown key "bb"; did you mean "b"?`,
				// Checked although custom's own UnmarshalYAML decodes it.
				`5:10: custom: unknown key "xx"; did you mean "x"?`,
			},
		},
		{
			name: "bad values with their positions",
			src:  "every: 5\ninner: {a: x}\nlist: {a: 1}\nmap: [1]\ncustom: {x: -1}\nptr_list: [{a: [1]}]\n",
			v:    &outer{},
			want: []string{
				`1:8: every: not a valid duration string: "5"`,
				"2:12: inner.a: cannot unmarshal !!str `x` into int",
				"3:7: list: expected a list, got a mapping",
				"4:6: map: expected a mapping, got a list",
				"5:9: custom: x must not be negative",
				"6:16: ptr_list[0].a: cannot unmarshal !!seq into int",
			},
		},
		{
			name: "repeated keys",
			src:  "name: a\nname: b\nextra: {k: 1, k: 2}\n",
			v:    &outer{},
			want: []string{
				`2:1: key "name" is already set at line 1`,
				`3:15: extra: key "k" is already set at line 3`,
			},
		},
		{
			name: "scalar where a mapping belongs",
			src:  "inner: 5\n",
			v:    &outer{},
			want: []string{`1:8: inner: expected a mapping, got "5"`},
		},
		{
			name: "ignored fields are unknown keys",
			src:  "skipped: 1\n",
			v:    &outer{},
			want: []string{`1:1: unknown key "skipped"`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := decode(t, tc.src, tc.v)
			var got []string
			for _, e := range errs {
				got = append(got, e.Error())
				if e.Node == nil || e.Node.Line != e.Line || e.Node.Column != e.Col {
					t.Errorf("error %q: Node %+v does not match its position", e, e.Node)
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestDecodeInlineMapTakesTheRest(t *testing.T) {
	var v withRest
	if errs := decode(t, "known: k\nfoo: 1\nbar: 2\n", &v); errs != nil {
		t.Fatal(errs)
	}
	if v.Known != "k" || !reflect.DeepEqual(v.Rest, map[string]string{"foo": "1", "bar": "2"}) {
		t.Errorf("got %+v", v)
	}
}

func TestDecodeMergeKeys(t *testing.T) {
	var v struct {
		Base  inner `yaml:"base"`
		Child inner `yaml:"child"`
	}
	if errs := decode(t, "base: &b {a: 1, b: base}\nchild:\n  <<: *b\n  b: own\n", &v); errs != nil {
		t.Fatal(errs)
	}
	if v.Child != (inner{A: 1, B: "own"}) {
		t.Errorf("child = %+v, want the merged a and its own b", v.Child)
	}
}

// tree is a type the decoder walks itself at every level.
type tree []tree

func TestDecodeAliasBomb(t *testing.T) {
	// Each level doubles the nodes; 30 levels would be a billion.
	var b strings.Builder
	b.WriteString("a0: &a0 [[], []]\n")
	for i := 1; i <= 30; i++ {
		prev := "*a" + strconv.Itoa(i-1)
		b.WriteString("a" + strconv.Itoa(i) + ": &a" + strconv.Itoa(i) + " [" + prev + ", " + prev + "]\n")
	}
	var v map[string]tree
	errs := decode(t, b.String(), &v)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "document is too complex") {
		t.Fatalf("errs = %v", errs)
	}
}

func TestParse(t *testing.T) {
	n, err := Parse(nil)
	if n != nil || err != nil {
		t.Errorf("empty: %v %v", n, err)
	}
	_, err = Parse([]byte("a: b\n c: d\n"))
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 || !strings.Contains(e.Error(), "mapping values are not allowed") {
		t.Errorf("syntax error = %#v (%v)", err, err)
	}
}

func TestFind(t *testing.T) {
	root, err := Parse([]byte("a:\n  list:\n    - x: 1\n      y: 2\n  base: &b {z: 3}\n  merged: {<<: *b}\n"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path      []any
		key       bool
		wantFound bool
		line, col int
	}{
		{[]any{"a", "list", 0, "y"}, false, true, 4, 10},
		{[]any{"a", "list", 0, "y"}, true, true, 4, 7},
		{[]any{"a", "merged", "z"}, false, true, 5, 16},
		// Missing: the deepest node that exists.
		{[]any{"a", "list", 0, "nope"}, false, false, 3, 7},
		{[]any{"a", "list", 5}, false, false, 3, 5},
		{[]any{"a", "list", 0, "nope"}, true, false, 3, 7},
	}
	for _, tc := range tests {
		find := Find
		if tc.key {
			find = FindKey
		}
		n, found := find(root, tc.path...)
		if found != tc.wantFound || n.Line != tc.line || n.Column != tc.col {
			t.Errorf("find(%v, key=%v) = %d:%d found=%v, want %d:%d found=%v",
				tc.path, tc.key, n.Line, n.Column, found, tc.line, tc.col, tc.wantFound)
		}
	}
	if !IsNull(nil) || !IsNull(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}) || IsNull(root) {
		t.Error("IsNull")
	}
}

func TestPathAndPosition(t *testing.T) {
	if got := (Path{"remote_write", 0, "queue_config", "capacity"}).String(); got != "remote_write[0].queue_config.capacity" {
		t.Errorf("Path.String() = %q", got)
	}
	for _, tc := range []struct {
		file      string
		line, col int
		want      string
	}{
		{"f.yml", 3, 4, "f.yml:3:4: "},
		{"f.yml", 3, 0, "f.yml:3: "},
		{"f.yml", 0, 0, "f.yml: "},
		{"", 3, 4, "3:4: "},
		{"", 0, 0, ""},
	} {
		if got := Position(tc.file, tc.line, tc.col); got != tc.want {
			t.Errorf("Position(%q, %d, %d) = %q, want %q", tc.file, tc.line, tc.col, got, tc.want)
		}
	}
}
