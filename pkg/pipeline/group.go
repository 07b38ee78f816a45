package pipeline

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Group is a set of pipelines evaluated one after another on one schedule.
type Group struct {
	name        string
	file        string
	interval    time.Duration
	queryOffset time.Duration
	limit       int
	concurrency int
	rules       []*Rule

	env    evalEnv
	logger *slog.Logger
	now    func() time.Time

	done       chan struct{}
	terminated chan struct{}
	stopOnce   sync.Once

	mtx          sync.Mutex
	lastEval     time.Time
	lastDuration time.Duration
}

// GroupOptions describe a group to build.
type GroupOptions struct {
	Name        string
	File        string
	Interval    time.Duration
	QueryOffset time.Duration
	Limit       int
	// Concurrency is how many rules evaluate at once; 0 and 1 mean one
	// after the other.
	Concurrency int
	Rules       []*Rule
}

func newGroup(o GroupOptions, env evalEnv, logger *slog.Logger, now func() time.Time) *Group {
	env.queryOffset = o.QueryOffset
	env.limit = o.Limit
	env.interval = o.Interval
	return &Group{
		name: o.Name, file: o.File, interval: o.Interval, queryOffset: o.QueryOffset,
		limit: o.Limit, concurrency: max(1, o.Concurrency), rules: o.Rules, env: env,
		logger:     logger.With("file", o.File, "group", o.Name),
		now:        now,
		done:       make(chan struct{}),
		terminated: make(chan struct{}),
	}
}

// Name returns the group's name.
func (g *Group) Name() string { return g.name }

// File returns the file the group came from.
func (g *Group) File() string { return g.file }

// Rules returns the group's pipelines.
func (g *Group) Rules() []*Rule { return g.rules }

// Interval returns how often the group runs.
func (g *Group) Interval() time.Duration { return g.interval }

func (g *Group) key() string { return groupKey(g.file, g.name) }

func groupKey(file, name string) string { return file + ";" + name }

// evalTimestamp returns the newest scheduled slot at or before now. Each group
// gets a fixed offset inside its interval, derived from its key, so groups
// spread their load and a restart keeps the same slots (Prometheus'
// Group.EvalTimestamp).
func (g *Group) evalTimestamp(now time.Time) time.Time {
	h := fnv.New64a()
	h.Write([]byte(g.key()))
	iv := int64(g.interval)
	// Whole milliseconds, so stamps (in ms) stay exactly on the slots.
	offset := int64(h.Sum64()%uint64(iv)) / 1e6 * 1e6
	adj := now.UnixNano() - offset
	base := adj - adj%iv
	return time.Unix(0, base+offset)
}

// run evaluates the group on its slots until stop. Evaluations never overlap:
// when one runs past the next slot, the slots that passed are counted as
// missed and the next evaluation takes the newest slot.
func (g *Group) run(ctx context.Context) {
	defer close(g.terminated)
	m := g.env.metrics
	m.groupInterval.WithLabelValues(g.key()).Set(g.interval.Seconds())
	next := g.evalTimestamp(g.now()).Add(g.interval)
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-g.done:
			return
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := g.now()
		if missed := int64(now.Sub(next) / g.interval); missed > 0 {
			m.iterationsMissed.WithLabelValues(g.key()).Add(float64(missed))
			m.iterations.WithLabelValues(g.key()).Add(float64(missed))
			next = next.Add(time.Duration(missed) * g.interval)
		}
		m.iterations.WithLabelValues(g.key()).Inc()
		g.Eval(ctx, next)
		next = next.Add(g.interval)
		timer.Reset(max(0, next.Sub(g.now())))
	}
}

// Eval evaluates every pipeline of the group once for the scheduled time ts.
// The whole evaluation is bounded by the group's interval, so a hung store
// or model cannot stall the group.
func (g *Group) Eval(ctx context.Context, ts time.Time) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, g.interval)
	defer cancel()
	evalRule := func(r *Rule) bool {
		if err := r.eval(ctx, ts, g.env); err != nil {
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				return false
			}
			g.logger.Warn("Pipeline evaluation failed", "pipeline", r.Name(), "err", err)
		}
		return true
	}
	if g.concurrency <= 1 || len(g.rules) < 2 {
		for _, r := range g.rules {
			if !evalRule(r) {
				return
			}
		}
	} else {
		sem := make(chan struct{}, g.concurrency)
		var wg sync.WaitGroup
		var cancelled atomic.Bool
		for _, r := range g.rules {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if !evalRule(r) {
					cancelled.Store(true)
				}
			}()
		}
		wg.Wait()
		if cancelled.Load() {
			return
		}
	}
	d := time.Since(start)
	g.mtx.Lock()
	g.lastEval, g.lastDuration = ts, d
	g.mtx.Unlock()
	g.env.metrics.groupDuration.WithLabelValues(g.key()).Set(d.Seconds())
	g.env.metrics.groupLastEval.WithLabelValues(g.key()).Set(float64(ts.UnixNano()) / 1e9)
}

func (g *Group) stop() {
	g.stopOnce.Do(func() { close(g.done) })
	<-g.terminated
}
