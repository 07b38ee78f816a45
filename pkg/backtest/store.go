package backtest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/unittest"
)

// NewEngine returns the PromQL engine `openanomaly test rules` uses
// (Prometheus 3's defaults: the @ modifier and negative offsets on, which
// the replay clock keeps from seeing past the evaluation time).
func NewEngine(subqueryStep time.Duration) *promql.Engine { return unittest.NewEngine(subqueryStep) }

// csvStore is one CSV file in throw-away TSDB blocks, under the metric
// name and a `file` label. Blocks, not a head: a query then reads only the
// chunks of its range, where the head walks all of a series' chunks (for a
// file of 20,000 rows that made the store most of a replay's time). One
// block per blockSpan of data, so that a query decodes the chunk list of
// the one or two blocks it touches, not the whole file's.
type csvStore struct {
	dir    string
	blocks []*tsdb.Block // by time
	lset   labels.Labels
}

// blockSpan is the time range of one block.
const blockSpan = 7 * 24 * time.Hour

// openCSVStore writes f's rows into new blocks in a temporary directory.
// NaN rows (empty cells) are stored as NaN, as a store would keep them; the
// pipeline drops and counts them.
func openCSVStore(ctx context.Context, f *CSVFile, metric string) (*csvStore, error) {
	dir, err := os.MkdirTemp("", "openanomaly-backtest-")
	if err != nil {
		return nil, fmt.Errorf("create storage directory: %w", err)
	}
	s := &csvStore{dir: dir, lset: labels.FromStrings(labels.MetricName, metric, "file", f.Name)}
	fail := func(err error) (*csvStore, error) {
		_ = s.Close()
		return nil, fmt.Errorf("%s: store the rows: %w", f.Path, err)
	}
	logger := slog.New(slog.DiscardHandler)
	span := blockSpan.Milliseconds()
	for lo := 0; lo < len(f.Rows); {
		// The rows of one block: [t, t+span) from the first row left.
		hi := lo
		for hi < len(f.Rows) && f.Rows[hi].T < f.Rows[lo].T+span {
			hi++
		}
		b, err := writeBlock(ctx, logger, dir, s.lset, f.Rows[lo:hi], 2*span)
		if err != nil {
			return fail(err)
		}
		s.blocks = append(s.blocks, b)
		lo = hi
	}
	return s, nil
}

// writeBlock writes rows as one block into dir and opens it.
func writeBlock(ctx context.Context, logger *slog.Logger, dir string, lset labels.Labels, rows []Row, blockSize int64) (*tsdb.Block, error) {
	w, err := tsdb.NewBlockWriter(logger, dir, blockSize)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	app := w.Appender(ctx)
	var ref storage.SeriesRef
	for _, r := range rows {
		if ref, err = app.Append(ref, lset, r.T, r.V); err != nil {
			_ = app.Rollback()
			return nil, fmt.Errorf("at %s: %w", time.UnixMilli(r.T).UTC().Format(time.RFC3339), err)
		}
	}
	if err := app.Commit(); err != nil {
		return nil, err
	}
	id, err := w.Flush(ctx)
	if err != nil {
		return nil, err
	}
	return tsdb.OpenBlock(logger, filepath.Join(dir, id.String()), nil, nil)
}

// Querier implements storage.Queryable over the blocks that overlap
// [mint, maxt].
func (s *csvStore) Querier(mint, maxt int64) (storage.Querier, error) {
	var qs []storage.Querier
	for _, b := range s.blocks {
		if !b.OverlapsClosedInterval(mint, maxt) {
			continue
		}
		q, err := tsdb.NewBlockQuerier(b, mint, maxt)
		if err != nil {
			for _, q := range qs {
				_ = q.Close()
			}
			return nil, err
		}
		qs = append(qs, q)
	}
	switch len(qs) {
	case 0:
		return storage.NoopQuerier(), nil
	case 1:
		return qs[0], nil
	}
	return storage.NewMergeQuerier(qs, nil, storage.ChainedSeriesMerge), nil
}

// Close closes the blocks and removes their directory.
func (s *csvStore) Close() error {
	var err error
	for _, b := range s.blocks {
		if cerr := b.Close(); err == nil {
			err = cerr
		}
	}
	if rerr := os.RemoveAll(s.dir); err == nil {
		err = rerr
	}
	return err
}

// until hides every sample after maxt (ms) from the queries made through
// it: the replay clock. An evaluation at t sees what a live store had at t,
// even through negative offsets or @ end().
type until struct {
	q    storage.Queryable
	maxt int64
}

// Querier implements storage.Queryable.
func (u until) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := u.q.Querier(mint, min(maxt, u.maxt))
	if err != nil {
		return nil, err
	}
	return untilQuerier{Querier: q, maxt: u.maxt}, nil
}

// untilQuerier clamps the select hints too: the TSDB's querier trims
// samples to the hints' range when there are hints (the engine always
// passes them), not to the range the querier was opened with.
type untilQuerier struct {
	storage.Querier
	maxt int64
}

// Select implements storage.Querier.
func (q untilQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	if hints != nil {
		h := *hints
		if h.Start > q.maxt {
			return storage.EmptySeriesSet()
		}
		h.End = min(h.End, q.maxt)
		h.DisableTrimming = false
		hints = &h
	}
	return q.Querier.Select(ctx, sortSeries, hints, matchers...)
}

// replayQuerier is a datasource.Querier over a TSDB whose visible time the
// replay moves forward before each evaluation.
type replayQuerier struct {
	engine *promql.Engine
	db     storage.Queryable
	now    int64 // ms; nothing after it is visible
}

// QueryRange implements datasource.Querier through the PromQL engine, as
// `openanomaly test rules` does.
func (q *replayQuerier) QueryRange(ctx context.Context, query string, start, end time.Time, step time.Duration) (datasource.Result, error) {
	uq := &unittest.Querier{Engine: q.engine, Queryable: until{q: q.db, maxt: q.now}}
	return uq.QueryRange(ctx, query, start, end, step)
}

// checkNoLookAhead refuses, for a backtest over a store, an expr that can
// read data after the evaluation time: a negative offset or an @ modifier.
// Live, the store has nothing after now, so such an expr sees nothing new;
// a store holding the whole replayed range would show it the future. (CSV
// replays hide it with the replay clock instead.)
func checkNoLookAhead(expr string) error {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return err
	}
	var found string
	parser.Inspect(e, func(node parser.Node, _ []parser.Node) error {
		var off time.Duration
		var at bool
		switch n := node.(type) {
		case *parser.VectorSelector:
			off, at = n.OriginalOffset, n.Timestamp != nil || n.StartOrEnd != 0
		case *parser.SubqueryExpr:
			off, at = n.OriginalOffset, n.Timestamp != nil || n.StartOrEnd != 0
		default:
			return nil
		}
		if found == "" && (off < 0 || at) {
			found = node.String()
		}
		return nil
	})
	if found != "" {
		return fmt.Errorf("%s reads data after the evaluation time (a negative offset or an @ modifier), which a store holding the replayed range would show; replay it from CSV, where the replay clock hides it", found)
	}
	return nil
}
