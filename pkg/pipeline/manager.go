// Package pipeline runs pipelines: it schedules groups, evaluates each rule
// (read, prepare, forecast, score, emit) and tracks what each rule emitted so
// that series that disappear get stale markers.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/openanomaly/openanomaly/pkg/datasource"
	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	// Appender receives every emitted sample with its timestamp (the
	// remote-write storage); nil writes nothing.
	Appender Appender
	// Exposition receives the latest outputs for /metrics; nil makes one.
	Exposition *Exposition
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Manager owns the running groups and replaces them on reload.
type Manager struct {
	opts    ManagerOptions
	metrics *Metrics
	logger  *slog.Logger

	mtx     sync.Mutex
	groups  map[string]*Group
	ctx     context.Context
	cancel  context.CancelFunc
	stopped bool
}

// NewManager returns a manager with no groups.
func NewManager(o ManagerOptions) *Manager {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Exposition == nil {
		o.Exposition = NewExposition()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		opts: o, metrics: NewMetrics(o.Registerer), logger: o.Logger,
		groups: map[string]*Group{}, ctx: ctx, cancel: cancel,
	}
}

// Exposition returns the outputs served on /metrics.
func (m *Manager) Exposition() *Exposition { return m.opts.Exposition }

// UpdateOptions is everything a reload hands to the manager: the groups to
// run and the querier and models they use.
type UpdateOptions struct {
	Groups  []GroupOptions
	Querier datasource.Querier
	Models  *forecast.Registry
}

// Update replaces the running groups. The caller has validated everything
// (config, pipeline files, model names), so Update cannot fail half-way: a
// bad reload never reaches it. Pipelines that keep their name take over their
// predecessor's state; pipelines that are gone get stale markers.
func (m *Manager) Update(u UpdateOptions) error {
	names := map[string]string{}
	for _, g := range u.Groups {
		if g.Interval <= 0 {
			return fmt.Errorf("group %q in %s: interval must be positive", g.Name, g.File)
		}
		for _, r := range g.Rules {
			if other, ok := names[r.Name()]; ok {
				return fmt.Errorf("pipeline %q is defined twice (%s and group %q in %s)", r.Name(), other, g.Name, g.File)
			}
			names[r.Name()] = fmt.Sprintf("group %q in %s", g.Name, g.File)
			fm, ok := u.Models.Get(r.Spec().Model)
			if !ok {
				return fmt.Errorf("pipeline %q: model %q is not configured", r.Name(), r.Spec().Model)
			}
			if err := CheckCovariates(r.Spec(), fm); err != nil {
				return err
			}
		}
	}

	m.mtx.Lock()
	defer m.mtx.Unlock()
	if m.stopped {
		return fmt.Errorf("manager is stopped")
	}
	env := evalEnv{
		querier: u.Querier, models: u.Models, appender: m.opts.Appender,
		exposition: m.opts.Exposition, metrics: m.metrics,
	}

	// Stop every old group before the new ones start, so no two
	// evaluations of one pipeline ever overlap; collect their rules to
	// hand their state over.
	oldRules := map[string]*Rule{}
	oldEnv := map[string]evalEnv{}
	var wg sync.WaitGroup
	for _, g := range m.groups {
		for _, r := range g.rules {
			oldRules[r.Name()] = r
			oldEnv[r.Name()] = g.env
		}
		wg.Add(1)
		go func(g *Group) { defer wg.Done(); g.stop() }(g)
	}
	wg.Wait()

	newGroups := make(map[string]*Group, len(u.Groups))
	for _, o := range u.Groups {
		g := newGroup(o, env, m.logger, m.opts.Now)
		for _, r := range g.rules {
			if old, ok := oldRules[r.Name()]; ok {
				r.copyState(old)
				delete(oldRules, r.Name())
			}
		}
		newGroups[g.key()] = g
	}
	now := m.opts.Now().UnixMilli()
	for name, r := range oldRules {
		r.markStale(now, oldEnv[name])
		m.metrics.deletePipeline(name)
	}
	for k := range m.groups {
		if _, ok := newGroups[k]; !ok {
			m.metrics.deleteGroup(k)
		}
	}
	m.groups = newGroups
	for _, g := range newGroups {
		go g.run(m.ctx)
	}
	return nil
}

// Stop stops every group and waits for running evaluations to end. Outputs
// get no stale markers on shutdown, so a restart leaves no gap, as with
// Prometheus' rule manager.
func (m *Manager) Stop() {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	m.stopped = true
	m.cancel()
	for _, g := range m.groups {
		g.stop()
	}
}

// Groups returns the running groups sorted by file and name.
func (m *Manager) Groups() []*Group {
	m.mtx.Lock()
	defer m.mtx.Unlock()
	out := make([]*Group, 0, len(m.groups))
	for _, g := range m.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].file != out[j].file {
			return out[i].file < out[j].file
		}
		return out[i].name < out[j].name
	})
	return out
}

// LastEvaluation returns the group's last scheduled evaluation time and how
// long it took.
func (g *Group) LastEvaluation() (time.Time, time.Duration) {
	g.mtx.Lock()
	defer g.mtx.Unlock()
	return g.lastEval, g.lastDuration
}

// CheckCovariates refuses a rule with covariates whose model takes none
// (forecast.CovariateModel), naming the rule, the model and what does take
// them.
func CheckCovariates(spec rulefmt.Rule, m forecast.Model) error {
	if len(spec.Covariates) == 0 || forecast.TakesCovariates(m) {
		return nil
	}
	what := "a built-in model"
	if _, ok := m.(forecast.CovariateModel); ok {
		what = "a torchscript model whose file, or its family, takes no covariates"
	}
	return errors.New(rulefmt.CovariatesRefused(spec.Forecast, spec.Model, what))
}
