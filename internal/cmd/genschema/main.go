// Command genschema writes the JSON Schema of pipeline files,
// schema/pipelines.schema.json, from the Go types in pkg/rulefmt and their
// doc comments, so that editors (yaml-language-server) can check pipeline
// files as they are typed. Run it with `make schema` or `go generate
// ./pkg/rulefmt` after changing those types.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
)

func main() {
	out := flag.String("o", "", "File to write the schema to (default: standard output).")
	src := flag.String("src", "", "Directory of pkg/rulefmt's sources, read for the descriptions (default: found from the module root).")
	flag.Parse()

	dir := *src
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			fatal(err)
		}
		dir = filepath.Join(root, "pkg", "rulefmt")
	}
	b, err := generate(dir)
	if err != nil {
		fatal(err)
	}
	if *out == "" {
		_, err = os.Stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "genschema:", err)
	os.Exit(1)
}

// moduleRoot returns the nearest directory at or above the working
// directory that holds a go.mod: go generate and go test both run in a
// package's directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod found above the working directory; pass -src")
		}
		dir = parent
	}
}
