package pipeline

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/openanomaly/openanomaly/pkg/forecast"
	"github.com/openanomaly/openanomaly/pkg/forecast/builtin"
	"github.com/openanomaly/openanomaly/pkg/rulefmt"
)

// slowModel delays some calls and records how many run at once.
type slowModel struct {
	inner    forecast.Model
	delay    func(call int) time.Duration
	calls    atomic.Int32
	running  atomic.Int32
	overlaps atomic.Int32
}

func (m *slowModel) Forecast(ctx context.Context, req forecast.Request) ([]forecast.Forecast, error) {
	if m.running.Add(1) > 1 {
		m.overlaps.Add(1)
	}
	defer m.running.Add(-1)
	time.Sleep(m.delay(int(m.calls.Add(1))))
	return m.inner.Forecast(ctx, req)
}

func TestGroupSchedulingCountsMissedIterations(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		model := &slowModel{inner: builtin.Default(), delay: func(call int) time.Duration {
			if call == 3 { // the third evaluation (one batch each: no horizons)
				return 150 * time.Second
			}
			return 0
		}}
		models := forecast.NewRegistry()
		if err := models.Register("default", model); err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		app := &recorder{}
		m := NewManager(ManagerOptions{Appender: app, Registerer: reg})
		r := testRule(t, func(r *rulefmt.Rule) { r.Horizons = nil })
		err := m.Update(UpdateOptions{
			Groups:  []GroupOptions{{Name: "g", File: "f.yml", Interval: time.Minute, Rules: []*Rule{r}}},
			Querier: fakeQuerier(gen{lbls: labels.FromStrings("instance", "a"), f: daily(10, 3)}),
			Models:  models,
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(10*time.Minute + time.Second)
		m.Stop()

		if n := model.overlaps.Load(); n != 0 {
			t.Errorf("%d model calls overlapped: evaluations of one group must not", n)
		}
		key := groupKey("f.yml", "g")
		missed := testutil.ToFloat64(m.metrics.iterationsMissed.WithLabelValues(key))
		total := testutil.ToFloat64(m.metrics.iterations.WithLabelValues(key))
		// The third evaluation (slot S3) takes 150 s and ends at S3+150s:
		// slot S4 is missed and S5, already due, runs at once (as in
		// Prometheus, the newest due slot is evaluated, late).
		if missed != 1 {
			t.Errorf("missed iterations = %v, want 1", missed)
		}
		if total < 9 || total > 10 {
			t.Errorf("iterations = %v, want 9 or 10", total)
		}
		// Every stamp is on the group's slot grid: scheduled time, not
		// the time the evaluation happened to start.
		g := &Group{name: "g", file: "f.yml", interval: time.Minute}
		for _, s := range app.reset() {
			ts := time.UnixMilli(s.t)
			if !g.evalTimestamp(ts).Equal(ts) {
				t.Errorf("sample stamped %s, off the group's slots", ts)
			}
		}
	})
}

func TestManagerReloadKeepsStateAndMarksRemovedStale(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		models := forecast.NewRegistry()
		if err := models.Register("default", builtin.Default()); err != nil {
			t.Fatal(err)
		}
		app := &recorder{}
		m := NewManager(ManagerOptions{Appender: app, Registerer: prometheus.NewRegistry()})
		q := fakeQuerier(gen{lbls: labels.FromStrings("instance", "a"), f: daily(10, 3)})
		keep := testRule(t, func(r *rulefmt.Rule) { r.Forecast = "keep"; r.Horizons = nil })
		gone := testRule(t, func(r *rulefmt.Rule) { r.Forecast = "gone"; r.Horizons = nil })
		groups := []GroupOptions{{Name: "g", File: "f.yml", Interval: time.Minute, Rules: []*Rule{keep, gone}}}
		if err := m.Update(UpdateOptions{Groups: groups, Querier: q, Models: models}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2*time.Minute + time.Second)
		synctest.Wait()
		if keep.Status().Health != HealthOK {
			t.Fatalf("keep: %+v", keep.Status())
		}
		app.reset()

		keep2 := testRule(t, func(r *rulefmt.Rule) { r.Forecast = "keep"; r.Horizons = nil })
		groups = []GroupOptions{{Name: "g", File: "f.yml", Interval: time.Minute, Rules: []*Rule{keep2}}}
		if err := m.Update(UpdateOptions{Groups: groups, Querier: q, Models: models}); err != nil {
			t.Fatal(err)
		}
		got := app.reset()
		if len(got) != 5 {
			t.Errorf("reload wrote %d samples, want 5 stale markers for the removed pipeline", len(got))
		}
		for _, s := range got {
			if !value.IsStaleNaN(s.v) || s.lset.Get("pipeline") != "gone" {
				t.Errorf("unexpected sample at reload: %s %v", s.lset, s.v)
			}
		}
		if st := keep2.Status(); st.Health != HealthOK || st.OutputSeries != 5 {
			t.Errorf("the reloaded pipeline lost its state: %+v", st)
		}
		m.Stop()
	})
}

