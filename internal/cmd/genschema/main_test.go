package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSchemaUpToDate fails when schema/pipelines.schema.json no longer
// matches the types in pkg/rulefmt.
func TestSchemaUpToDate(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	got, err := generate(filepath.Join(root, "pkg", "rulefmt"))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "schema", "pipelines.schema.json")
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v; run `make schema`", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		line := func(l []string) string {
			if i < len(l) {
				return l[i]
			}
			return "<end of file>"
		}
		t.Errorf("schema/pipelines.schema.json is out of date with pkg/rulefmt; run `make schema` and commit the result.\n"+
			"first difference at line %d:\n  file:      %s\n  generated: %s", i+1, line(wl), line(gl))
	}
}

// TestGenerateNeedsDocs checks that a field without a doc comment stops the
// generation: its comment is the key's description in editors.
func TestGenerateNeedsDocs(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(filepath.Join(root, "pkg", "rulefmt", "rulefmt.go"))
	if err != nil {
		t.Fatal(err)
	}
	const comment = "\t// Step is the resolution of the history given to the model.\n"
	if !bytes.Contains(src, []byte(comment)) {
		t.Fatalf("rulefmt.go no longer has the comment %q this test removes", comment)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rulefmt.go"), bytes.Replace(src, []byte(comment), nil, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = generate(dir)
	if err == nil || !strings.Contains(err.Error(), "Rule.Step: no doc comment") {
		t.Errorf("generate without Step's comment: err = %v, want one about Rule.Step", err)
	}
}

func TestFlatten(t *testing.T) {
	got := flatten("Step is the\nresolution.\n\nSecond   paragraph\nhere.\n")
	want := "Step is the resolution.\n\nSecond paragraph here."
	if got != want {
		t.Errorf("flatten = %q, want %q", got, want)
	}
}
