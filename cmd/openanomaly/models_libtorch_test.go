//go:build libtorch

package main

// wantTorchScriptErr is how a config naming a missing torchscript file fails.
const wantTorchScriptErr = "load model file "
