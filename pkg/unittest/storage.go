package unittest

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/openanomaly/openanomaly/pkg/datasource"
)

// Engine settings as Prometheus runs them by default (--query.max-samples,
// --query.timeout, --query.lookback-delta), so that a query that works in a
// test works against the real server.
const (
	engineMaxSamples = 50_000_000
	engineTimeout    = 2 * time.Minute
	lookbackDelta    = 5 * time.Minute
)

// NewEngine returns a PromQL engine configured like Prometheus 3's defaults:
// the @ modifier and negative offsets on, subqueries without a step
// evaluated at subqueryStep (Prometheus uses its global evaluation
// interval). The unit tests and the backtest evaluate exprs with it.
func NewEngine(subqueryStep time.Duration) *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		MaxSamples:               engineMaxSamples,
		Timeout:                  engineTimeout,
		LookbackDelta:            lookbackDelta,
		NoStepSubqueryIntervalFn: func(int64) int64 { return subqueryStep.Milliseconds() },
		EnableAtModifier:         true,
		EnableNegativeOffset:     true,
		Parser:                   parser.NewParser(parser.Options{}),
	})
}

// store is a throw-away TSDB the input series are loaded into, a little at
// a time: samples become visible only once the evaluation reaches their
// time, as they would in a live Prometheus.
type store struct {
	dir string
	db  *tsdb.DB
	// pending holds, per series, the samples not yet appended.
	pending []inputSeries
}

// inputSeries is a parsed input series.
type inputSeries struct {
	lset    labels.Labels
	samples []inputSample
}

type inputSample struct {
	t int64
	f float64
	h *histogram.FloatHistogram
}

// openStore opens an empty TSDB in a temporary directory. Close removes it.
func openStore(series []inputSeries) (*store, error) {
	dir, err := os.MkdirTemp("", "openanomaly-unittest-")
	if err != nil {
		return nil, fmt.Errorf("create storage directory: %w", err)
	}
	opts := tsdb.DefaultOptions()
	// Nothing outlives the test: no WAL to write, no retention, and no
	// compaction running in the background while the test appends.
	opts.WALSegmentSize = -1
	opts.RetentionDuration = 0
	opts.OutOfOrderTimeWindow = 0
	// The head accepts samples down to half a block before its newest
	// one; a day's blocks leave room for evaluation intervals of hours.
	opts.MinBlockDuration = (24 * time.Hour).Milliseconds()
	opts.MaxBlockDuration = opts.MinBlockDuration
	db, err := tsdb.Open(dir, nil, nil, opts, tsdb.NewDBStats())
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("open storage: %w", err)
	}
	db.DisableCompactions()
	pending := make([]inputSeries, len(series))
	copy(pending, series)
	return &store{dir: dir, db: db, pending: pending}, nil
}

// appendUntil appends every pending sample at or before t (milliseconds).
func (s *store) appendUntil(ctx context.Context, t int64) error {
	app := s.db.Appender(ctx)
	for i := range s.pending {
		p := &s.pending[i]
		var ref storage.SeriesRef
		n := 0
		for _, smp := range p.samples {
			if smp.t > t {
				break
			}
			var err error
			if smp.h != nil {
				ref, err = app.AppendHistogram(ref, p.lset, smp.t, nil, smp.h)
			} else {
				ref, err = app.Append(ref, p.lset, smp.t, smp.f)
			}
			if err != nil {
				_ = app.Rollback()
				return fmt.Errorf("append %s at %d: %w", p.lset, smp.t, err)
			}
			n++
		}
		p.samples = p.samples[n:]
	}
	return app.Commit()
}

// Close closes the TSDB and removes its directory.
func (s *store) Close() error {
	err := s.db.Close()
	if rerr := os.RemoveAll(s.dir); err == nil {
		err = rerr
	}
	return err
}

// Querier answers range queries with the PromQL engine over the store, the
// way Prometheus' query_range does. It implements datasource.Querier.
type Querier struct {
	Engine    *promql.Engine
	Queryable storage.Queryable
}

// QueryRange implements datasource.Querier. The result is what the HTTP
// querier makes of Prometheus' answer: series sorted by labels, stale
// markers already applied by the engine (a series has no points after one),
// warnings kept and infos dropped, and native histograms an error.
func (q *Querier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (datasource.Result, error) {
	qry, err := q.Engine.NewRangeQuery(ctx, q.Queryable, nil, query, start, end, step)
	if err != nil {
		return datasource.Result{}, err
	}
	defer qry.Close()
	res := qry.Exec(ctx)
	if res.Err != nil {
		return datasource.Result{}, res.Err
	}
	m, ok := res.Value.(promql.Matrix)
	if !ok {
		return datasource.Result{}, fmt.Errorf("result type is %s, want matrix", res.Value.Type())
	}
	var out datasource.Result
	out.Warnings, _ = res.Warnings.AsStrings(query, 0, 0)
	for _, s := range m {
		if len(s.Histograms) > 0 {
			return datasource.Result{}, fmt.Errorf("series %s has native histogram samples; use an expression that returns floats (e.g. histogram_quantile)", s.Metric)
		}
		// The engine reuses its point slices once the query is closed.
		samples := make([]datasource.Sample, len(s.Floats))
		for i, p := range s.Floats {
			samples[i] = datasource.Sample{T: p.T, V: p.F}
		}
		out.Series = append(out.Series, datasource.Series{Labels: s.Metric.Copy(), Samples: samples})
	}
	slices.SortFunc(out.Series, func(a, b datasource.Series) int { return labels.Compare(a.Labels, b.Labels) })
	return out, nil
}
