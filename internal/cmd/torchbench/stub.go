//go:build !libtorch

// Command torchbench needs a binary built with libtorch (-tags libtorch);
// main.go has the benchmark.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "torchbench: built without libtorch: run it with make bench-torch (go run -tags libtorch ./internal/cmd/torchbench)")
	os.Exit(2)
}
