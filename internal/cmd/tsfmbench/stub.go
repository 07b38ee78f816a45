//go:build !libtorch

// Command tsfmbench needs a binary built with libtorch (-tags libtorch);
// main.go has the benchmark.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "tsfmbench: built without libtorch: run it with make bench-tsfm (go build -tags libtorch ./internal/cmd/tsfmbench with the Makefile's TORCH_ENV)")
	os.Exit(2)
}