// peakModel records the most Forecast calls in flight at once; each call
// takes 10 s of (fake) time.
type peakModel struct {
	inner   forecast.Model
	shares  bool
	running atomic.Int32
	peak    atomic.Int32
	calls   atomic.Int32
}

func (m *peakModel) SharesBatches() bool { return m.shares }

func (m *peakModel) Forecast(ctx context.Context, req forecast.Request) ([]forecast.Forecast, error) {
	n := m.running.Add(1)
	defer m.running.Add(-1)
	for {
		p := m.peak.Load()
		if n <= p || m.peak.CompareAndSwap(p, n) {
			break
		}
	}
	m.calls.Add(1)
	time.Sleep(10 * time.Second)
	return m.inner.Forecast(ctx, req)
}

// A group's concurrency bounds how many of its pipelines evaluate at once;
// the default keeps them in order, one at a time.
func TestGroupConcurrency(t *testing.T) {
	for _, tc := range []struct {
		concurrency int
		want        int32
	}{{0, 1}, {1, 1}, {2, 2}, {5, 3}} {
		synctest.Test(t, func(t *testing.T) {
			model := &peakModel{inner: builtin.Default()}
			models := forecast.NewRegistry()
			if err := models.Register("default", model); err != nil {
				t.Fatal(err)
			}
			app := &recorder{}
			m := NewManager(ManagerOptions{Appender: app, Registerer: prometheus.NewRegistry()})
			var rules []*Rule
			for _, name := range []string{"a", "b", "c"} {
				rules = append(rules, testRule(t, func(r *rulefmt.Rule) { r.Forecast = name; r.Horizons = nil }))
			}
			err := m.Update(UpdateOptions{
				Groups:  []GroupOptions{{Name: "g", File: "f.yml", Interval: time.Minute, Concurrency: tc.concurrency, Rules: rules}},
				Querier: fakeQuerier(gen{lbls: labels.FromStrings("instance", "a"), f: daily(10, 3)}),
				Models:  models,
			})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Minute)
			synctest.Wait()
			m.Stop()
			if got := model.peak.Load(); got != tc.want {
				t.Errorf("concurrency %d: %d model calls at once, want %d", tc.concurrency, got, tc.want)
			}
			wrote := map[string]int{}
			for _, s := range app.reset() {
				wrote[s.lset.Get("pipeline")]++
			}
			for _, r := range rules {
				if wrote[r.Name()] < 5 {
					t.Errorf("concurrency %d: pipeline %s wrote %d samples, want at least 5", tc.concurrency, r.Name(), wrote[r.Name()])
				}
			}
		})
	}
}

// A model that shares batches gets a rule's score and horizon requests at
// the same time; others get them one after the other.
func TestRuleSendsBothRequestsAtOnceToBatchingModels(t *testing.T) {
	for _, shares := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			model := &peakModel{inner: builtin.Default(), shares: shares}
			models := forecast.NewRegistry()
			if err := models.Register("default", model); err != nil {
				t.Fatal(err)
			}
			app := &recorder{}
			r := testRule(t, nil)
			m := NewManager(ManagerOptions{Appender: app, Registerer: prometheus.NewRegistry()})
			err := m.Update(UpdateOptions{
				Groups:  []GroupOptions{{Name: "g", File: "f.yml", Interval: time.Minute, Rules: []*Rule{r}}},
				Querier: fakeQuerier(gen{lbls: labels.FromStrings("instance", "a"), f: daily(10, 3)}),
				Models:  models,
			})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Minute + 45*time.Second)
			synctest.Wait()
			m.Stop()
			want := int32(1)
			if shares {
				want = 2
			}
			if got := model.peak.Load(); got != want || model.calls.Load() < 2 {
				t.Errorf("shares %v: %d requests at once (%d calls), want %d", shares, got, model.calls.Load(), want)
			}
			if st := r.Status(); st.Health != HealthOK {
				t.Errorf("shares %v: %+v", shares, st)
			}
		})
	}
}
