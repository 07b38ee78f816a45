// Package series holds pure functions on sample slices: aligning raw samples
// to a step grid, gap handling, and dropping values a model must not see.
package series
