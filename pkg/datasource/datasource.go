// Package datasource reads history from a Prometheus-compatible store.
//
// A Querier hides how samples are read from the pipeline that uses them:
//
//   - HTTPQuerier evaluates PromQL through the query API's query_range,
//     splitting ranges longer than Prometheus' 11,000 points per series into
//     pieces and merging them;
//   - RemoteReadQuerier reads raw samples through the remote-read protocol
//     (streamed XOR chunks, or the sampled answer) and aligns them to the
//     step grid as Prometheus evaluates an instant vector selector: the
//     newest sample in (t − 5m, t], none after a stale marker. It accepts
//     only plain vector selectors (ExprChecker says which expressions).
//
// Both return the same Result for the same selector and data.
package datasource

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Sample is one raw sample: a timestamp in milliseconds and its value.
type Sample struct {
	T int64
	V float64
}

// Series is one input series with its samples in timestamp order.
type Series struct {
	Labels  labels.Labels
	Samples []Sample
}

// Result is the answer to one range query.
type Result struct {
	Series []Series
	// Warnings are the store's warnings (Prometheus "warnings", Thanos
	// partial-response notes); they do not fail the query.
	Warnings []string
	// Partial is true when the store said the answer may be incomplete
	// (VictoriaMetrics' isPartial). Remote read has no such channel: an
	// incomplete answer there is an error.
	Partial bool
}

// Querier evaluates a PromQL expression over a time range at a fixed step.
// Implementations must honour ctx's deadline.
type Querier interface {
	QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (Result, error)
}

// QuerierFunc adapts a function to the Querier interface, so tests can pass a
// closure.
type QuerierFunc func(ctx context.Context, query string, start, end time.Time, step time.Duration) (Result, error)

// QueryRange calls f.
func (f QuerierFunc) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (Result, error) {
	return f(ctx, query, start, end, step)
}
