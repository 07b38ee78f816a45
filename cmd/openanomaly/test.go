package main

import (
	"context"
	"io"
	"regexp"

	"github.com/openanomaly/openanomaly/pkg/unittest"
)

// testRules runs unit-test files for pipelines, printing promtool-like
// results to w, and returns the exit code: 0 when every test passed, 1
// otherwise. A test file's config_file gets its models from buildModels, so
// tests run the same models as the sidecar. run, when set, selects tests by
// name.
func testRules(ctx context.Context, w io.Writer, run *regexp.Regexp, files ...string) int {
	if !unittest.RunFiles(ctx, w, unittest.Options{Models: buildModels, Run: run}, files...) {
		return 1
	}
	return 0
}
