// Package score computes anomaly scores from an observation and its
// predictive quantiles.
package score
