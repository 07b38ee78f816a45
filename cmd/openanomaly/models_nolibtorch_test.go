//go:build !libtorch

package main

// wantTorchScriptErr is how a config naming a missing torchscript file fails.
const wantTorchScriptErr = "torchscript models need a binary built with libtorch support"
