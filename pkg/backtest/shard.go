package backtest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/openanomaly/openanomaly/pkg/datasource"
)

// Parallel across the series of one pipeline over a store.
//
// The daemon reads all of a pipeline's series with one query per
// evaluation, so a replay cannot split the query itself. Instead the
// pipeline runs as several shards, each an independent pipeline.Rule over
// the series whose labels (without __name__) hash to it. Every shard asks
// the store the same queries at the same times (the history's incremental
// reads depend only on the evaluation times, not on the series), so a
// sharedQuerier sends each distinct query once and gives every shard its
// part of the answer. A series' outputs depend on its own history alone
// (the models forecast each series on its own), so the shards emit exactly
// what one rule would; inputs that would collide on their output labels
// differ only in __name__ and so land in one shard, where the rule catches
// them as the daemon does.
type sharedQuerier struct {
	q      datasource.Querier
	shards int // the hash space
	limit  int // the group's limit, on the whole answer

	mu      sync.Mutex
	active  int // shards still running
	entries map[queryKey]*sharedAnswer
}

type queryKey struct {
	query      string
	start, end int64
	step       time.Duration
}

type sharedAnswer struct {
	done chan struct{}
	res  datasource.Result
	err  error
	// left counts the running shards that have not taken the answer
	// yet; taken says which have.
	left  int
	taken []bool
}

func newSharedQuerier(q datasource.Querier, shards, active, limit int) *sharedQuerier {
	return &sharedQuerier{q: q, shards: shards, limit: limit, active: active, entries: map[queryKey]*sharedAnswer{}}
}

// shard returns the querier of shard i.
func (s *sharedQuerier) shard(i int) datasource.Querier {
	return datasource.QuerierFunc(func(ctx context.Context, query string, start, end time.Time, step time.Duration) (datasource.Result, error) {
		return s.query(ctx, i, query, start, end, step)
	})
}

func (s *sharedQuerier) query(ctx context.Context, shard int, query string, start, end time.Time, step time.Duration) (datasource.Result, error) {
	key := queryKey{query: query, start: start.UnixMilli(), end: end.UnixMilli(), step: step}
	s.mu.Lock()
	a, ok := s.entries[key]
	if !ok {
		a = &sharedAnswer{done: make(chan struct{}), left: s.active, taken: make([]bool, s.shards)}
		s.entries[key] = a
	}
	s.mu.Unlock()
	if !ok {
		a.res, a.err = s.q.QueryRange(ctx, query, start, end, step)
		if a.err == nil && s.limit > 0 && len(a.res.Series) > s.limit {
			a.err = fmt.Errorf("query returned %d series, more than the group's limit of %d", len(a.res.Series), s.limit)
		}
		close(a.done)
	} else {
		select {
		case <-a.done:
		case <-ctx.Done():
			s.take(key, a, shard)
			return datasource.Result{}, ctx.Err()
		}
	}
	s.take(key, a, shard)
	if a.err != nil {
		return datasource.Result{}, a.err
	}
	out := datasource.Result{Warnings: a.res.Warnings, Partial: a.res.Partial}
	for _, ser := range a.res.Series {
		if shardOf(ser.Labels, s.shards) == shard {
			out.Series = append(out.Series, ser)
		}
	}
	return out, nil
}

// take notes that a shard has the answer; the last one frees it.
func (s *sharedQuerier) take(key queryKey, a *sharedAnswer, shard int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.taken[shard] {
		return
	}
	a.taken[shard] = true
	if a.left--; a.left <= 0 && s.entries[key] == a {
		delete(s.entries, key)
	}
}

// leave notes that a shard has finished (or failed): answers no longer wait
// for it.
func (s *sharedQuerier) leave(shard int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	for k, a := range s.entries {
		if a.taken[shard] {
			continue
		}
		a.taken[shard] = true
		if a.left--; a.left <= 0 {
			delete(s.entries, k)
		}
	}
}

// pending is how many answers are held (for tests).
func (s *sharedQuerier) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// shardOf is the shard of an input series: by its labels without __name__,
// so that inputs that differ only in their name (which the pipeline refuses
// as colliding outputs) stay together.
func shardOf(lset labels.Labels, shards int) int {
	if shards <= 1 {
		return 0
	}
	b := labels.NewBuilder(lset)
	b.Del(labels.MetricName)
	return int(b.Labels().Hash() % uint64(shards))
}
