// Package tsfm holds the adapters of the time-series foundation model
// families (Chronos-Bolt, Chronos-2, TimesFM): what each official pipeline
// does outside the exported graph, as torch.Family implementations that
// register themselves with the torch package. Importing the package (the
// run command does in a libtorch build) makes the families available.
package tsfm
